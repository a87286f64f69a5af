"""Spectra already on a log-wavelength grid, as their files hold them: the paper authors' DR16Q HDF5 files and
the workshop's CSV pair, opened and checked, then read a block of rows at a time; and the grid they are on.

Spectra domain, on the core, below :mod:`~astrocnn.spectra.arrays` (which makes these inputs into a prepared set,
``astrocnn prepare arrays``) and above :mod:`~astrocnn.spectra.csvstream`. Both kinds of input offer one face:
``path``, ``cls``, ``layout``, ``n`` spectra of ``width`` pixels, ``columns`` (per-row columns to keep, name ->
kind), ``use(normalisation)``, ``check_grid(grid)`` and ``blocks(block_rows)`` of :class:`Block`; a new layout goes
here beside them. A bad file (unreadable, a dataset missing, flux rows and labels that do not pair up, wavelengths
that are not the grid) raises :class:`~astrocnn.core.errors.InputError`, one line naming the file and the
problem. Two layouts:

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
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.spectra.csvstream import DEFAULT_CHUNK_BYTES, iter_csv_values, read_csv_values, scan_csv
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.sdss import spec_id
from astrocnn.spectra.spectrum import CLASS_NAMES

log = logging.getLogger(__name__)

#: spectra read, normalised and written at a time
DEFAULT_BLOCK_ROWS = 256
#: a file's wavelengths are the grid when every pixel centre lies within this fraction of a pixel of it
GRID_TOLERANCE_PIXELS = 0.05
#: DR16Q writes -1 for "no redshift": labels at or below this are missing
MISSING_Z = -1.0

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


def _grid_text(grid: LogLambdaGrid) -> str:
    return f"{grid.lam_min:g}-{grid.lam_max:g} A with {grid.n} pixels"


# ----------------------------------------------------------------------------------------------------
# wavelengths and the grid


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
# the inputs


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
