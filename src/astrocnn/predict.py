"""``astrocnn predict``: a trained run applied to SDSS files, folders of them, or prepared sets.

Each spectrum file is read and preprocessed exactly as the training set was (the run stores the grid and
the preprocessing configuration). With ``on_error="skip"`` (the default) an input that cannot be used gets
a row with the reason in ``error`` and the rest are predicted; with ``on_error="fail"`` the first such input
raises :class:`InputError` naming it, and no predictions file is written.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .errors import InputError
from .io import write_text_atomic
from .spectra.grid import LogLambdaGrid
from .spectra.preprocess import PreprocessConfig

log = logging.getLogger(__name__)


def _run_preprocessing(config) -> tuple[LogLambdaGrid, PreprocessConfig]:
    grid = LogLambdaGrid(**config.input["grid"]) if config.input.get("grid") else LogLambdaGrid()
    pre = config.input.get("preprocess") or {}
    return grid, PreprocessConfig(**pre)


def _columns(task) -> list[str]:
    if task.name == "detect":
        return ["id", "source", "gps_centre", "score", "logit", "valid", "error"]
    if task.name == "redshift":
        return ["id", "source", "z_pred", "z_conf", "error"]
    return ["id", "source", "class", *[f"p_{c}" for c in task.class_names], "error"]


def _rows_from_pred(task, ids: Sequence[str], sources: Sequence[str], pred: dict[str, np.ndarray]) -> list[list[Any]]:
    rows = []
    for i in range(len(ids)):
        if task.name == "detect":
            gps = pred.get("gps_centre")
            valid = pred.get("valid")
            rows.append([ids[i], sources[i], "" if gps is None else f"{gps[i]:.4f}", f"{pred['score'][i]:.6f}",
                         f"{pred['logit'][i]:.4f}", "" if valid is None else int(bool(valid[i])), ""])
        elif task.name == "redshift":
            conf = pred.get("z_conf")
            rows.append([ids[i], sources[i], f"{pred['z'][i]:.5f}", "" if conf is None else f"{conf[i]:.4f}", ""])
        else:
            rows.append([ids[i], sources[i], pred["class"][i], *[f"{p:.4f}" for p in pred["prob"][i]], ""])
    return rows


def predict_inputs(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike | None = None,
    *,
    batch_size: int = 1024,
    workers: int | None = None,
    on_error: str = "skip",
) -> tuple[list[str], list[list[Any]]]:
    """Predict every spectrum in ``inputs`` (SDSS spec files, folders, or prepared ``.h5`` sets).

    Returns ``(columns, rows)`` and, with ``out``, writes them as CSV atomically. Columns: ``id``,
    ``source``, then ``z_pred`` and ``z_conf`` (redshift) or ``class`` and one probability per class,
    and ``error`` (empty when the prediction is valid).

    on_error : ``"skip"``: an input that cannot be used (missing, unreadable, incompatible with the run)
        gets a row with the reason in ``error``; ``"fail"``: the first one raises :class:`InputError`
        (``"<file>: <problem>"``) and ``out`` is not written.
    """
    from .spectra.pipeline import _map_ordered, _default_workers, _prepare_chunk
    from .spectra.sdss import find_spec_files
    from .data import open_prepared
    from .train import check_compatible, load_run, predict_arrays, predict_rows

    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    loaded = load_run(run)
    network, task, config = loaded
    if task.name == "detect":
        columns, rows = _predict_strain(run, loaded, [Path(p) for p in inputs], batch_size, on_error)
        _write(out, columns, rows)
        return columns, rows
    grid, pre = _run_preprocessing(config)
    columns = _columns(task)
    n_prob = len(columns) - 3
    rows: list[list[Any]] = []

    def error_row(ident: str, source: str, reason: str) -> list[Any]:
        if on_error == "fail":
            raise InputError(source, reason)
        return [ident, source, *([""] * n_prob), reason]

    def flush(files: list[Path]) -> None:
        chunk = 64
        jobs = [([(f, None) for f in files[s:s + chunk]], grid, pre) for s in range(0, len(files), chunk)]
        for result in _map_ordered(_prepare_chunk, jobs, workers or _default_workers()):
            if on_error == "fail":
                bad = next((r for r in result if r[0] is None), None)
                if bad is not None:
                    raise InputError(bad[1], bad[2])
            good = [r for r in result if r[0] is not None]
            pred_rows: list[list[Any]] = []
            if good:
                flux = np.stack([r[0].flux for r in good])
                ivar = np.stack([r[0].ivar for r in good])
                pred = predict_arrays(run, flux, ivar, batch_size=batch_size, grid=grid, loaded=loaded)
                pred_rows = _rows_from_pred(task, [r[1] for r in good], [r[4] for r in good], pred)
            it = iter(pred_rows)
            # keep the inputs' order: error rows stay where their file was
            rows.extend(next(it) if r[0] is not None else error_row(Path(r[1]).name, r[1], r[2]) for r in result)
        files.clear()

    # consecutive spectrum files are read together in worker processes; rows keep the inputs' order
    pending: list[Path] = []
    for item in map(Path, inputs):
        if item.suffix in (".h5", ".hdf5") or not item.exists():
            flush(pending)
        if not item.exists():
            rows.append(error_row(item.name, str(item), "no such file or folder"))
        elif item.suffix in (".h5", ".hdf5"):
            try:
                store = open_prepared(item)
                check_compatible(config, store)
            except InputError as exc:
                rows.append(error_row(item.name, str(item), exc.problem))
                continue
            pred, _ = predict_rows(network, task, config, store, np.arange(len(store)), batch_size=batch_size,
                                   with_target=False)
            if task.name == "classify":
                pred["class"] = np.asarray(task.class_names, dtype=object)[pred["cls"]]
            rows += _rows_from_pred(task, list(store.ids), [str(item)] * len(store), pred)
            store.close()
        else:
            pending += find_spec_files([item])
    flush(pending)
    _write(out, columns, rows)
    n_err = sum(1 for r in rows if r[-1])
    log.info("predicted %d spectra, %d could not be used", len(rows) - n_err, n_err)
    return columns, rows


def _is_prepared(path: Path) -> bool:
    """True for an astrocnn prepared set (as opposed to, say, a GWOSC strain file)."""
    import h5py

    from .store import FORMAT

    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("format") == FORMAT
    except OSError:
        return False


def _write(out, columns: list[str], rows: list[list[Any]]) -> None:
    if out is None:
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    write_text_atomic(out, buf.getvalue())


def _predict_strain(run, loaded, inputs: list[Path], batch_size: int, on_error: str = "skip"
                    ) -> tuple[list[str], list[list[Any]]]:
    """Detection: prepared strain sets, G2Net-layout folders, or GWOSC files (grouped into segments).

    GWOSC files covering the same GPS span (one per detector) are scored together, in sliding 2-s windows,
    one row per window with its GPS centre time. A G2Net sample that cannot be read gets its own error row
    (``on_error="skip"``), the rest of its folder is scored.
    """
    from .data import open_prepared
    from .gw.apply import predict_g2net_dir, predict_gwosc
    from .gw.readers import read_gwosc
    from .train import check_compatible, predict_rows

    network, task, config = loaded
    columns = _columns(task)
    rows: list[list[Any]] = []
    segments: dict[tuple[float, int], list[Path]] = {}

    def error_row(ident: str, source: str, reason: str) -> list[Any]:
        if on_error == "fail":
            raise InputError(source, reason)
        return [ident, source, "", "", "", "", reason]

    for item in inputs:
        try:
            if not item.exists():
                raise InputError(item, "no such file or folder")
            if item.is_dir():
                pred = predict_g2net_dir(run, item, batch_size=batch_size, loaded=loaded, on_error=on_error)
                ok = pred["error"] == ""
                scored = _rows_from_pred(task, list(pred["id"][ok]), [str(item)] * int(ok.sum()),
                                         {k: v[ok] for k, v in pred.items() if k in ("score", "logit")})
                it = iter(scored)
                # samples keep their place (sorted by id); an unreadable one gets its file and reason
                rows += [next(it) if ok[i] else error_row(str(pred["id"][i]), str(pred["path"][i]), pred["error"][i])
                         for i in range(len(ok))]
                continue
            if _is_prepared(item):
                store = open_prepared(item)
                check_compatible(config, store)
                pred, _ = predict_rows(network, task, config, store, np.arange(len(store)), batch_size=batch_size,
                                       with_target=False)
                rows += _rows_from_pred(task, list(store.ids), [str(item)] * len(store), pred)
                store.close()
                continue
            g = read_gwosc(item)
            key = (round(float(g.gps_start), 3), int(round(g.strain.size / g.sample_rate)))
            segments.setdefault(key, []).append(item)
        except InputError as exc:
            if on_error == "fail":
                raise
            rows.append(error_row(item.name, str(item), exc.problem))
    for (gps, dur), paths in segments.items():
        try:
            pred = predict_gwosc(run, paths, batch_size=batch_size, loaded=loaded)
        except InputError as exc:
            if on_error == "fail":
                raise
            rows += [error_row(p.name, str(p), exc.problem) for p in paths]
            continue
        n = len(pred["score"])
        source = "+".join(p.name for p in paths)
        rows += _rows_from_pred(task, [f"{gps:.0f}-{dur}"] * n, [source] * n, pred)
    return columns, rows
