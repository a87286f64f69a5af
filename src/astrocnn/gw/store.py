"""Prepared gravitational-wave sets: preprocessed strain in one HDF5 file, the format the networks read.

Layout (``kind = "strain"``), the GW sibling of :mod:`astrocnn.store`'s spectra sets::

    /strain          (N, 3, 4096) float32  whitened, band-passed, normalised strain, chunked by rows
    /target          (N,) int8             1 signal, 0 noise only, -1 unknown
    /id              (N,) str              sample id
    /snr             (N,) float32          injected network SNR (NaN if unknown or noise only)
    /whitening_psd   (3, 2049) float64     the noise PSD (1/Hz) the strain was whitened with
    /truth/<column>  (N,)                  simulation truth, when the source folder had a truth.csv
    attrs: format="astrocnn-prepared", format_version=1, kind="strain", sample_rate, n_samples, detectors
           (JSON), preprocessing (JSON: the Whitener config and the normalisation), whitening_fit (where the
           PSD came from), whitening_n_fit, source, n, astrocnn_version, input_fingerprint (no time stamp)

The file appears under its final name only when complete. An evaluation set must be whitened with the
TRAINING set's PSD: pass the training set's path (or its :class:`Whitener`) as ``whitener``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np
import torch

from .. import __version__
from ..errors import InputError
from ..store import AtomicH5Writer, LazyH5Reader
from .readers import DETECTORS, G2NetIndex, load_g2net_sample, read_g2net
from .transforms import GwPreprocess, Whitener

log = logging.getLogger(__name__)

FORMAT = "astrocnn-prepared"
FORMAT_VERSION = 1
KIND = "strain"
DEFAULT_CHUNK_ROWS = 64  # 64 x 3 x 4096 float32 = 3 MiB per chunk

_STR = h5py.string_dtype("utf-8")


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
        attrs: Mapping[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.shape = (len(detectors), int(n_samples))
        self.truth_columns = dict(truth_columns or {})
        self.chunk_rows = int(chunk_rows)
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
                          chunks=(self.chunk_rows,) + self.shape)
        h5.create_dataset("target", shape=(0,), maxshape=(None,), dtype=np.int8, chunks=(4096,))
        h5.create_dataset("snr", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(4096,))
        h5.create_dataset("id", shape=(0,), maxshape=(None,), dtype=_STR, chunks=(4096,))
        h5.create_dataset("whitening_psd", data=np.asarray(whitening_psd, dtype=np.float64))
        if self.truth_columns:
            g = h5.create_group("truth")
            for name, kind in self.truth_columns.items():
                g.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR if kind == "U" else np.float64,
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
                self.ids = np.array([s.decode() if isinstance(s, bytes) else s for s in h5["id"][:]], dtype=object)
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
        out = {}
        for k, ds in h5["truth"].items():
            data = ds[:]
            if h5py.check_string_dtype(ds.dtype):
                data = np.array([s.decode() if isinstance(s, bytes) else s for s in data], dtype=object)
            out[k] = data
        return out

    def whitener(self) -> Whitener:
        """The fitted whitener this set was prepared with."""
        cfg = self.preprocessing["whitener"]
        return Whitener.from_state(cfg, self.whitening_psd, int(self.attrs.get("whitening_n_fit", 1)))

    def preprocess_module(self) -> GwPreprocess:
        """Whitener + normalisation as one module: apply it to raw strain to match this set."""
        return GwPreprocess(self.whitener(), self.preprocessing.get("normalize", "channel"))



def _load_rows(paths: Sequence[Path], workers: int) -> np.ndarray:
    if workers <= 1 or len(paths) < 2:
        return np.stack([load_g2net_sample(p) for p in paths])
    with ThreadPoolExecutor(workers) as pool:
        return np.stack(list(pool.map(load_g2net_sample, paths)))


def _try_load(path: Path) -> np.ndarray | InputError:
    try:
        return load_g2net_sample(path)
    except InputError as exc:
        return exc


def load_rows_checked(paths: Sequence[Path], workers: int, on_error: str = "fail"
                      ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Load samples, keeping the readable ones: ``(strain (k, 3, n) of the good ones, their positions in
    paths, [(position, problem)] of the bad ones)``. With ``on_error="fail"`` the first bad one raises."""
    if workers <= 1 or len(paths) < 2:
        loaded = [_try_load(p) for p in paths]
    else:
        with ThreadPoolExecutor(workers) as pool:
            loaded = list(pool.map(_try_load, paths))
    good, bad = [], []
    for i, x in enumerate(loaded):
        if isinstance(x, InputError):
            if on_error == "fail":
                raise x
            bad.append((i, x.problem))
        else:
            good.append(i)
    rows = np.stack([loaded[i] for i in good]) if good else np.zeros((0, 3, 4096))
    return rows, good, bad


def fit_whitener(index: G2NetIndex, *, alpha: float = 0.2, band: tuple[float, float] | None = (20.0, 500.0),
                 order: int = 4, max_samples: int | None = None, batch_size: int = 512, workers: int = 1,
                 on_error: str = "fail") -> Whitener:
    """Fit a :class:`Whitener` on the noise-only (target 0) samples of an indexed G2Net folder.

    ``on_error="skip"`` leaves unreadable samples out of the fit (``"fail"``: the first one raises)."""
    noise = np.nonzero(index.target == 0)[0]
    if max_samples is not None:
        noise = noise[:max_samples]
    if noise.size == 0:
        raise InputError(index.root, "no noise-only (target 0) samples to fit the whitening PSD on; "
                         "pass the training set's whitener")
    w = Whitener(alpha=alpha, band=band, order=order)
    n_bad = 0
    for lo in range(0, noise.size, batch_size):
        rows, _, bad = load_rows_checked([index.paths[i] for i in noise[lo: lo + batch_size]], workers, on_error)
        n_bad += len(bad)
        w.partial_fit(rows)
    if not w.fitted:
        raise InputError(index.root, "none of the noise-only (target 0) samples could be read to fit the whitening PSD")
    log.info("%s: whitening PSD fitted on %d noise-only samples%s", index.root, int(w.n_fit),
             f" ({n_bad} unreadable ones left out)" if n_bad else "")
    return w


def _part_key(index: G2NetIndex, lo: int, hi: int, truth_cols: Sequence[str]) -> str:
    from ..parts import file_signature, fingerprint

    return fingerprint([[file_signature(index.paths[i]), str(index.ids[i]), int(index.target[i]),
                         float(index.snr[i]), [str(index.truth[c][i]) for c in truth_cols]] for i in range(lo, hi)])


def prepare_g2net(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    whitener: Whitener | str | os.PathLike | None = None,
    workers: int | None = None,
    *,
    normalize: str = "channel",
    alpha: float = 0.2,
    band: tuple[float, float] | None = (20.0, 500.0),
    order: int = 4,
    fit_max: int | None = None,
    batch_size: int = 256,
    split: str | None = None,
    on_error: str = "fail",
    force: bool = False,
    part_size: int | None = None,
) -> Path:
    """Whiten, band-pass and normalise every sample of a G2Net-layout folder into a prepared set at ``out``.

    ``whitener``: None fits one on the noise-only samples of ``directory`` (a TRAINING set; at most
    ``fit_max``); for an evaluation set pass the training set's :class:`Whitener` or its prepared file, so the
    evaluation labels never shape the preprocessing. ``workers`` threads read the .npy files (default 4).
    ``on_error``: ``"fail"`` (default) raises :class:`InputError` at the first unreadable sample and writes
    nothing; ``"skip"`` leaves such samples out and lists them with their reason in ``<out stem>.rejects.csv``.

    Re-runnable like :func:`~astrocnn.spectra.pipeline.prepare_sdss` (:mod:`astrocnn.parts`): samples are
    prepared in parts of ``part_size`` (default 2048) kept in ``<out>.parts/`` with the fitted whitener, so
    an interrupted run started again skips what was done and writes the same file as an uninterrupted
    run; an up-to-date ``out`` is left alone unless ``force``. Returns ``out``.
    """
    from ..parts import DEFAULT_PART_SIZE, FINGERPRINT_ATTR, Parts, canonical, file_signature
    from ..spectra.pipeline import PrepareReport, _finish_rejects, rejects_path

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    part_size = DEFAULT_PART_SIZE if part_size is None else int(part_size)
    if part_size < 1:
        raise ValueError(f"part_size must be at least 1, got {part_size}")
    out = Path(out)
    index = read_g2net(directory, split=split)
    n_threads = 4 if workers is None else max(1, int(workers))
    fit_settings = None
    if whitener is None:
        fit_settings = {"alpha": alpha, "band": band, "order": order, "fit_max": fit_max}
        whitener_settings: Any = {"fit": fit_settings}
        source_fit = f"noise-only samples of {directory}"
    elif isinstance(whitener, Whitener):
        if not whitener.fitted:
            raise RuntimeError("the Whitener passed to prepare_g2net is not fitted")
        whitener_settings = {"given": whitener.config(), "n_fit": int(whitener.n_fit),
                             "psd": hashlib.sha256(whitener.psd.numpy().tobytes()).hexdigest()}
        source_fit = "given Whitener"
    else:
        ref_path = Path(whitener)
        with StrainSet(ref_path) as ref:
            whitener_settings = {"from": file_signature(ref_path)}
            source_fit = f"{ref.attrs.get('whitening_fit', '')} (via {ref_path})"
            whitener = ref.whitener()
            normalize = ref.preprocessing.get("normalize", normalize)
    truth_cols = [c for c in index.truth if c not in ("target", "snr")]
    bounds = [(lo, min(len(index), lo + part_size)) for lo in range(0, len(index), part_size)]
    try:
        part_keys = [_part_key(index, lo, hi, truth_cols) for lo, hi in bounds]
    except OSError as exc:
        raise InputError(getattr(exc, "filename", None), f"cannot read ({exc.strerror or exc})") from exc
    settings = canonical({
        "job": "prepare g2net", "directory": str(directory), "split": split, "whitener": whitener_settings,
        "normalize": normalize, "batch_size": batch_size, "on_error": on_error, "part_size": part_size,
        "truth_columns": truth_cols, "format_version": FORMAT_VERSION, "astrocnn_version": __version__,
        "torch": torch.__version__,
    })
    rejects = rejects_path(out)
    report = PrepareReport(out=out, rejects_csv=rejects)
    with Parts(out, settings, part_keys, part_sizes=[hi - lo for lo, hi in bounds], what="samples", force=force,
               siblings=[rejects]) as job:
        if job.up_to_date:
            if job.all_done:
                report.rejected = job.rejected()
                _finish_rejects(report)
            log.info("%s is up to date with its inputs and settings: nothing to do (--force prepares it again)", out)
            job.complete()
            return out
        if fit_settings is not None:
            kept = job.load_arrays("whitener")
            if kept is not None:
                whitener = Whitener.from_state(json.loads(str(kept["config"])), kept["psd"], int(kept["n_fit"]))
                log.info("%s: whitening PSD taken from the interrupted run (%d noise-only samples)", out,
                         int(whitener.n_fit))
            else:
                whitener = fit_whitener(index, alpha=alpha, band=band, order=order, max_samples=fit_max,
                                        workers=n_threads, on_error=on_error)
                job.save_arrays("whitener", {"psd": whitener.psd.numpy(), "n_fit": np.array(int(whitener.n_fit)),
                                             "config": np.array(json.dumps(whitener.config()))})
        module = GwPreprocess(whitener, normalize)
        for i in job.todo:
            lo, hi = bounds[i]
            strain, ids, target, snr, truth, rejected = [], [], [], [], {c: [] for c in truth_cols}, []
            for b_lo in range(lo, hi, batch_size):
                b_hi = min(hi, b_lo + batch_size)
                raw, good, bad = load_rows_checked(index.paths[b_lo:b_hi], n_threads, on_error)
                rejected += [(str(index.paths[b_lo + j]), problem) for j, problem in bad]
                if not good:
                    continue
                with torch.no_grad():
                    strain.append(module(torch.as_tensor(raw)).numpy().astype(np.float32))
                sel = np.asarray(good) + b_lo
                ids += [str(x) for x in index.ids[sel]]
                target.append(index.target[sel])
                snr.append(index.snr[sel])
                for c in truth_cols:
                    truth[c] += [str(x) for x in index.truth[c][sel]]
                log.info("prepared %d/%d samples", b_hi, len(index))
            columns = {
                "strain": (np.concatenate(strain) if strain else
                           np.zeros((0, whitener.n_detectors, whitener.n_samples), np.float32)),
                "id": np.array(ids, dtype=object),
                "target": np.concatenate(target).astype(np.int8) if target else np.zeros(0, np.int8),
                "snr": np.concatenate(snr).astype(np.float32) if snr else np.zeros(0, np.float32),
                **{f"truth/{c}": np.array(v, dtype=object) for c, v in truth.items()},
            }
            job.write(i, columns, rejected)
        kept = sum(job.rows(i) for i in range(job.n))
        report.rejected = job.rejected()
        if kept == 0:
            job.discard()
            raise InputError(index.root, f"none of the {len(index)} samples could be used "
                                         f"(first: {report.rejected[0][0]}: {report.rejected[0][1]})")
        with StrainWriter(out, sample_rate=whitener.sample_rate, n_samples=whitener.n_samples,
                          preprocessing=module.config(), whitening_psd=whitener.psd.numpy(),
                          whitening_fit=source_fit, whitening_n_fit=int(whitener.n_fit), source=str(directory),
                          truth_columns={c: ("U" if c == "approximant" else "f") for c in truth_cols},
                          attrs={FINGERPRINT_ATTR: job.key}) as writer:
            for i in range(job.n):
                cols, _ = job.read(i)
                if len(cols["id"]):
                    writer.append(cols["strain"], list(cols["id"]), cols["target"], cols["snr"],
                                  {c: list(cols[f"truth/{c}"]) for c in truth_cols})
            report.kept = len(writer)
        _finish_rejects(report)
        job.complete()
    if report.rejected:
        log.warning("%s: %d of %d samples could not be used (reasons in %s)", out, len(report.rejected),
                    len(index), rejects)
    return out
