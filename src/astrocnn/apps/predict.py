"""``astrocnn predict``: a trained run applied to files, folders of them, or prepared sets.

Applications layer. Spectra runs take SDSS spec / spec-lite files (read and preprocessed exactly as the
training set was: the run stores its grid and preprocessing), folders of them and prepared spectra sets;
detection runs take G2Net-layout folders, GWOSC files and prepared strain sets (:mod:`astrocnn.apps.gwscan`),
whitened by default with a noise PSD estimated from the data being scored (``psd="data"``; ``"training"``:
the run's), and the table's ``psd`` column says which PSD each row stands on.
With ``on_error="skip"`` (the default) an input that cannot be used gets a row with the reason in ``error``
and the rest are predicted; with ``on_error="fail"`` the first such input raises :class:`InputError` naming
it, and no predictions file is written.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from astrocnn.apps.gwscan import predict_g2net_dir, predict_gwosc
from astrocnn.core.errors import InputError
from astrocnn.core.h5sets import is_prepared_set
from astrocnn.core.parallel import default_workers
from astrocnn.gw.readers import read_gwosc
from astrocnn.spectra.prepare import prepare_file_batches, walk_inputs
from astrocnn.tasks import Task, open_dataset
from astrocnn.train import load_run, predict_arrays, predict_rows
from astrocnn.train.runs import write_table
from astrocnn.zoo import load_model
from astrocnn.zoo.sdss import format_rows

log = logging.getLogger(__name__)

class _Table:
    """The predictions table as it grows: rows in input order, error rows for what cannot be used."""

    def __init__(self, task: Task, on_error: str):
        if on_error not in ("skip", "fail"):
            raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        self.task = task
        self.on_error = on_error
        self.columns = task.prediction_columns()
        self.rows: list[list[Any]] = []

    def error_row(self, ident: str, source: str, reason: str) -> list[Any]:
        if self.on_error == "fail":
            raise InputError(source, reason)
        return [ident, source, *([""] * (len(self.columns) - 3)), reason]

    def add_error(self, ident: str, source: str, reason: str) -> None:
        self.rows.append(self.error_row(ident, source, reason))

    def add_prepared_set(self, path: Path, loaded: tuple, batch_size: int) -> None:
        network, task, config = loaded
        try:
            store = open_dataset(path)
            task.check_compatible(config, store)
        except InputError as exc:
            if self.on_error == "fail":
                raise
            self.add_error(path.name, str(path), exc.problem)
            return
        with store:
            pred, _ = predict_rows(network, task, config, store, np.arange(len(store)), batch_size=batch_size,
                                   with_target=False)
            pred = task.name_predictions(pred)
            if task.kind == "strain":  # whitened when the set was prepared: its PSD, not one chosen here
                pred["psd"] = np.full(len(store), f"prepared set: {store.attrs.get('whitening_fit', '')}", object)
            self.rows += task.prediction_rows(list(store.ids), [str(path)] * len(store), pred)


def _predict_files(table: _Table, files: list[Path], loaded: tuple, batch_size: int, workers: int) -> None:
    """Spectrum files read and preprocessed in worker processes, predicted in batches, rows in file order."""
    if not files:
        return
    task = loaded[1]
    try:
        preprocessing = task.input_transform(loaded[2])
    except InputError as exc:  # the run's inputs cannot be made from spectrum files: each gets the reason
        if table.on_error == "skip":
            log.warning("%d spectrum files not predicted: %s", len(files), exc.problem)
        for f in files:
            table.add_error(f.name, str(f), exc.problem)
        return
    for result in prepare_file_batches(files, preprocessing, workers):
        if table.on_error == "fail":
            bad = next((r for r in result if r.prepared is None), None)
            if bad is not None:
                raise InputError(bad.source, bad.error)
        good = [r for r in result if r.prepared is not None]
        pred_rows: list[list[Any]] = []
        if good:
            flux = np.stack([r.prepared.flux for r in good])
            ivar = np.stack([r.prepared.ivar for r in good])
            pred = predict_arrays(None, flux, ivar, batch_size=batch_size, grid=preprocessing.grid, loaded=loaded)
            pred_rows = task.prediction_rows([r.id for r in good], [r.source for r in good], pred)
        it = iter(pred_rows)
        # keep the inputs' order: error rows stay where their file was
        table.rows.extend(next(it) if r.prepared is not None else table.error_row(Path(r.source).name, r.source, r.error)
                          for r in result)


def _predict_spectra(table: _Table, inputs: list[Path], loaded: tuple, batch_size: int, workers: int) -> None:
    # consecutive spectrum files are read together in worker processes; rows keep the inputs' order
    for kind, item in walk_inputs(inputs):
        if kind == "files":
            _predict_files(table, item, loaded, batch_size, workers)
        elif kind == "missing":
            table.add_error(item.name, str(item), "no such file or folder")
        else:
            table.add_prepared_set(item, loaded, batch_size)


def _predict_strain(table: _Table, run, inputs: list[Path], loaded: tuple, batch_size: int, psd: str) -> None:
    """Detection: prepared strain sets, G2Net-layout folders, or GWOSC files (grouped into segments).

    GWOSC files covering the same GPS span (one per detector) are scored together, in sliding 2-s windows,
    one row per window with its GPS centre time. A G2Net sample that cannot be read gets its own error row
    (``on_error="skip"``), the rest of its folder is scored. ``psd``: see :func:`predict_inputs`.
    """
    task = loaded[1]
    segments: dict[tuple[float, int], list[Path]] = {}
    for item in inputs:
        try:
            if not item.exists():
                raise InputError(item, "no such file or folder")
            if item.is_dir():
                pred = predict_g2net_dir(run, item, batch_size=batch_size, loaded=loaded, on_error=table.on_error,
                                         psd=psd)
                ok = pred["error"] == ""
                scored = task.prediction_rows(list(pred["id"][ok]), [str(item)] * int(ok.sum()),
                                              {k: v[ok] for k, v in pred.items() if k in ("score", "logit", "psd")})
                it = iter(scored)
                # samples keep their place (sorted by id); an unreadable one gets its file and reason
                table.rows += [next(it) if ok[i] else table.error_row(str(pred["id"][i]), str(pred["path"][i]),
                                                                      pred["error"][i]) for i in range(len(ok))]
            elif is_prepared_set(item):
                table.add_prepared_set(item, loaded, batch_size)
            else:
                g = read_gwosc(item)
                segments.setdefault((round(float(g.gps_start), 3), int(round(g.strain.size / g.sample_rate))),
                                    []).append(item)
        except InputError as exc:
            if table.on_error == "fail":
                raise
            table.add_error(item.name, str(item), exc.problem)
    for (gps, dur), paths in segments.items():
        try:
            pred = predict_gwosc(run, paths, batch_size=batch_size, loaded=loaded, psd=psd)
        except InputError as exc:
            if table.on_error == "fail":
                raise
            table.rows += [table.error_row(p.name, str(p), exc.problem) for p in paths]
            continue
        n = len(pred["score"])
        table.rows += task.prediction_rows([f"{gps:.0f}-{dur}"] * n, ["+".join(p.name for p in paths)] * n, pred)


def predict_inputs(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 1024,
    workers: int | None = None,
    on_error: str = "skip",
    psd: str | None = None,
) -> tuple[list[str], list[list[Any]]]:
    """Predict every input with a trained run: spectra runs take SDSS spec files, folders of them and prepared
    sets; detection runs take G2Net-layout folders, GWOSC files and prepared strain sets.

    Returns ``(columns, rows)`` and, with ``out``, writes them as CSV atomically. Columns: ``id``,
    ``source``, the task's outputs (:meth:`~astrocnn.tasks.base.Task.prediction_columns`: ``z_pred`` and
    ``z_conf``; ``class`` and one probability per class; ``gps_centre``, ``score``, ``logit``, ``valid``, ``psd``),
    and ``error`` (empty when the prediction is valid).

    on_error : ``"skip"``: an input that cannot be used (missing, unreadable, incompatible with the run)
        gets a row with the reason in ``error``; ``"fail"``: the first one raises :class:`InputError`
        (``"<file>: <problem>"``) and ``out`` is not written.
    psd : detection runs: the noise PSD that whitens G2Net folders and GWOSC files. ``"data"`` (default):
        estimated from the data being scored, no label read (a folder: the median PSD of its samples, at
        least 64 of them; a GWOSC segment: its running median Welch PSD); ``"training"``: the run's stored
        training PSD. Prepared sets were whitened when prepared. The ``psd`` column records which.
    """
    loaded = load_run(run)
    task = loaded[1]
    table = _Table(task, on_error)
    inputs = [Path(p) for p in inputs]
    if task.kind == "strain":
        _predict_strain(table, run, inputs, loaded, batch_size, psd or "data")
    elif psd is not None:
        raise InputError(run, f"a '{task.name}' run; the choice of noise PSD (psd={psd!r}) is for detection runs")
    else:
        _predict_spectra(table, inputs, loaded, batch_size, workers or default_workers())
    if out is not None:
        write_table(out, table.columns, table.rows)
    n_err = sum(1 for r in table.rows if r[-1])
    log.info("predicted %d inputs, %d could not be used", len(table.rows) - n_err, n_err)
    return table.columns, table.rows


def predict_with_model(model: str | os.PathLike, inputs: Iterable[str | os.PathLike], out: str | os.PathLike | None = None,
                       *, workers: int | None = None, on_error: str = "skip") -> tuple[list[str], list[list[str]]]:
    """``astrocnn predict --model NAME``: a ready-made model (:mod:`astrocnn.zoo`) on files, folders and prepared
    sets. Returns ``(columns, rows)`` and, with ``out``, writes them as CSV atomically (not with
    ``on_error="fail"`` when an input cannot be used: then :class:`InputError` names it)."""
    table = load_model(model).predict([Path(p) for p in inputs], workers=workers, on_error=on_error)
    columns, rows = format_rows(table)
    if out is not None:
        write_table(out, columns, rows)
    n_err = sum(1 for r in rows if r[-1])
    log.info("%s: %d spectra, %d inputs could not be used", table.meta["model"], len(rows) - n_err, n_err)
    return columns, rows
