"""From spectra to prepared sets: simulate a survey, or prepare real SDSS files.

Both run in worker processes over chunks and write the HDF5 set in input order, so the output does not
depend on the number of workers. Bad inputs are skipped and reported with their reason; they never cost
the good spectra beside them.
"""
from __future__ import annotations

import csv
import json
import logging
import multiprocessing as mp
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .. import __version__
from ..errors import InputError
from ..io import atomic_path
from ..parts import DEFAULT_PART_SIZE, fingerprint
from ..store import PreparedWriter
from .grid import PAPER_GRID, LogLambdaGrid
from .preprocess import PreprocessConfig, preprocess
from .spectrum import CLASS_NAMES

log = logging.getLogger(__name__)


@dataclass
class PrepareReport:
    """What a prepare or simulate run kept and rejected."""

    out: Path
    kept: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file or id, reason)
    rejects_csv: Path | None = None
    skipped: int = 0  # inputs already done by an interrupted run, not prepared again
    up_to_date: bool = False  # the output was already complete for these inputs: nothing was done

    @property
    def summary(self) -> str:
        text = f"{self.out}: kept {self.kept} spectra, rejected {len(self.rejected)}"
        if self.rejects_csv is not None and self.rejected:
            text += f" (reasons in {self.rejects_csv})"
        if self.up_to_date:
            text += "; already up to date, nothing done (--force prepares it again)"
        elif self.skipped:
            text += f"; {self.skipped} inputs were already done by an interrupted run"
        return text


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm

    # tqdm disables itself when stderr is not a terminal (disable=None)
    return tqdm(total=total, desc=desc, unit="spec", disable=None, leave=False)


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _map_ordered(func, jobs: Sequence, workers: int) -> Iterator:
    """Apply ``func`` to each job in worker processes, yielding results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield func(job)
        return
    ctx = mp.get_context("fork" if hasattr(os, "fork") else "spawn")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(func, jobs)


def _write_rejects(path: Path, rejected: Sequence[tuple[str, str]]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["input", "reason"])
            w.writerows(rejected)


def rejects_path(out: str | os.PathLike) -> Path:
    """``FILE.h5`` -> ``FILE.rejects.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".rejects.csv")


# ----------------------------------------------------------------------------------------------------
# simulation


def _simulate_chunk(job: tuple) -> list[tuple]:
    from .simulate import simulate_survey

    seed, start, n, classes, fractions, grid, config, sdss_dir = job
    rows = []
    for spectrum, truth in simulate_survey(n, seed, classes=classes, class_fractions=fractions, start=start):
        if sdss_dir is not None:
            from .sdss import spec_filename, write_spec_lite

            m = spectrum.meta
            write_spec_lite(spectrum, Path(sdss_dir) / spec_filename(m["plate"], m["mjd"], m["fiberid"]))
        try:
            p = preprocess(spectrum, grid, config)
        except InputError as exc:
            rows.append((None, spectrum.id, exc.problem, truth))
            continue
        rows.append((p, spectrum.id, spectrum.z, spectrum.cls, truth))
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
    from .simulate import TRUTH_COLUMNS

    unknown = set(classes) - set(CLASS_NAMES)
    if unknown:
        raise ValueError(f"unknown classes {sorted(unknown)}; choose from {list(CLASS_NAMES)}")
    workers = workers or _default_workers()
    if sdss_dir is not None:
        Path(sdss_dir).mkdir(parents=True, exist_ok=True)
    jobs = [
        (seed, s, min(chunk, n - s), tuple(classes), class_fractions, grid, config,
         None if sdss_dir is None else str(sdss_dir))
        for s in range(0, n, chunk)
    ]
    report = PrepareReport(out=Path(out))
    catalog_rows: list[dict[str, Any]] = []
    with PreparedWriter(out, grid, preprocess=config, source="simulated", seed=seed, truth_columns=TRUTH_COLUMNS,
                        attrs={"classes": list(classes)}) as writer, _progress(n, "simulate") as bar:
        for rows in _map_ordered(_simulate_chunk, jobs, workers):
            for row in rows:
                truth = row[-1]
                if sdss_dir is not None:
                    catalog_rows.append(truth)
                if row[0] is None:
                    report.rejected.append((row[1], row[2]))
                    continue
                p, oid, z, cls, _ = row
                writer.append(p, id=oid, z=z, cls=cls, truth=truth)
            bar.update(len(rows))
        report.kept = len(writer)
    if sdss_dir is not None:
        from .catalog import write_catalog

        write_catalog([catalog_row_from_truth(t) for t in catalog_rows], Path(sdss_dir) / "catalog.fits")
    if report.rejected:
        report.rejects_csv = rejects_path(out)
        _write_rejects(report.rejects_csv, report.rejected)
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


def _prepare_chunk(job: tuple) -> list[tuple]:
    from .sdss import read_spectrum

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
            rows.append((None, str(path), exc.problem))
            continue
        except Exception as exc:  # noqa: BLE001 - a reader bug must not cost the other files
            log.exception("unexpected error reading %s", path)
            rows.append((None, str(path), f"unexpected error: {type(exc).__name__}: {exc}"))
            continue
        rows.append((p, spectrum.id, spectrum.z, spectrum.cls, str(path)))
    return rows


def _sdss_columns(rows: Sequence[tuple], grid: LogLambdaGrid) -> dict[str, np.ndarray]:
    """The kept rows of a part as prepared-set columns (the conversions of :class:`PreparedWriter`)."""
    from .spectrum import class_index

    kept = [r for r in rows if r[0] is not None]
    n = grid.n

    def col(values, dtype):
        return np.asarray(values, dtype=dtype)

    return {
        "flux": np.stack([r[0].flux for r in kept]).astype(np.float32) if kept else np.zeros((0, n), np.float32),
        "ivar": np.stack([r[0].ivar for r in kept]).astype(np.float32) if kept else np.zeros((0, n), np.float32),
        "id": np.array([str(r[1]) for r in kept], dtype=object),
        "z": col([r[2] for r in kept], np.float32),
        "cls": col([r[3] if isinstance(r[3], (int, np.integer)) else class_index(r[3]) for r in kept], np.int8),
        "snr": col([r[0].snr for r in kept], np.float32),
        "coverage": col([r[0].coverage for r in kept], np.float32),
        "norm_mean": col([r[0].mean for r in kept], np.float64),
        "norm_std": col([r[0].std for r in kept], np.float64),
    }


def _read_rejects(path: Path) -> list[tuple[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [(r["input"], r["reason"]) for r in csv.DictReader(fh)]
    except (OSError, KeyError, csv.Error):
        return []


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

    Re-runnable (:mod:`astrocnn.parts`): the inputs are prepared in parts of ``part_size`` files kept in
    ``<out>.parts/`` until ``out`` is written, so a run that is interrupted (Ctrl-C, ``kill -9``, a full
    disk) and started again with the same arguments skips the parts already done and writes the same
    file as an uninterrupted run. If ``out`` is already up to date with the same inputs and settings,
    nothing is done (``force=True`` prepares it again).
    """
    from ..parts import FINGERPRINT_ATTR, Parts, file_signature
    from ..store import FORMAT_VERSION
    from .sdss import find_spec_files

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if part_size < 1:
        raise ValueError(f"part_size must be at least 1, got {part_size}")
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(p, "no such file or folder")
    files = find_spec_files(inputs)
    out = Path(out)
    report = PrepareReport(out=out)
    items: list[tuple[Path, dict | None]]
    if catalog is not None:
        from .catalog import join_catalog, read_catalog

        cat = read_catalog(catalog, label_column=label_column, class_column=class_column)
        matches, missing = join_catalog(cat, files)
        items = [(path, {**labels, "cls_from_catalog": class_column is not None}) for path, labels in matches]
        report.rejected.extend((key, reason) for key, reason in missing)
        if missing and on_error == "fail":
            raise InputError(catalog, f"{missing[0][0]}: {missing[0][1]}")
    else:
        items = [(f, None) for f in files]
    if not items:
        raise InputError(inputs[0] if len(inputs) == 1 else None, "no SDSS spectra found in the inputs")
    workers = workers or _default_workers()
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
    report.rejects_csv = rejects_path(out)
    with Parts(out, settings, part_keys, part_sizes=[len(p) for p in parts], what="spectrum files",
               force=force, siblings=[report.rejects_csv]) as job:
        if job.up_to_date:
            if job.all_done:  # stopped after writing OUT, before the rejects: finish that
                report.rejected += job.rejected()
                _finish_rejects(report)
            else:
                report.rejected = _read_rejects(report.rejects_csv)
            from ..store import PreparedSet

            report.kept = len(PreparedSet(out))
            report.up_to_date = True
            job.complete()
            log.info("%s is up to date with its inputs and settings: nothing to do (--force prepares it again)", out)
            return report
        report.skipped = sum(len(parts[i]) for i in job.done)
        todo = job.todo
        jobs, owner = [], []
        for i in todo:
            for s in range(0, len(parts[i]), chunk):
                jobs.append((parts[i][s:s + chunk], grid, config))
                owner.append(i)
        remaining = Counter(owner)
        results: dict[int, list] = {i: [] for i in todo}
        with _progress(len(items), "prepare") as bar:
            bar.update(report.skipped)
            for i, rows in zip(owner, _map_ordered(_prepare_chunk, jobs, workers)):
                if on_error == "fail":
                    bad = next((r for r in rows if r[0] is None), None)
                    if bad is not None:
                        raise InputError(bad[1], bad[2])
                results[i] += rows
                remaining[i] -= 1
                if remaining[i] == 0:
                    done = results.pop(i)
                    job.write(i, _sdss_columns(done, grid), [(r[1], r[2]) for r in done if r[0] is None])
                bar.update(len(rows))
        kept = sum(job.rows(i) for i in range(job.n))
        report.rejected += job.rejected()
        if kept == 0:
            job.discard()
            only = report.rejected[0] if len(report.rejected) == 1 else None
            raise InputError(only[0] if only else None, only[1] if only else
                             f"none of the {len(items)} inputs could be used (see the reasons above)")
        with PreparedWriter(out, grid, preprocess=config, source="sdss",
                            attrs={**attrs, FINGERPRINT_ATTR: job.key}) as writer:
            for i in range(job.n):
                writer.append_columns(job.read(i)[0])
            report.kept = len(writer)
        _finish_rejects(report)
        job.complete()
    log.debug(report.summary)
    return report


def _finish_rejects(report: PrepareReport) -> None:
    if report.rejected:
        _write_rejects(report.rejects_csv, report.rejected)
    else:
        report.rejects_csv.unlink(missing_ok=True)
