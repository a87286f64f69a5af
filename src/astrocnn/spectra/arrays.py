"""Spectra already on a log-wavelength grid, made into prepared sets: the paper authors' DR16Q HDF5 files and
the workshop's CSV pair, normalised and written (``astrocnn prepare arrays``).

Spectra domain, on the core, above :mod:`~astrocnn.spectra.gridded`, which opens and checks the two layouts
(described there) and reads them a block of rows at a time. Here the job chooses the grid and the
normalisation, normalises each block's rows, and writes the prepared set (:mod:`~astrocnn.spectra.dataset`),
skipping the work when the output is already up to date with its inputs (:mod:`astrocnn.core.parts`).

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.parts import (FINGERPRINT_ATTR, PrepareReport, file_signature, fingerprint, output_fingerprint,
                                 read_rejects, rejects_path)
from astrocnn.spectra.csvstream import DEFAULT_CHUNK_BYTES
from astrocnn.spectra.dataset import FORMAT_VERSION, SpectraSet, SpectraWriter
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.gridded import (DEFAULT_BLOCK_ROWS, Block, CsvPair, Dr16qFile, grid_from_loglam,
                                      grid_from_wavelengths, open_sources, read_wavelengths)
from astrocnn.spectra.preprocess import ARRAYS_KEY, DEFAULT_MIN_COVERAGE, PreprocessConfig
from astrocnn.spectra.spectrum import class_index
from astrocnn.version import __version__

log = logging.getLogger(__name__)

#: the two normalisations a set made from arrays can carry
NORMALISATIONS = ("given", "astrocnn")


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
# the job


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


def _merge_kinds(a: str, b: str) -> str:
    if a == b:
        return a
    return "U" if "U" in (a, b) else "<f8"


def _missing(kind: str):
    """The value of a column for rows of a file that does not have it."""
    if kind == "U":
        return ""
    return {"b": False, "i": -1, "u": 0}.get(np.dtype(kind).kind, np.nan)


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
