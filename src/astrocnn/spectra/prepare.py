"""From spectra to prepared sets: simulate a survey, or prepare real SDSS files.

Spectra domain: readers (:mod:`~astrocnn.spectra.sdss`, :mod:`~astrocnn.spectra.catalog`), the grid and
preprocessing, and the prepared-set format (:mod:`~astrocnn.spectra.dataset`) put together, on the core's
parallel map and re-runnable parts (:mod:`astrocnn.core.parts`). Both jobs run in worker processes over
chunks and write the set in input order, so the output does not depend on the number of workers. Bad inputs
are skipped and reported with their reason; they never cost the good spectra beside them.
"""
from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.parallel import default_workers, map_ordered, progress
from astrocnn.core.parts import (DEFAULT_PART_SIZE, FINGERPRINT_ATTR, PrepareReport, Parts, file_signature,
                                 fingerprint, read_rejects, rejects_path)
from astrocnn.spectra.catalog import join_catalog, read_catalog, write_catalog
from astrocnn.spectra.dataset import FORMAT_VERSION, SpectraSet, SpectraWriter
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.preprocess import Prepared, Preprocessing, PreprocessConfig, preprocess
from astrocnn.spectra.sdss import find_spec_files, read_spectrum, spec_filename, write_spec_lite
from astrocnn.spectra.spectrum import CLASS_NAMES, class_index
from astrocnn.version import __version__

log = logging.getLogger(__name__)


class FileResult(NamedTuple):
    """One input read and preprocessed, or the reason it could not be."""

    source: str  #: the file (or, for a simulated object, its id)
    prepared: Prepared | None  #: on the grid and normalised; None when ``error`` says why not
    id: str = ""  #: the spectrum's id (PLATE-MJD-FIBERID, or the file name)
    z: float = float("nan")  #: label redshift (NaN if unknown)
    cls: str | int | None = None  #: label class
    error: str = ""  #: empty, or why the input cannot be used


# ----------------------------------------------------------------------------------------------------
# simulation


def _simulate_chunk(job: tuple) -> list[tuple[FileResult, dict[str, Any]]]:
    # the simulator loads its stellar-population templates on import (~0.4 s): only workers that simulate pay
    from astrocnn.spectra.simulate import simulate_survey

    seed, start, n, classes, fractions, grid, config, sdss_dir = job
    rows = []
    for spectrum, truth in simulate_survey(n, seed, classes=classes, class_fractions=fractions, start=start):
        if sdss_dir is not None:
            m = spectrum.meta
            write_spec_lite(spectrum, Path(sdss_dir) / spec_filename(m["plate"], m["mjd"], m["fiberid"]))
        try:
            p = preprocess(spectrum, grid, config)
        except InputError as exc:
            rows.append((FileResult(spectrum.id, None, spectrum.id, error=exc.problem), truth))
            continue
        rows.append((FileResult(spectrum.id, p, spectrum.id, spectrum.z, spectrum.cls), truth))
    return rows


def simulate_prepared(
    n: int,
    seed: int,
    out: str | os.PathLike,
    *,
    classes: Sequence[str] = CLASS_NAMES,
    class_fractions: Mapping[str, float] | None = None,
    sdss_dir: str | os.PathLike | None = None,
    grid: LogLambdaGrid = PAPER_GRID,
    config: PreprocessConfig = PreprocessConfig(),
    workers: int | None = None,
    chunk: int = 200,
) -> PrepareReport:
    """Simulate ``n`` objects of the survey with ``seed`` and write them as a prepared set.

    With ``sdss_dir``, every object is also written as a real-format spec-lite FITS file there, with a
    DR16Q-like catalogue ``sdss_dir/catalog.fits``, so the real-data path can be run on simulated data.
    Same seed, same bytes, whatever the number of workers.
    """
    from astrocnn.spectra.simulate import TRUTH_COLUMNS  # heavy, see _simulate_chunk

    unknown = set(classes) - set(CLASS_NAMES)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; choose from {list(CLASS_NAMES)}")
    workers = workers or default_workers()
    if sdss_dir is not None:
        Path(sdss_dir).mkdir(parents=True, exist_ok=True)
    jobs = [
        (seed, s, min(chunk, n - s), tuple(classes), class_fractions, grid, config,
         None if sdss_dir is None else str(sdss_dir))
        for s in range(0, n, chunk)
    ]
    report = PrepareReport(out=Path(out))
    catalog_rows: list[dict[str, Any]] = []
    with SpectraWriter(out, grid, preprocess=config, source="simulated", seed=seed, truth_columns=TRUTH_COLUMNS,
                       attrs={"classes": list(classes)}, expected_rows=n) as writer, progress(n, "simulate") as bar:
        for rows in map_ordered(_simulate_chunk, jobs, workers):
            for r, truth in rows:
                if sdss_dir is not None:
                    catalog_rows.append(truth)
                if r.prepared is None:
                    report.rejected.append((r.id, r.error))
                else:
                    writer.append(r.prepared, id=r.id, z=r.z, cls=r.cls, truth=truth)
            bar.update(len(rows))
        report.kept = len(writer)
    if sdss_dir is not None:
        write_catalog([catalog_row_from_truth(t) for t in catalog_rows], Path(sdss_dir) / "catalog.fits")
    if report.rejected:
        report.rejects_csv = rejects_path(out)
        report.write_rejects()
    log.debug(report.summary)
    return report


#: DR16Q CLASS_PERSON codes (visual inspection): 1 star, 3 quasar, 30 BAL quasar, 4 galaxy.
CLASS_PERSON_CODES = {"star": 1, "qso": 3, "bal": 30, "galaxy": 4}


def catalog_row_from_truth(truth: Mapping[str, Any]) -> dict[str, Any]:
    """A DR16Q-like catalogue row for one simulated object (its truth dict)."""
    cls = truth["cls"]
    code = CLASS_PERSON_CODES["bal"] if cls == "qso" and bool(truth.get("bal")) else CLASS_PERSON_CODES[cls]
    z = float(truth["z"])
    return {
        "PLATE": int(truth["plate"]),
        "MJD": int(truth["mjd"]),
        "FIBERID": int(truth["fiberid"]),
        "Z": z,
        "Z_VI": z,
        "Z_PIPE": z,
        "CLASS_PERSON": code,
        "OBJ_CLASS": cls.upper() if cls != "qso" else "QSO",
        "BAL_PROB": 1.0 if bool(truth.get("bal")) else 0.0,
        "SN_MEDIAN_ALL": float(truth.get("snr", np.nan)),
        "ZWARNING": 0,
    }


# ----------------------------------------------------------------------------------------------------
# real files


def prepare_files(job: tuple[Sequence[tuple[str | os.PathLike, Mapping[str, Any] | None]], LogLambdaGrid,
                                 PreprocessConfig]) -> list[FileResult]:
    """Read and preprocess SDSS files: ``job = (items, grid, config)`` with ``items`` a list of
    ``(path, labels)``; ``labels`` (``z``, ``cls``, ``cls_from_catalog``) from a catalogue replace the
    file's own, or None. One :class:`FileResult` per item, in order; a bad file gets its reason in
    ``error`` and never costs the others. A single argument, so a process pool can map it over chunks."""
    items, grid, config = job
    rows = []
    for path, labels in items:
        try:
            spectrum = read_spectrum(path)
            if labels is not None:
                # the catalogue is the label source: a missing catalogue value stays missing
                spectrum.z = float(labels["z"])
                if labels.get("cls_from_catalog"):
                    spectrum.cls = labels["cls"]
            p = preprocess(spectrum, grid, config)
        except InputError as exc:
            rows.append(FileResult(str(path), None, str(path), error=exc.problem))
            continue
        except Exception as exc:  # noqa: BLE001 - a reader bug must not cost the other files
            log.exception("unexpected error reading %s", path)
            rows.append(FileResult(str(path), None, str(path), error=f"unexpected error: {type(exc).__name__}: {exc}"))
            continue
        rows.append(FileResult(str(path), p, spectrum.id, spectrum.z, spectrum.cls))
    return rows


#: spectrum files read per job of a worker process when predicting
FILES_PER_JOB = 64


def walk_inputs(inputs: Iterable[str | os.PathLike]) -> Iterator[tuple[str, Any]]:
    """What a user gave, in order: ``("files", [paths])`` for consecutive spectrum files (folders expanded),
    ``("set", path)`` for a prepared set (``.h5``/``.hdf5``), ``("missing", path)`` for a path that does not
    exist."""
    pending: list[Path] = []
    for item in map(Path, inputs):
        if item.suffix in (".h5", ".hdf5") or not item.exists():
            if pending:
                yield "files", pending
                pending = []
            yield ("set" if item.exists() else "missing"), item
        else:
            pending += find_spec_files([item])
    if pending:
        yield "files", pending


def prepare_file_batches(files: Sequence[Path], preprocessing: Preprocessing, workers: int
                         ) -> Iterator[list[FileResult]]:
    """Files read and preprocessed in worker processes, :data:`FILES_PER_JOB` at a time, in file order."""
    jobs = [([(f, None) for f in files[s:s + FILES_PER_JOB]], preprocessing.grid, preprocessing.config)
            for s in range(0, len(files), FILES_PER_JOB)]
    yield from map_ordered(prepare_files, jobs, workers)


def _columns(rows: Sequence[FileResult], grid: LogLambdaGrid) -> dict[str, np.ndarray]:
    """The kept rows of a part as prepared-set columns (the conversions of :class:`SpectraWriter`)."""
    kept = [r for r in rows if r.prepared is not None]

    def stack(name: str) -> np.ndarray:
        if not kept:
            return np.zeros((0, grid.n), np.float32)
        return np.stack([getattr(r.prepared, name) for r in kept]).astype(np.float32)

    def col(values, dtype):
        return np.asarray(list(values), dtype=dtype)

    return {
        "flux": stack("flux"),
        "ivar": stack("ivar"),
        "id": np.array([str(r.id) for r in kept], dtype=object),
        "z": col((r.z for r in kept), np.float32),
        "cls": col((r.cls if isinstance(r.cls, (int, np.integer)) else class_index(r.cls) for r in kept), np.int8),
        "snr": col((r.prepared.snr for r in kept), np.float32),
        "coverage": col((r.prepared.coverage for r in kept), np.float32),
        "norm_mean": col((r.prepared.mean for r in kept), np.float64),
        "norm_std": col((r.prepared.std for r in kept), np.float64),
    }


def _items(inputs: list[Path], catalog, label_column: str, class_column: str | None, on_error: str,
           report: PrepareReport) -> list[tuple[Path, dict | None]]:
    """The files to prepare with their catalogue labels; catalogue rows without a file go to the rejects."""
    files = find_spec_files(inputs)
    if catalog is None:
        return [(f, None) for f in files]
    cat = read_catalog(catalog, label_column=label_column, class_column=class_column)
    matches, missing = join_catalog(cat, files)
    report.rejected.extend((key, reason) for key, reason in missing)
    if missing and on_error == "fail":
        raise InputError(catalog, f"{missing[0][0]}: {missing[0][1]}")
    return [(path, {**labels, "cls_from_catalog": class_column is not None}) for path, labels in matches]


def _prepare_parts(job: Parts, parts: list[list], grid: LogLambdaGrid, config: PreprocessConfig, chunk: int,
                   workers: int, on_error: str, total: int, skipped: int) -> None:
    """Prepare the parts not done yet, in chunks over worker processes; each part is written when its last
    chunk is in."""
    jobs, owner = [], []
    for i in job.todo:
        for s in range(0, len(parts[i]), chunk):
            jobs.append((parts[i][s:s + chunk], grid, config))
            owner.append(i)
    remaining = Counter(owner)
    results: dict[int, list[FileResult]] = {i: [] for i in job.todo}
    with progress(total, "prepare") as bar:
        bar.update(skipped)
        for i, rows in zip(owner, map_ordered(prepare_files, jobs, workers)):
            if on_error == "fail":
                bad = next((r for r in rows if r.prepared is None), None)
                if bad is not None:
                    raise InputError(bad.source, bad.error)
            results[i] += rows
            remaining[i] -= 1
            if remaining[i] == 0:
                done = results.pop(i)
                job.write(i, _columns(done, grid), [(r.source, r.error) for r in done if r.prepared is None])
            bar.update(len(rows))


def prepare_sdss(
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    catalog: str | os.PathLike | None = None,
    label_column: str = "Z",
    class_column: str | None = None,
    grid: LogLambdaGrid = PAPER_GRID,
    config: PreprocessConfig = PreprocessConfig(),
    workers: int | None = None,
    chunk: int = 64,
    on_error: str = "skip",
    force: bool = False,
    part_size: int = DEFAULT_PART_SIZE,
) -> PrepareReport:
    """Read SDSS spec files (files or folders), preprocess them, and write a prepared set.

    With ``catalog`` (a DR16Q-like FITS table), only the catalogue's objects are used, found by
    PLATE-MJD-FIBERID among the inputs, with their labels from ``label_column`` / ``class_column``;
    catalogue rows without a file are reported as rejects. Bad files are skipped and listed with their
    reason in ``<out stem>.rejects.csv``; with ``on_error="fail"`` the first bad file raises
    :class:`InputError` and no output is written.

    Re-runnable (:mod:`astrocnn.core.parts`): the inputs are prepared in parts of ``part_size`` files kept in
    ``<out>.parts/`` until ``out`` is written, so a run that is interrupted (Ctrl-C, ``kill -9``, a full
    disk) and started again with the same arguments skips the parts already done and writes the same
    file as an uninterrupted run. If ``out`` is already up to date with the same inputs and settings,
    nothing is done (``force=True`` prepares it again).
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if part_size < 1:
        raise ValueError(f"part_size must be at least 1, got {part_size}")
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(p, "no such file or folder")
    out = Path(out)
    report = PrepareReport(out=out, rejects_csv=rejects_path(out))
    items = _items(inputs, catalog, label_column, class_column, on_error, report)
    if not items:
        raise InputError(inputs[0] if len(inputs) == 1 else None, "no SDSS spectra found in the inputs")
    parts = [items[s:s + part_size] for s in range(0, len(items), part_size)]
    try:
        part_keys = [fingerprint([[file_signature(path), labels] for path, labels in part]) for part in parts]
    except OSError as exc:  # a file vanished between listing and now
        raise InputError(getattr(exc, "filename", None), f"cannot read ({exc.strerror or exc})") from exc
    settings = {
        "job": "prepare sdss", "inputs": [str(p) for p in inputs],
        "catalog": None if catalog is None else file_signature(catalog), "label_column": label_column,
        "class_column": class_column, "grid": json.loads(grid.to_json()), "preprocess": asdict(config),
        "on_error": on_error, "part_size": part_size, "catalog_missing": fingerprint(report.rejected),
        "format_version": FORMAT_VERSION, "astrocnn_version": __version__,
    }
    attrs = {"inputs": [str(p) for p in inputs], "catalog": "" if catalog is None else str(catalog),
             "label_column": label_column}
    with Parts(out, settings, part_keys, part_sizes=[len(p) for p in parts], what="spectrum files",
               force=force, siblings=[report.rejects_csv]) as job:
        if job.up_to_date:
            return _up_to_date(job, report)
        report.skipped = sum(len(parts[i]) for i in job.done)
        _prepare_parts(job, parts, grid, config, chunk, workers or default_workers(), on_error, len(items),
                       report.skipped)
        _merge(job, report, grid, config, attrs, len(items))
    log.debug(report.summary)
    return report


def _up_to_date(job: Parts, report: PrepareReport) -> PrepareReport:
    """The output is already what these inputs and settings make: report it, finishing an interrupted end."""
    if job.all_done:  # stopped after writing OUT, before the rejects: finish that
        report.rejected += job.rejected()
        report.write_rejects()
    else:
        report.rejected = read_rejects(report.rejects_csv)
    report.kept = len(SpectraSet(report.out))
    report.up_to_date = True
    job.complete()
    log.info("%s is up to date with its inputs and settings: nothing to do (--force prepares it again)", report.out)
    return report


def _merge(job: Parts, report: PrepareReport, grid: LogLambdaGrid, config: PreprocessConfig, attrs: dict,
           n_items: int) -> None:
    """Every part done: write them into the output in order, then the rejects list."""
    kept = sum(job.rows(i) for i in range(job.n))
    report.rejected += job.rejected()
    if kept == 0:
        job.discard()
        only = report.rejected[0] if len(report.rejected) == 1 else None
        raise InputError(only[0] if only else None, only[1] if only else
                         f"none of the {n_items} inputs could be used (see the reasons above)")
    with SpectraWriter(report.out, grid, preprocess=config, source="sdss", attrs={**attrs, FINGERPRINT_ATTR: job.key},
                       expected_rows=kept) as writer:
        for i in range(job.n):
            writer.append_columns(job.read(i)[0])
        report.kept = len(writer)
    report.write_rejects()
    job.complete()
