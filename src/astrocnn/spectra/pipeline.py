"""From spectra to prepared sets: simulate a survey, or prepare real SDSS files.

Both run in worker processes over chunks and write the HDF5 set in input order, so the output does not
depend on the number of workers. Bad inputs are skipped and reported with their reason; they never cost
the good spectra beside them.
"""
from __future__ import annotations

import csv
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError, OutputError
from ..io import atomic_path
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

    @property
    def summary(self) -> str:
        text = f"{self.out}: kept {self.kept} spectra, rejected {len(self.rejected)}"
        if self.rejects_csv is not None and self.rejected:
            text += f" (reasons in {self.rejects_csv})"
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
) -> PrepareReport:
    """Read SDSS spec files (files or folders), preprocess them, and write a prepared set.

    With ``catalog`` (a DR16Q-like FITS table), only the catalogue's objects are used, found by
    PLATE-MJD-FIBERID among the inputs, with their labels from ``label_column`` / ``class_column``;
    catalogue rows without a file are reported as rejects. Bad files are skipped and listed with their
    reason in ``<out stem>.rejects.csv``; with ``on_error="fail"`` the first bad file raises
    :class:`InputError` and no output is written.
    """
    from .sdss import find_spec_files

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise InputError(p, "no such file or folder")
    files = find_spec_files(inputs)
    report = PrepareReport(out=Path(out))
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
    jobs = [(items[s:s + chunk], grid, config) for s in range(0, len(items), chunk)]
    with PreparedWriter(out, grid, preprocess=config, source="sdss", attrs={
        "inputs": [str(p) for p in inputs], "catalog": "" if catalog is None else str(catalog),
        "label_column": label_column}) as writer, _progress(len(items), "prepare") as bar:
        for rows in _map_ordered(_prepare_chunk, jobs, workers):
            for row in rows:
                if row[0] is None:
                    if on_error == "fail":
                        raise InputError(row[1], row[2])
                    report.rejected.append((row[1], row[2]))
                    continue
                p, oid, z, cls, _path = row
                writer.append(p, id=oid, z=z, cls=cls)
            bar.update(len(rows))
        report.kept = len(writer)
        if report.kept == 0:
            only = report.rejected[0] if len(report.rejected) == 1 else None
            raise InputError(only[0] if only else None, only[1] if only else
                             f"none of the {len(items)} inputs could be used (see the reasons above)")
    report.rejects_csv = rejects_path(out)
    if report.rejected:
        _write_rejects(report.rejects_csv, report.rejected)
    else:
        report.rejects_csv.unlink(missing_ok=True)
    log.debug(report.summary)
    return report
