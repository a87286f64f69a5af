"""Spectra already on a log-wavelength grid, made into prepared sets: the paper authors' DR16Q HDF5 files and
the workshop's CSV pair (``astrocnn prepare arrays``).

Spectra domain, on the core. Two layouts:

- **HDF5 files laid out like the paper's DR16Q sets** (``dr16q-log-zvi-quasar.h5``, ``dr16q-log-zvi-galaxy.h5``):
  one row per spectrum in every dataset. Only ``flux`` or ``flux_norm`` (N, 4618) and the label column
  (default ``z_vi``) are required; every other one-dimensional dataset of N rows (``plate``, ``mjd``,
  ``fiberid``, ``z_pipe``, ``bal_prob``, ``sdss_name`` ...) is kept under ``truth/`` as it is, and the ids are
  PLATE-MJD-FIBERID when ``plate``, ``mjd`` and ``fiberid`` are there. ``wavelength`` / ``wavelength_log``,
  when present, must be the grid used.
- **The workshop's CSV pair** (``flux-2.8-3.csv`` / ``zpipe-2.8-3.csv``, written with ``csv.QUOTE_NONNUMERIC``):
  the fluxes of N spectra of one width, all on one line or one spectrum per line, and the N redshifts. The
  flux file is read as a stream, ``chunk_bytes`` at a time, never whole: the workshop's 448 MB file holds its
  22,454,000 values on a single line. The width is what the file holds (values per line, or all values / N).

Choices, stated once:

- **Grid**: the paper's (:data:`~astrocnn.spectra.grid.PAPER_GRID`, 4618 pixels) unless the user gives another
  (``loglam_start`` and ``loglam_step``, or a file of wavelengths); the flux width must be the grid's.
- **Normalisation** (recorded under :data:`~astrocnn.spectra.preprocess.ARRAYS_KEY` in the set's
  ``preprocess`` attribute, which a run trained on the set keeps): ``"given"`` keeps the values as the files
  give them (HDF5: ``flux_norm``; CSV: the values), which astrocnn cannot make again from a FITS file, so
  ``predict`` refuses FITS files for such a run; ``"astrocnn"`` normalises the file's ``flux`` (CSV: the values)
  to zero mean and unit variance per spectrum over its finite pixels, as
  :func:`~astrocnn.spectra.preprocess.preprocess` does. Default: ``"given"`` when every HDF5 file has
  ``flux_norm`` (the paper's input) and for CSV, else ``"astrocnn"``.
- **ivar**: the files carry no uncertainties. ``ivar`` is 1 where the flux is finite and 0 elsewhere: it says
  where there are data (the ``mask`` input channel) and nothing more; ``snr`` is NaN. Training such a set with
  ``aug_noise`` would add noise of the size of the spectrum itself.
- **Non-finite pixels** (NaN, +-inf, or beyond float32's range) are missing data: flux 0, ivar 0. A row with
  fewer than ``min_coverage`` finite pixels (a NaN row), or a constant one, is bad: it refuses the whole file,
  naming the row, unless ``skip_bad_rows`` leaves such rows out and lists them in ``OUT.rejects.csv``. A missing
  label (NaN, or DR16Q's -1) is not bad: the row is kept with ``z = NaN``, as ``prepare sdss`` does.
- **Bad files** (unreadable, a dataset missing, a width that is not the grid's, flux rows and labels that do
  not pair up, wavelengths that are not the grid) raise :class:`~astrocnn.core.errors.InputError`, one line
  naming the file and the problem. The output is written under a temporary name and appears only when whole.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.parts import (FINGERPRINT_ATTR, PrepareReport, file_signature, fingerprint, output_fingerprint,
                                 read_rejects, rejects_path)
from astrocnn.spectra.dataset import FORMAT_VERSION, SpectraSet, SpectraWriter
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.preprocess import ARRAYS_KEY, DEFAULT_MIN_COVERAGE, PreprocessConfig
from astrocnn.spectra.sdss import spec_id
from astrocnn.spectra.spectrum import CLASS_NAMES, class_index
from astrocnn.version import __version__

log = logging.getLogger(__name__)

#: bytes of a CSV file read at a time
DEFAULT_CHUNK_BYTES = 8 << 20
#: spectra read, normalised and written at a time
DEFAULT_BLOCK_ROWS = 256
#: the two normalisations a set made from arrays can carry
NORMALISATIONS = ("given", "astrocnn")
#: a file's wavelengths are the grid when every pixel centre lies within this fraction of a pixel of it
GRID_TOLERANCE_PIXELS = 0.05
#: DR16Q writes -1 for "no redshift": labels at or below this are missing
MISSING_Z = -1.0
#: the longest CSV value accepted, in bytes (a file without separators is not a CSV of numbers)
MAX_VALUE_BYTES = 1 << 16

HDF5_SUFFIXES = (".h5", ".hdf5", ".he5")
#: datasets of the DR16Q layout that are not per-spectrum columns to keep
_ARRAY_DATASETS = ("flux", "flux_norm", "wavelength", "wavelength_log")
_CLASS_WORDS = {"quasar": "qso", "qso": "qso", "galax": "galaxy", "star": "star"}


# ----------------------------------------------------------------------------------------------------
# small helpers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def class_from_name(path: str | os.PathLike) -> str | None:
    """The class a file name states (``dr16q-log-zvi-quasar.h5`` -> ``"qso"``), or None when it states none
    or several."""
    name = Path(path).name.lower()
    found = {cls for word, cls in _CLASS_WORDS.items() if word in name}
    return found.pop() if len(found) == 1 else None


def _kind(dtype: np.dtype) -> str | None:
    """The truth-column kind of an HDF5 dataset's dtype (None: not a column astrocnn keeps)."""
    if h5py.check_string_dtype(dtype) is not None or dtype.kind in ("S", "U", "O"):
        return "U"
    if dtype.kind in ("f", "i", "u", "b"):
        return dtype.newbyteorder("=").str
    return None


def _merge_kinds(a: str, b: str) -> str:
    if a == b:
        return a
    return "U" if "U" in (a, b) else "<f8"


def _missing(kind: str):
    """The value of a column for rows of a file that does not have it."""
    if kind == "U":
        return ""
    return {"b": False, "i": -1, "u": 0}.get(np.dtype(kind).kind, np.nan)


def _grid_text(grid: LogLambdaGrid) -> str:
    return f"{grid.lam_min:g}-{grid.lam_max:g} A with {grid.n} pixels"


# ----------------------------------------------------------------------------------------------------
# CSV, as a stream


def scan_csv(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[int]:
    """The number of values on each non-blank line of a CSV file, read ``chunk_bytes`` at a time."""
    counts: list[int] = []
    commas, content = 0, False
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                for k, piece in enumerate(chunk.split(b"\n")):
                    if k > 0:  # a newline ended the line before this piece
                        if content:
                            counts.append(commas + 1)
                        commas, content = 0, False
                    commas += piece.count(b",")
                    content = content or bool(piece.strip())
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc
    if content:
        counts.append(commas + 1)
    return counts


def _parse_slow(tokens: list[bytes], path, first: int) -> np.ndarray:
    """Values one by one (quoted numbers allowed); the first that is not a number is refused by its place."""
    out = np.empty(len(tokens))
    for k, tok in enumerate(tokens):
        text = tok.strip()
        try:
            out[k] = float(text[1:-1] if text[:1] == b'"' and text[-1:] == b'"' and len(text) > 1 else text)
        except ValueError:
            shown = text[:24].decode("utf-8", "replace")
            raise InputError(path, f"value {first + k + 1:,} is not a number ({shown!r})") from None
    return out


def _parse(text: bytes, path, first: int) -> np.ndarray:
    """The values in ``text`` (whole values separated by commas and newlines; blank lines ignored)."""
    lines = [s for s in text.split(b"\n") if s.strip()]
    if not lines:
        return np.zeros(0)
    joined = lines[0] if len(lines) == 1 else b",".join(lines)
    expected = joined.count(b",") + 1
    try:
        values = np.fromstring(joined, sep=",")  # numpy's C parser: ~40 MB/s, no Python object per value
    except ValueError:
        values = None
    if values is None or values.size != expected:
        values = _parse_slow(joined.split(b","), path, first)
    return values


def iter_csv_values(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[np.ndarray]:
    """The numbers of a CSV file in file order, as float64 arrays of about ``chunk_bytes / 20`` values: the file
    is read ``chunk_bytes`` at a time, so memory stays bounded however long its lines are."""
    rest, done = b"", 0
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(chunk_bytes)
                data = rest + chunk if rest else chunk
                if not chunk:
                    if data.strip():
                        yield _parse(data, path, done)
                    return
                cut = max(data.rfind(b","), data.rfind(b"\n"))
                if cut < 0:
                    if len(data) > MAX_VALUE_BYTES:
                        raise InputError(path, f"{len(data):,} bytes without a comma or a newline: not a CSV of "
                                               "numbers")
                    rest = data
                    continue
                rest = data[cut + 1:]
                values = _parse(data[:cut], path, done)
                done += values.size
                yield values
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc


def read_csv_values(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """All the numbers of a (small) CSV file, e.g. the redshifts of the workshop's pair."""
    parts = list(iter_csv_values(path, chunk_bytes))
    return np.concatenate(parts) if parts else np.zeros(0)


def read_wavelengths(path: str | os.PathLike) -> np.ndarray:
    """Wavelengths from a file: ``.npy``, or numbers separated by commas, spaces or newlines (Angstrom, or log10
    of them)."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        else:
            values = np.array([float(t) for t in re.split(r"[,\s]+", path.read_text().strip()) if t], dtype=np.float64)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a file of wavelengths ({_first_line(exc)})") from exc
    return np.asarray(values, dtype=np.float64).ravel()


# ----------------------------------------------------------------------------------------------------
# the grid


def as_loglam(values: np.ndarray, where: str | os.PathLike, what: str = "wavelengths") -> np.ndarray:
    """log10(Angstrom) of wavelengths given in Angstrom, log10 or natural log (the ranges do not overlap for
    optical spectra: > 100, < 5, 5-12)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0 or not np.isfinite(v).all():
        raise InputError(where, f"{what} are empty or not all finite")
    if v.min() > 100:
        return np.log10(v)
    if v.max() < 5:
        return v
    if v.max() < 12:
        return v / np.log(10.0)
    raise InputError(where, f"{what} run {v.min():g}-{v.max():g}: neither Angstrom nor a logarithm of them")


def grid_from_loglam(start: float, step: float, n: int) -> LogLambdaGrid:
    """The grid of ``n`` pixels from log10(lambda) = ``start`` in steps of ``step`` dex."""
    if not (np.isfinite(start) and np.isfinite(step) and step > 0):
        raise InputError(None, f"the grid needs a finite log10 start and a positive step, got {start} and {step}")
    return LogLambdaGrid(float(10.0 ** start), float(10.0 ** (start + step * (n - 1))), int(n))


def _uniform(loglam: np.ndarray) -> tuple[float, float] | None:
    """(start, step) when ``loglam`` is uniform to :data:`GRID_TOLERANCE_PIXELS` of a pixel, else None."""
    if loglam.size < 2:
        return None
    step = (loglam[-1] - loglam[0]) / (loglam.size - 1)
    line = loglam[0] + step * np.arange(loglam.size)
    if step <= 0 or np.abs(loglam - line).max() > GRID_TOLERANCE_PIXELS * step:
        return None
    return float(loglam[0]), float(step)


def grid_from_wavelengths(values: np.ndarray, where: str | os.PathLike) -> LogLambdaGrid:
    """The grid a list of pixel wavelengths (Angstrom or log10) describes; refused unless uniform in log10."""
    loglam = as_loglam(values, where)
    fit = _uniform(loglam)
    if fit is None:
        raise InputError(where, f"the {loglam.size} wavelengths are not uniform in log10(lambda)")
    return grid_from_loglam(fit[0], fit[1], loglam.size)


def check_on_grid(loglam: np.ndarray, grid: LogLambdaGrid, where: str | os.PathLike, what: str) -> None:
    """Refuse wavelengths (log10 Angstrom, shape (n,)) that are not ``grid``'s pixel centres, saying what they
    are instead."""
    if loglam.size == grid.n and np.abs(loglam - grid.loglam).max() <= GRID_TOLERANCE_PIXELS * grid.step:
        return
    fit = _uniform(loglam)
    if fit is None:
        own = f"its {loglam.size} values are not uniform in log10(lambda)"
    else:
        own = (f"it runs {10 ** fit[0]:.2f}-{10 ** (fit[0] + fit[1] * (loglam.size - 1)):.2f} A in {loglam.size} "
               f"pixels (to use that grid give --loglam-start {fit[0]:.10g} --loglam-step {fit[1]:.10g})")
    raise InputError(where, f"{what} is not the grid used ({_grid_text(grid)}): {own}")


# ----------------------------------------------------------------------------------------------------
# normalisation


@dataclass
class NormalisedRows:
    """Rows of raw flux made into set rows. ``flux``, ``ivar``: (m, n) float32; ``coverage`` (fraction of
    finite pixels), ``mean``, ``std`` (``flux * std + mean`` gives the file's values back): (m,);
    ``problems``: why each row cannot be used, "" for a good one."""

    flux: np.ndarray
    ivar: np.ndarray
    coverage: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    problems: list[str]


def _row_problem(coverage: float, mean: float, std: float, min_coverage: float) -> str:
    if coverage == 0:
        return "no finite flux"
    if coverage < min_coverage:
        return f"only {coverage:.0%} of its pixels are finite (minimum {min_coverage:.0%})"
    if not (np.isfinite(mean) and np.isfinite(std)):
        return "flux values too large for the arithmetic"
    if std <= 0 or std < 1e-12 * max(abs(mean), 1e-30):
        return "flux is constant"
    return ""


def normalise_rows(flux: np.ndarray, normalisation: str = "given",
                   min_coverage: float = DEFAULT_MIN_COVERAGE) -> NormalisedRows:
    """Rows of flux (m, n) as a prepared set stores them: ``"given"`` keeps the values, ``"astrocnn"`` makes
    them zero-mean and unit-variance over the finite pixels (the statistics of
    :func:`~astrocnn.spectra.preprocess.preprocess`). Non-finite pixels become flux 0, ivar 0; finite ones
    get ivar 1 (the files carry no uncertainties)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    x = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x) & (np.abs(x) <= float(np.finfo(np.float32).max))
    n_ok = finite.sum(axis=1)
    coverage = n_ok / x.shape[1]
    kept = np.where(finite, x, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = kept.sum(axis=1) / np.maximum(n_ok, 1)
        std = np.sqrt((np.where(finite, x - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(n_ok, 1))
    problems = [_row_problem(c, m, s, min_coverage) for c, m, s in zip(coverage, mean, std)]
    if normalisation == "astrocnn":
        usable = np.array([not p for p in problems])
        scale = np.where(usable, std, 1.0)
        with np.errstate(over="ignore", invalid="ignore"):
            kept = np.where(finite & usable[:, None], (x - mean[:, None]) / scale[:, None], 0.0)
        norm_mean, norm_std = mean, std
    else:
        norm_mean, norm_std = np.zeros(len(x)), np.ones(len(x))
    return NormalisedRows(kept.astype(np.float32), finite.astype(np.float32), coverage, norm_mean, norm_std,
                          problems)


# ----------------------------------------------------------------------------------------------------
# the two layouts


@dataclass
class Block:
    """Consecutive rows of one input: ``flux`` (m, width) float64 as read, ``z`` (m,) with missing labels
    as NaN, ``ids``, the file's own per-row columns, and the first row's index in the file."""

    flux: np.ndarray
    z: np.ndarray
    ids: list[str]
    truth: dict[str, np.ndarray]
    start: int


def _labels(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(z) & (z > MISSING_Z), z, np.nan)


def _resolve_class(cls: str | None, *paths: Path) -> str:
    if cls is not None:
        if cls not in CLASS_NAMES:
            raise ValueError(f"unknown class {cls!r}; choose from {list(CLASS_NAMES)}")
        return cls
    for p in paths:
        found = class_from_name(p)
        if found is not None:
            return found
    raise InputError(paths[0], f"cannot tell the class of its spectra from the file name: give --class "
                               f"({'|'.join(CLASS_NAMES)})")


@dataclass
class Dr16qFile:
    """An HDF5 file laid out like the paper's DR16Q sets, checked on opening (see the module's docstring)."""

    path: Path
    label_column: str = "z_vi"
    cls: str | None = None
    layout = "dr16q-hdf5"
    n: int = 0
    fluxes: dict[str, tuple[int, ...]] = field(default_factory=dict)  #: ``flux`` / ``flux_norm`` -> shape
    columns: dict[str, str] = field(default_factory=dict)  #: kept per-row datasets -> kind
    wavelengths: list[str] = field(default_factory=list)
    flux_name: str = ""

    def __post_init__(self) -> None:
        self.cls = _resolve_class(self.cls, self.path)
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise InputError(self.path, f"not a readable HDF5 file ({_first_line(exc)})") from exc
        with h5:
            try:
                self._inspect(h5)
            except (OSError, RuntimeError, KeyError, TypeError) as exc:
                raise InputError(self.path, f"damaged HDF5 file ({_first_line(exc)})") from exc

    def _inspect(self, h5: h5py.File) -> None:
        datasets = {k: v for k, v in h5.items() if isinstance(v, h5py.Dataset)}
        self.fluxes = {k: datasets[k].shape for k in ("flux", "flux_norm") if k in datasets}
        if not self.fluxes:
            have = ", ".join(sorted(datasets)) or "none"
            raise InputError(self.path, f"has no flux or flux_norm dataset (it has: {have})")
        name, shape = next(iter(self.fluxes.items()))
        if len(shape) != 2 or shape[0] == 0:
            raise InputError(self.path, f"{name} has shape {shape}, not (spectra, pixels)")
        self.n = int(shape[0])
        matches = [k for k in datasets if k.lower() == self.label_column.lower()]
        label = self.label_column if self.label_column in datasets else (matches[0] if len(matches) == 1 else None)
        if label is None:
            raise InputError(self.path, f"has no {self.label_column} dataset for the labels (give --label-column; "
                                        f"it has: {', '.join(sorted(datasets))})")
        ds = datasets[label]
        if ds.shape != (self.n,) or ds.dtype.kind not in "fiu":
            raise InputError(self.path, f"label column {label} has shape {ds.shape} and type {ds.dtype}, "
                                        f"not {self.n} numbers (one per spectrum)")
        self.label_column = label
        self.wavelengths = [k for k in ("wavelength", "wavelength_log") if k in datasets]
        for k, d in datasets.items():
            kind = _kind(d.dtype)
            if k not in _ARRAY_DATASETS and d.shape == (self.n,) and kind is not None:
                self.columns[k] = kind
            elif k not in _ARRAY_DATASETS:
                log.debug("%s: %s (shape %s, %s) is not a per-spectrum column: left out", self.path, k, d.shape,
                          d.dtype)

    def use(self, normalisation: str) -> None:
        """Choose the flux for ``normalisation``: ``flux_norm`` as given, or ``flux`` for astrocnn to normalise."""
        self.flux_name = "flux_norm" if normalisation == "given" else "flux"
        if self.flux_name not in self.fluxes:
            other = "astrocnn" if normalisation == "given" else "given"
            raise InputError(self.path, f"has no {self.flux_name} dataset for --normalise {normalisation} "
                                        f"(use --normalise {other})")
        shape = self.fluxes[self.flux_name]
        if len(shape) != 2 or shape[0] != self.n:
            raise InputError(self.path, f"{self.flux_name} has shape {shape}; the file has {self.n} spectra")

    @property
    def width(self) -> int:
        return int(self.fluxes[self.flux_name or next(iter(self.fluxes))][1])

    def check_grid(self, grid: LogLambdaGrid, block_rows: int = DEFAULT_BLOCK_ROWS) -> None:
        """Refuse the file if its ``wavelength`` / ``wavelength_log`` (one row, or one per spectrum) is not ``grid``."""
        with h5py.File(self.path, "r") as h5:
            for name in self.wavelengths:
                ds = h5[name]
                if ds.ndim == 1:
                    check_on_grid(as_loglam(ds[:], self.path, name), grid, self.path, name)
                    continue
                if ds.ndim != 2 or ds.shape[0] != self.n:
                    raise InputError(self.path, f"{name} has shape {ds.shape}, neither one row nor one per spectrum")
                for lo in range(0, self.n, block_rows):
                    rows = as_loglam(ds[lo:lo + block_rows], self.path, name)
                    if rows.shape[1] != grid.n:
                        check_on_grid(rows[0], grid, self.path, f"{name} row {lo}")
                    off = np.abs(rows - grid.loglam).max(axis=1) > GRID_TOLERANCE_PIXELS * grid.step
                    if off.any():  # the first row off the grid, in words
                        i = int(np.argmax(off))
                        check_on_grid(rows[i], grid, self.path, f"{name} row {lo + i}")

    def _ids(self, h5: h5py.File, lo: int, hi: int) -> list[str]:
        if all(k in self.columns and self.columns[k] != "U" for k in ("plate", "mjd", "fiberid")):
            p, m, f = (h5[k][lo:hi] for k in ("plate", "mjd", "fiberid"))
            return [spec_id(a, b, c) for a, b, c in zip(p, m, f)]
        return [f"{self.path.name}:{i}" for i in range(lo, hi)]

    def blocks(self, block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[Block]:
        """The file's spectra, ``block_rows`` at a time."""
        with h5py.File(self.path, "r") as h5:
            for lo in range(0, self.n, block_rows):
                hi = min(self.n, lo + block_rows)
                try:
                    flux = np.asarray(h5[self.flux_name][lo:hi], dtype=np.float64)
                    z = _labels(h5[self.label_column][lo:hi])
                    truth = {k: _column(h5[k], lo, hi, kind) for k, kind in self.columns.items()}
                    ids = self._ids(h5, lo, hi)
                except (OSError, RuntimeError, ValueError) as exc:
                    raise InputError(self.path, f"cannot read rows {lo}-{hi - 1} ({_first_line(exc)})") from exc
                yield Block(flux, z, ids, truth, lo)


def _column(ds: h5py.Dataset, lo: int, hi: int, kind: str) -> np.ndarray:
    values = ds[lo:hi]
    if kind == "U":
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values],
                        dtype=object)
    return np.asarray(values)


@dataclass
class CsvPair:
    """The workshop's CSV pair: ``flux_path`` (N spectra of one width, on one line or one per line) and
    ``labels_path`` (the N redshifts), checked on opening; the flux file is scanned, not held."""

    flux_path: Path
    labels_path: Path
    cls: str | None = None
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    layout = "workshop-csv"
    n: int = 0
    width: int = 0
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cls = _resolve_class(self.cls, self.flux_path, self.labels_path)
        self.z = _labels(read_csv_values(self.labels_path, self.chunk_bytes))
        self.n = int(self.z.size)
        if self.n == 0:
            raise InputError(self.labels_path, "holds no redshifts")
        counts = scan_csv(self.flux_path, self.chunk_bytes)
        if not counts:
            raise InputError(self.flux_path, "holds no values")
        if len(counts) == 1:
            if counts[0] % self.n:
                raise InputError(self.flux_path, f"holds {counts[0]:,} values on one line: not a whole number of "
                                                 f"spectra for the {self.n:,} redshifts in {self.labels_path.name}")
            self.width = counts[0] // self.n
        else:
            odd = next((i for i, c in enumerate(counts) if c != counts[0]), None)
            if odd is not None:
                raise InputError(self.flux_path, f"line {odd + 1} holds {counts[odd]:,} values, line 1 holds "
                                                 f"{counts[0]:,}: not one spectrum per line")
            if len(counts) != self.n:
                raise InputError(self.flux_path, f"holds {len(counts):,} spectra (one per line) but "
                                                 f"{self.labels_path.name} has {self.n:,} redshifts")
            self.width = counts[0]
        self.columns = {}

    @property
    def path(self) -> Path:
        return self.flux_path

    def use(self, normalisation: str) -> None:
        """Nothing to choose: the file has one flux."""

    def check_grid(self, grid: LogLambdaGrid, block_rows: int = DEFAULT_BLOCK_ROWS) -> None:
        """Nothing to check: the file carries no wavelengths."""

    def blocks(self, block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[Block]:
        """The spectra, ``block_rows`` at a time, assembled from the value stream."""
        start, buf, filled = 0, np.empty(block_rows * self.width), 0
        for values in iter_csv_values(self.flux_path, self.chunk_bytes):
            pos = 0
            while pos < values.size:
                take = min(values.size - pos, buf.size - filled)
                if start * self.width + filled + take > self.n * self.width:
                    raise InputError(self.flux_path, f"holds more values than the {self.n:,} x {self.width} scanned")
                buf[filled:filled + take] = values[pos:pos + take]
                filled, pos = filled + take, pos + take
                if filled == buf.size:
                    yield self._block(buf.reshape(block_rows, self.width), start)
                    start, buf, filled = start + block_rows, np.empty(block_rows * self.width), 0
        if filled:
            yield self._block(buf[:filled].reshape(-1, self.width), start)
            start += filled // self.width
        if start != self.n:
            raise InputError(self.flux_path, f"could read only {start:,} of its {self.n:,} spectra (an empty value?)")

    def _block(self, flux: np.ndarray, start: int) -> Block:
        m = len(flux)
        return Block(flux, self.z[start:start + m], [f"{self.flux_path.name}:{i}" for i in range(start, start + m)],
                     {}, start)


# ----------------------------------------------------------------------------------------------------
# the job


def open_sources(inputs: Sequence[Path], label_column: str = "z_vi", cls: str | None = None,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Dr16qFile | CsvPair]:
    """The inputs as checked sources: HDF5 files one by one, CSV files in (flux, labels) pairs. A CSV whose
    name starts with ``flux`` holds fluxes; its labels are the other CSV (when there are two) or the one whose
    name ends the same way (``flux-2.8-3.csv`` / ``zpipe-2.8-3.csv``)."""
    for p in inputs:
        if not p.is_file():
            raise InputError(p, "no such file")
    h5s = [p for p in inputs if p.suffix.lower() in HDF5_SUFFIXES]
    csvs = [p for p in inputs if p.suffix.lower() == ".csv"]
    other = [p for p in inputs if p not in h5s and p not in csvs]
    if other:
        raise InputError(other[0], f"neither an HDF5 file ({', '.join(HDF5_SUFFIXES)}) nor a .csv file")
    if h5s and csvs:
        raise InputError(None, "give either HDF5 files or CSV pairs, not both: they make sets of different kinds")
    if h5s:
        return [Dr16qFile(p, label_column, cls) for p in h5s]
    return [CsvPair(f, z, cls, chunk_bytes) for f, z in _pairs(csvs)]


def _pairs(csvs: Sequence[Path]) -> list[tuple[Path, Path]]:
    fluxes = [p for p in csvs if p.name.lower().startswith("flux")]
    labels = [p for p in csvs if p not in fluxes]
    if not fluxes:
        raise InputError(csvs[0], "no flux file among the CSV inputs (its name starts with 'flux', e.g. "
                                  "flux-2.8-3.csv)")
    if len(fluxes) == 1 and len(labels) == 1:
        return [(fluxes[0], labels[0])]

    def tail(p: Path) -> str:
        return p.stem.split("-", 1)[1] if "-" in p.stem else ""

    pairs = []
    for f in fluxes:
        match = [z for z in labels if tail(z) == tail(f) and tail(f)]
        if len(match) != 1:
            raise InputError(f, f"no single labels file for it among the inputs (e.g. zpipe-{tail(f) or 'X'}.csv)")
        pairs.append((f, match[0]))
    unused = set(labels) - {z for _, z in pairs}
    if unused:
        raise InputError(sorted(unused)[0], "a CSV without its flux file among the inputs")
    return pairs


def choose_normalisation(sources: Sequence[Dr16qFile | CsvPair], normalisation: str | None) -> str:
    """``normalisation`` if given; else ``"given"`` when every HDF5 file has ``flux_norm`` (and for CSV), else
    ``"astrocnn"``."""
    if normalisation is not None:
        if normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
        return normalisation
    return "given" if all(isinstance(s, CsvPair) or "flux_norm" in s.fluxes for s in sources) else "astrocnn"


def choose_grid(sources: Sequence[Dr16qFile | CsvPair], grid: LogLambdaGrid | None = None,
                loglam_start: float | None = None, loglam_step: float | None = None,
                wavelength: str | os.PathLike | None = None) -> LogLambdaGrid:
    """The grid the sources are on: ``grid``, or one given by ``loglam_start``/``loglam_step`` or a wavelength
    file, or the paper's when the width is 4618; every source's width must be the grid's."""
    widths = {s.width for s in sources}
    if len(widths) > 1:
        first = sources[0]
        odd = next(s for s in sources if s.width != first.width)
        raise InputError(odd.path, f"holds spectra of {odd.width} pixels, {first.path.name} of {first.width}: one set "
                                   "holds one width")
    width = widths.pop()
    if (loglam_start is None) != (loglam_step is None):
        raise InputError(None, "the grid needs both a log10 start and a step (--loglam-start and --loglam-step)")
    if sum(x is not None for x in (grid, loglam_start, wavelength)) > 1:
        raise InputError(None, "give one grid: a log10 start and step, or a wavelength file")
    if loglam_start is not None:
        grid = grid_from_loglam(loglam_start, loglam_step, width)
    elif wavelength is not None:
        grid = grid_from_wavelengths(read_wavelengths(wavelength), wavelength)
    given = grid is not None
    grid = grid or PAPER_GRID
    if width != grid.n:
        hint = "" if given else ": give its grid with --loglam-start and --loglam-step, or --wavelength FILE"
        which = "the grid given" if given else "the paper grid"
        raise InputError(sources[0].path, f"holds spectra of {width} pixels, {which} has {grid.n}{hint}")
    return grid


def _record(sources, normalisation: str, min_coverage: float) -> dict:
    """The set's preprocessing record: the configuration prediction would use, and where the flux came from."""
    flux = "values" if sources[0].layout == "workshop-csv" else sources[0].flux_name
    return {**asdict(PreprocessConfig(min_coverage=min_coverage)),
            ARRAYS_KEY: {"layout": sources[0].layout, "flux": flux, "normalisation": normalisation,
                         "files": [str(s.path.name) for s in sources],
                         "ivar": "1 where the flux is finite, 0 elsewhere (the files carry no uncertainties)"}}


def _truth_kinds(sources: Sequence[Dr16qFile | CsvPair]) -> dict[str, str]:
    """The per-row columns kept under ``truth/``: every file's own (merged by name), and where each row came from."""
    kinds: dict[str, str] = {}
    for s in sources:
        for k, kind in s.columns.items():
            kinds[k] = _merge_kinds(kinds[k], kind) if k in kinds else kind
    return {**kinds, "source_file": "U", "source_row": "<i8"}


def _columns(block: Block, rows: NormalisedRows, keep: np.ndarray, cls: int, kinds: dict[str, str],
             name: str) -> dict[str, np.ndarray]:
    """The kept rows of a block as prepared-set columns (see :meth:`SpectraWriter.append_columns`)."""
    m = int(keep.sum())
    cols = {"flux": rows.flux[keep], "ivar": rows.ivar[keep], "id": np.array(block.ids, dtype=object)[keep],
            "z": block.z[keep].astype(np.float32), "cls": np.full(m, cls, np.int8), "snr": np.full(m, np.nan),
            "coverage": rows.coverage[keep], "norm_mean": rows.mean[keep], "norm_std": rows.std[keep]}
    for k, kind in kinds.items():
        if k == "source_file":
            values = np.array([name] * m, dtype=object)
        elif k == "source_row":
            values = (block.start + np.arange(keep.size))[keep]
        elif k in block.truth:
            values = block.truth[k][keep]
        else:  # a column another input has
            values = np.full(m, _missing(kind), dtype=object if kind == "U" else np.dtype(kind))
        cols[f"truth/{k}"] = values
    return cols


def _write_source(source: Dr16qFile | CsvPair, writer: SpectraWriter, normalisation: str, min_coverage: float,
                  skip_bad_rows: bool, block_rows: int, report: PrepareReport) -> None:
    """Every row of one source into ``writer``; a bad row refuses the file, or is left out and reported."""
    kept = len(writer)
    labelled = 0
    for block in source.blocks(block_rows):
        rows = normalise_rows(block.flux, normalisation, min_coverage)
        bad = [i for i, p in enumerate(rows.problems) if p]
        for i in bad:
            row = block.start + i
            named = "" if block.ids[i] == f"{source.path.name}:{row}" else f" ({block.ids[i]})"
            if not skip_bad_rows:
                raise InputError(source.path, f"row {row}{named}: {rows.problems[i]} (--skip-bad-rows leaves such "
                                              "rows out)")
            report.rejected.append((f"{source.path}:{row}", f"{rows.problems[i]}{named}"))
        keep = np.array([not p for p in rows.problems], dtype=bool)
        labelled += int(np.isfinite(block.z[keep]).sum())
        writer.append_columns(_columns(block, rows, keep, class_index(source.cls), writer.truth_columns,
                                       source.path.name))
    log.info("%s: %d of %d spectra kept (%s, %d pixels), %d with a redshift", source.path, len(writer) - kept,
             source.n, source.cls, source.width, labelled)


def prepare_arrays(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    label_column: str = "z_vi",
    cls: str | None = None,
    normalisation: str | None = None,
    grid: LogLambdaGrid | None = None,
    loglam_start: float | None = None,
    loglam_step: float | None = None,
    wavelength: str | os.PathLike | None = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    skip_bad_rows: bool = False,
    force: bool = False,
    block_rows: int = DEFAULT_BLOCK_ROWS,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> PrepareReport:
    """Make spectra already on a grid (DR16Q-layout HDF5 files, or the workshop's CSV pairs) into a prepared set.

    label_column : HDF5: the redshift dataset (``z_vi``; ``z_pipe``, ``z_dr12q`` ...). CSV: the labels file.
    cls : the class of every spectrum (``qso``, ``galaxy``, ``star``); default: from each file's name.
    normalisation : ``"given"`` or ``"astrocnn"`` (see the module's docstring); default as said there.
    grid, loglam_start + loglam_step, wavelength : the grid, if not the paper's (at most one of them).
    min_coverage : the fraction of finite pixels below which a row is bad.
    skip_bad_rows : leave bad rows out and list them in ``<out stem>.rejects.csv``, instead of refusing the file.
    force : prepare again even when ``out`` is already up to date with these inputs and settings.

    Every input is checked before anything is written; a bad one raises :class:`InputError` naming it, and
    nothing is left behind. Returns the :class:`~astrocnn.core.parts.PrepareReport`.
    """
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must lie in [0, 1], got {min_coverage}")
    paths = list(dict.fromkeys(Path(p) for p in inputs))
    out = Path(out)
    if not paths:
        raise InputError(None, "no input files")
    if any(p.exists() and out.exists() and p.resolve() == out.resolve() for p in paths):
        raise InputError(out, "is also an input: write the prepared set elsewhere")
    sources = open_sources(paths, label_column, cls, chunk_bytes)
    normalisation = choose_normalisation(sources, normalisation)
    for s in sources:
        s.use(normalisation)
    grid = choose_grid(sources, grid, loglam_start, loglam_step, wavelength)
    for s in sources:
        s.check_grid(grid, block_rows)
    record = _record(sources, normalisation, min_coverage)
    report = PrepareReport(out=out, rejects_csv=rejects_path(out))
    key = fingerprint({"job": "prepare arrays", "inputs": [file_signature(p) for p in paths],
                       "label_column": label_column, "classes": [s.cls for s in sources], "grid": asdict(grid),
                       "preprocess": record, "skip_bad_rows": skip_bad_rows, "format_version": FORMAT_VERSION,
                       "astrocnn_version": __version__})
    if not force and out.exists() and output_fingerprint(out) == key:
        report.kept, report.rejected, report.up_to_date = len(SpectraSet(out)), read_rejects(report.rejects_csv), True
        log.info("%s is up to date with its inputs and settings: nothing to do (--force prepares it again)", out)
        return report
    attrs = {"inputs": [str(p) for p in paths], "layout": sources[0].layout,
             "label_column": label_column if sources[0].layout == "dr16q-hdf5" else sources[0].labels_path.name,
             "normalisation": normalisation, FINGERPRINT_ATTR: key}
    with SpectraWriter(out, grid, preprocess=record, source=f"arrays:{sources[0].layout}",
                       truth_columns=_truth_kinds(sources), attrs=attrs,
                       expected_rows=sum(s.n for s in sources)) as writer:
        for s in sources:
            _write_source(s, writer, normalisation, min_coverage, skip_bad_rows, block_rows, report)
        report.kept = len(writer)
        if report.kept == 0:
            raise InputError(paths[0] if len(paths) == 1 else None, "none of the spectra could be used")
    report.write_rejects()
    return report
