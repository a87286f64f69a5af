"""Prepared gravitational-wave sets: preprocessed strain in one HDF5 file, the format the networks read.

Gravitational-wave domain, built on the core's HDF5 container (:mod:`astrocnn.core.h5sets`); made by
:func:`astrocnn.gw.prepare.prepare_g2net`. Layout (``kind = "strain"``), the GW sibling of :mod:`astrocnn.spectra.dataset`'s spectra sets::

    /strain          (N, 3, 4096) float32  whitened, band-passed, normalised strain, chunked by rows
    /target          (N,) int8             1 signal, 0 noise only, -1 unknown
    /id              (N,) str              sample id
    /snr             (N,) float32          network SNR (NaN if unknown or noise only): the truth column named by
                                           attrs["snr_column"], snr_seen (what the whitener leaves of the
                                           signal) for sets simulated since it exists, else snr (injected)
    /whitening_psd   (3, 2049) float64     the noise PSD (1/Hz) the strain was whitened with
    /truth/<column>  (N,)                  simulation truth, when the source folder had a truth.csv
    attrs: format="astrocnn-prepared", format_version=1, kind="strain", sample_rate, n_samples, detectors
           (JSON), preprocessing (JSON: the Whitener config and the normalisation), whitening_fit (where the
           PSD came from), whitening_n_fit, source, n, astrocnn_version, input_fingerprint (no time stamp)

The file appears under its final name only when complete. An evaluation set must be whitened with the
TRAINING set's PSD: pass the training set's path (or its :class:`Whitener`) as ``whitener``.
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.h5sets import FORMAT, STR, AtomicH5Writer, LazyH5Reader, chunk_rows, read_strings
from astrocnn.gw.readers import DETECTORS
from astrocnn.gw.whitening import GwPreprocess, Whitener
from astrocnn.version import __version__

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "strain"
DEFAULT_CHUNK_ROWS = 64  # 64 x 3 x 4096 float32 = 3 MiB per chunk



class StrainWriter(AtomicH5Writer):
    """Append preprocessed strain rows to a new prepared set; the file appears under ``path`` on :meth:`close`.

    Use as a context manager: an exception inside the block discards the partial file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sample_rate: float,
        n_samples: int,
        preprocessing: Mapping[str, Any],
        whitening_psd: np.ndarray,
        whitening_fit: str = "",
        whitening_n_fit: int = 0,
        detectors: Sequence[str] = DETECTORS,
        source: str = "",
        truth_columns: Mapping[str, str] | None = None,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        expected_rows: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.shape = (len(detectors), int(n_samples))
        self.truth_columns = dict(truth_columns or {})
        self.chunk_rows = int(chunk_rows)
        self.expected_rows = expected_rows
        self.row_name = "strain samples"
        self._open(self.path)
        try:
            self._guard(self._create, sample_rate, n_samples, preprocessing, whitening_psd, whitening_fit,
                        whitening_n_fit, detectors, source, attrs)
        except BaseException:
            self._discard()
            raise

    def _create(self, sample_rate, n_samples, preprocessing, whitening_psd, whitening_fit, whitening_n_fit,
                detectors, source, attrs) -> None:
        h5 = self._h5
        h5.create_dataset("strain", shape=(0,) + self.shape, maxshape=(None,) + self.shape, dtype=np.float32,
                          chunks=(chunk_rows(4 * math.prod(self.shape), self.expected_rows, self.chunk_rows),) + self.shape)
        h5.create_dataset("target", shape=(0,), maxshape=(None,), dtype=np.int8, chunks=(4096,))
        h5.create_dataset("snr", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(4096,))
        h5.create_dataset("id", shape=(0,), maxshape=(None,), dtype=STR, chunks=(4096,))
        h5.create_dataset("whitening_psd", data=np.asarray(whitening_psd, dtype=np.float64))
        if self.truth_columns:
            g = h5.create_group("truth")
            for name, kind in self.truth_columns.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=STR if kind == "U" else np.float64,
                                 chunks=(4096,))
        a = h5.attrs
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["kind"] = KIND
        a["sample_rate"] = float(sample_rate)
        a["n_samples"] = int(n_samples)
        a["detectors"] = json.dumps(list(detectors))
        a["preprocessing"] = json.dumps(dict(preprocessing))
        a["whitening_fit"] = whitening_fit
        a["whitening_n_fit"] = int(whitening_n_fit)
        a["source"] = source
        a["astrocnn_version"] = __version__
        for k, v in (attrs or {}).items():
            a[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v)

    def __len__(self) -> int:
        return self._n

    def append(self, strain: np.ndarray, ids: Sequence[str], target: Sequence[int] | None = None,
               snr: Sequence[float] | None = None, truth: Mapping[str, Sequence[Any]] | None = None) -> None:
        """Append a batch: strain (B, 3, n), ids (B,), target (B,) (-1 unknown), snr (B,) (NaN unknown)."""
        strain = np.asarray(strain)
        b = strain.shape[0]
        if strain.shape[1:] != self.shape:
            raise ValueError(f"strain rows have shape {strain.shape[1:]}, the set holds {self.shape}")
        if len(ids) != b:
            raise ValueError(f"{len(ids)} ids for {b} rows")
        self._guard(self._write, strain, ids, target, snr, truth)

    def _write(self, strain, ids, target, snr, truth) -> None:
        b = strain.shape[0]
        lo, hi = self._n, self._n + b
        h5 = self._h5
        for name in ("strain", "target", "snr", "id"):
            h5[name].resize(hi, axis=0)
        h5["strain"][lo:hi] = strain.astype(np.float32)
        h5["target"][lo:hi] = np.full(b, -1) if target is None else np.asarray(target, dtype=np.int8)
        h5["snr"][lo:hi] = np.full(b, np.nan) if snr is None else np.asarray(snr, dtype=np.float32)
        h5["id"][lo:hi] = np.array([str(i) for i in ids], dtype=object)
        for name, kind in self.truth_columns.items():
            ds = h5[f"truth/{name}"]
            ds.resize(hi, axis=0)
            col = (truth or {}).get(name)
            if kind == "U":
                values = [None] * b if col is None else col
                ds[lo:hi] = np.array(["" if v is None else str(v) for v in values], dtype=object)
            else:
                ds[lo:hi] = np.full(b, np.nan) if col is None else np.array(
                    [float(v) if v not in ("", None) else math.nan for v in col])
        self._n = hi

class StrainSet(LazyH5Reader):
    """Read a prepared strain set. Labels, ids and SNRs load at once; strain is read in slices.

    >>> ds = StrainSet("train.h5")
    >>> batch = ds.read(slice(0, 256))   # {"strain": (256, 3, 4096) float32, "target", "id", "snr", "index"}
    >>> ds.whitener()                     # the fitted Whitener, to prepare an evaluation set the same way
    """

    kind = KIND

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such file")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(self.path, f"not a readable HDF5 file ({exc})") from exc
        with h5:
            if h5.attrs.get("format") != FORMAT:
                raise InputError(self.path, "not an astrocnn prepared set (run prepare_g2net first)")
            if h5.attrs.get("kind") != KIND:
                raise InputError(self.path, f"a prepared set of kind {h5.attrs.get('kind')!r}, not strain")
            if int(h5.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise InputError(self.path, f"format version {h5.attrs['format_version']}; "
                                            f"this astrocnn reads up to {FORMAT_VERSION}")
            try:
                self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
                self.target = h5["target"][:]
                self.snr = h5["snr"][:]
                self.ids = read_strings(h5["id"])
                self.whitening_psd = h5["whitening_psd"][:]
                self.shape = tuple(h5["strain"].shape[1:])
            except KeyError as exc:
                raise InputError(self.path, f"prepared set is missing {exc}") from exc
        self.n = len(self.ids)
        self.sample_rate = float(self.attrs["sample_rate"])
        self.preprocessing = json.loads(self.attrs["preprocessing"])
        self._h5: h5py.File | None = None

    def __len__(self) -> int:
        return self.n

    def read(self, rows: slice | np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
        """Strain and labels of ``rows`` (a slice, or indices in any order, repeats allowed)."""
        ds = self._file()["strain"]
        if isinstance(rows, slice):
            strain = ds[rows]
            sel = np.arange(self.n)[rows]
        else:
            sel = np.asarray(rows, dtype=np.int64)
            uniq, inverse = np.unique(sel, return_inverse=True)
            data = ds[uniq] if uniq.size else np.empty((0,) + self.shape, np.float32)
            strain = data[inverse]
        return {"strain": strain, "target": self.target[sel], "id": self.ids[sel], "snr": self.snr[sel], "index": sel}

    def truth(self) -> dict[str, np.ndarray]:
        """Simulation truth columns (empty for real data)."""
        h5 = self._file()
        if "truth" not in h5:
            return {}
        return {k: read_strings(ds) if h5py.check_string_dtype(ds.dtype) else ds[:] for k, ds in h5["truth"].items()}

    def whitener(self) -> Whitener:
        """The fitted whitener this set was prepared with."""
        cfg = self.preprocessing["whitener"]
        return Whitener.from_state(cfg, self.whitening_psd, int(self.attrs.get("whitening_n_fit", 1)))

    def preprocess_module(self) -> GwPreprocess:
        """Whitener + normalisation as one module: apply it to raw strain to match this set."""
        return GwPreprocess(self.whitener(), self.preprocessing.get("normalize", "channel"))
