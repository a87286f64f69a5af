"""Prepared spectra sets: spectra on a grid, ready for the networks, in one HDF5 file.

Spectra domain. Built on the core's HDF5 container (:mod:`astrocnn.core.h5sets`); the strain sibling is
:mod:`astrocnn.gw.dataset`. Layout of a prepared spectra file (``kind = "spectra"``)::

    /flux      (N, n_grid) float32  normalised flux on the grid, chunked by rows
    /ivar      (N, n_grid) float32  inverse variance of the normalised flux (0 = no data)
    /z         (N,) float32         redshift label (NaN if unknown)
    /cls       (N,) int8            class index into attrs["class_names"] (-1 if unknown)
    /id        (N,) str             object id (PLATE-MJD-FIBERID or file name)
    /snr       (N,) float32         median per-pixel S/N after resampling
    /coverage  (N,) float32         fraction of the grid with data
    /norm_mean, /norm_std (N,) float64   undo the normalisation: flux * std + mean
    /truth/<column>  (N,)           simulation truth (only for simulated sets)
    attrs: format, format_version, kind, grid (JSON), preprocess (JSON), class_names (JSON),
           source, seed, astrocnn_version (no time stamp: the same inputs give the same bytes)

Files are written under a temporary name and renamed when complete, so a file with the final name is
always whole. Rows are buffered and written in chunks, and read back in slices, so a set larger than
memory can be streamed.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.h5sets import FORMAT, STR, AtomicH5Writer, LazyH5Reader, chunk_rows, h5_dtype, read_strings
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.preprocess import Prepared, PreprocessConfig, config_from_record
from astrocnn.spectra.spectrum import CLASS_NAMES, class_index
from astrocnn.version import __version__

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "spectra"
#: rows buffered before a write, and per HDF5 chunk of flux/ivar when the set's size is not known
DEFAULT_CHUNK_ROWS = 256

_ROW_FIELDS = {
    "z": np.float32,
    "cls": np.int8,
    "snr": np.float32,
    "coverage": np.float32,
    "norm_mean": np.float64,
    "norm_std": np.float64,
}


class SpectraWriter(AtomicH5Writer):
    """Append prepared spectra to a new HDF5 file; the file appears under ``path`` only on :meth:`close`.

    Use as a context manager: an exception inside the block discards the partial file.

    Parameters
    ----------
    path : output file.
    grid : the grid every row lives on.
    preprocess : the preprocessing configuration used (stored for provenance and for ``predict``), or a whole
        preprocessing record (a mapping: the configuration's fields, and for a flux taken from arrays the
        :data:`~astrocnn.spectra.preprocess.ARRAYS_KEY` entry saying where it came from).
    source : free text, e.g. ``"simulated"`` or ``"sdss:/data/dr16q"``.
    seed : simulation seed, if any.
    truth_columns : name -> dtype kind (``"f"``, ``"i"``, ``"b"``, ``"U"``) of simulation truth columns.
    chunk_rows : rows buffered per write, and per HDF5 chunk of ``flux`` and ``ivar``.
    expected_rows : how many rows the file will hold, when known: chunks are never larger, so a small set
        takes little space on disk.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        grid: LogLambdaGrid,
        *,
        preprocess: PreprocessConfig | Mapping[str, Any] = PreprocessConfig(),
        source: str = "",
        seed: int | None = None,
        truth_columns: Mapping[str, str] | None = None,
        class_names: Sequence[str] = CLASS_NAMES,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        expected_rows: int | None = None,
        attrs: Mapping[str, Any] | None = None,
    ):
        self.grid = grid
        self.truth_columns = dict(truth_columns or {})
        self.class_names = tuple(class_names)
        self.chunk_rows = int(chunk_rows)
        self.expected_rows = expected_rows
        self.row_name = "spectra"
        self._open(path)
        self._buf: dict[str, list] = {}
        self._reset_buffer()
        try:
            self._guard(self._create, grid, preprocess, source, seed, attrs)
        except BaseException:
            self._discard()
            raise

    def _create(self, grid, preprocess, source, seed, attrs) -> None:
        n = grid.n
        chunks = (chunk_rows(4 * n, self.expected_rows, min(self.chunk_rows, 4096)), n)
        for name in ("flux", "ivar"):
            self._h5.create_dataset(name, shape=(0, n), maxshape=(None, n), dtype=np.float32, chunks=chunks)
        for name, dtype in _ROW_FIELDS.items():
            self._h5.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(4096,))
        self._h5.create_dataset("id", shape=(0,), maxshape=(None,), dtype=STR, chunks=(4096,))
        if self.truth_columns:
            g = self._h5.create_group("truth")
            for name, kind in self.truth_columns.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=h5_dtype(kind), chunks=(4096,))
        a = self._h5.attrs
        a["format"] = FORMAT
        a["format_version"] = FORMAT_VERSION
        a["kind"] = "spectra"
        a["grid"] = grid.to_json()
        a["preprocess"] = json.dumps(asdict(preprocess) if isinstance(preprocess, PreprocessConfig) else dict(preprocess))
        a["class_names"] = json.dumps(list(self.class_names))
        a["source"] = source
        a["seed"] = -1 if seed is None else int(seed)
        a["astrocnn_version"] = __version__
        for k, v in (attrs or {}).items():
            a[k] = v if isinstance(v, (int, float, str, np.number)) else json.dumps(v)

    def _reset_buffer(self) -> None:
        self._buf = {k: [] for k in ("flux", "ivar", "id", *_ROW_FIELDS)}
        self._buf.update({f"truth/{k}": [] for k in self.truth_columns})

    def __len__(self) -> int:
        return self._n + len(self._buf["id"])

    def append(
        self,
        prepared: Prepared,
        *,
        id: str,
        z: float = float("nan"),
        cls: str | int | None = None,
        truth: Mapping[str, Any] | None = None,
    ) -> None:
        """Add one prepared spectrum with its labels (and simulation truth, if the file has truth columns)."""
        if prepared.flux.shape != (self.grid.n,):
            raise ValueError(f"{id}: flux has shape {prepared.flux.shape}, the grid has {self.grid.n} pixels")
        b = self._buf
        b["flux"].append(prepared.flux)
        b["ivar"].append(prepared.ivar)
        b["id"].append(str(id))
        b["z"].append(z)
        b["cls"].append(cls if isinstance(cls, (int, np.integer)) else class_index(cls))
        b["snr"].append(prepared.snr)
        b["coverage"].append(prepared.coverage)
        b["norm_mean"].append(prepared.mean)
        b["norm_std"].append(prepared.std)
        if self.truth_columns:
            truth = truth or {}
            for k, kind in self.truth_columns.items():
                default = "" if kind in ("U", "S", "O") else (-1 if kind == "i" else (False if kind == "b" else np.nan))
                b[f"truth/{k}"].append(truth.get(k, default))
        if len(b["id"]) >= self.chunk_rows:
            self._guard(self._flush)

    def append_columns(self, columns: Mapping[str, np.ndarray]) -> None:
        """Add a block of rows given as whole columns (``flux``, ``ivar``, ``id``, ``z``, ``cls``, ``snr``,
        ``coverage``, ``norm_mean``, ``norm_std`` and ``truth/<name>`` for the file's truth columns), as
        :class:`SpectraSet` would read them back."""
        self._guard(self._flush)
        m = len(columns["id"])
        if m == 0:
            return
        if np.shape(columns["flux"]) != (m, self.grid.n):
            raise ValueError(f"flux has shape {np.shape(columns['flux'])}, expected ({m}, {self.grid.n})")
        lo, hi = self._n, self._n + m

        def write() -> None:
            for name in self._buf:
                ds = self._h5[name]
                ds.resize(hi, axis=0)
                values = columns[name]
                if h5py.check_string_dtype(ds.dtype):
                    ds[lo:hi] = np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)
                else:
                    ds[lo:hi] = np.asarray(values, dtype=ds.dtype)

        self._guard(write)
        self._n = hi

    def _flush(self) -> None:
        m = len(self._buf["id"])
        if m == 0:
            return
        lo, hi = self._n, self._n + m
        for name, values in self._buf.items():
            ds = self._h5[name]
            ds.resize(hi, axis=0)
            if name in ("flux", "ivar"):
                ds[lo:hi] = np.stack(values)
            elif ds.dtype == STR or h5py.check_string_dtype(ds.dtype):
                ds[lo:hi] = np.array([str(v) for v in values], dtype=object)
            else:
                ds[lo:hi] = np.asarray(values, dtype=ds.dtype)
        self._n = hi
        self._reset_buffer()

class SpectraSet(LazyH5Reader):
    """Read a prepared set. Labels and ids are loaded at once; flux and ivar are read in slices.

    >>> ds = SpectraSet("survey.h5")
    >>> batch = ds.read(slice(0, 256))       # dict of arrays
    >>> ds.z, ds.cls, ds.ids, ds.grid
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(self.path, "no such file")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(self.path, f"not a readable HDF5 file ({exc})") from exc
        try:
            self._load_index(h5)
        except (RuntimeError, OSError, ValueError, TypeError, MemoryError) as exc:
            # damaged object headers or heaps surface as any of these from h5py
            h5.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(self.path, f"damaged prepared set ({first})") from exc
        self._h5: h5py.File | None = None

    def _load_index(self, h5: h5py.File) -> None:
        try:
            if h5.attrs.get("format") != FORMAT:
                raise InputError(self.path, "not an astrocnn prepared set (run 'astrocnn prepare' or 'astrocnn simulate')")
            if int(h5.attrs.get("format_version", 0)) > FORMAT_VERSION:
                raise InputError(
                    self.path,
                    f"prepared with format version {h5.attrs['format_version']}, this astrocnn reads up to {FORMAT_VERSION}",
                )
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()}
            self.kind = str(self.attrs.get("kind", "spectra"))
            self.grid = LogLambdaGrid.from_json(self.attrs["grid"]) if "grid" in self.attrs else None
            self.class_names = tuple(json.loads(self.attrs.get("class_names", json.dumps(list(CLASS_NAMES)))))
            # a damaged header can claim absurd sizes: check before allocating anything
            n = int(h5["id"].shape[0])
            size = self.path.stat().st_size
            for name in ("z", "cls", "snr", "flux"):
                if name in h5 and (h5[name].shape[0] != n or n > size):
                    raise InputError(self.path, f"damaged prepared set ({name} has {h5[name].shape[0]} rows, id has "
                                                f"{n}, the file has {size} bytes)")
            self.z = h5["z"][:] if "z" in h5 else None
            self.cls = h5["cls"][:] if "cls" in h5 else None
            self.ids = read_strings(h5["id"])
            self.snr = h5["snr"][:] if "snr" in h5 else None
            self.n = len(self.ids)
        except KeyError as exc:
            h5.close()
            raise InputError(self.path, f"prepared set is missing {exc}") from exc
        except InputError:
            h5.close()
            raise
        h5.close()

    @property
    def preprocess(self) -> PreprocessConfig:
        return config_from_record(json.loads(self.attrs["preprocess"]))

    def __len__(self) -> int:
        return self.n

    def read(self, rows: slice | np.ndarray | Sequence[int], fields: Sequence[str] = ("flux", "ivar")) -> dict[str, np.ndarray]:
        """Read ``fields`` for ``rows`` (a slice, or indices in any order). Labels come along."""
        h5 = self._file()
        if isinstance(rows, slice):
            out = {f: h5[f][rows] for f in fields}
            sel = np.arange(self.n)[rows]
        else:
            sel = np.asarray(rows, dtype=np.int64)
            order = np.argsort(sel)
            sorted_sel = sel[order]
            uniq, inverse = np.unique(sorted_sel, return_inverse=True)
            out = {}
            for f in fields:
                data = h5[f][uniq] if uniq.size else np.empty((0,) + h5[f].shape[1:], h5[f].dtype)
                back = np.empty((sel.size,) + data.shape[1:], data.dtype)
                back[order] = data[inverse]
                out[f] = back
        out["index"] = sel
        if self.z is not None:
            out["z"] = self.z[sel]
        if self.cls is not None:
            out["cls"] = self.cls[sel]
        out["id"] = self.ids[sel]
        return out

    def column(self, name: str) -> np.ndarray:
        """A whole per-row column (``snr``, ``coverage``, ``norm_mean`` ... or ``truth/<name>``)."""
        h5 = self._file()
        if name not in h5:
            raise KeyError(f"{self.path}: no column {name!r}")
        return read_strings(h5[name]) if h5py.check_string_dtype(h5[name].dtype) else h5[name][:]

    def truth(self) -> dict[str, np.ndarray]:
        """All simulation truth columns (empty for real data)."""
        h5 = self._file()
        if "truth" not in h5:
            return {}
        return {k: self.column(f"truth/{k}") for k in h5["truth"]}

