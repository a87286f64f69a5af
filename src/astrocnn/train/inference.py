"""A trained network applied: to input arrays, to rows of a prepared set, to a whole set with scores.

Trainer layer (the applications build on it: :mod:`astrocnn.apps.predict` for files and folders,
:mod:`astrocnn.apps.gwscan` for raw strain).

    from astrocnn.train import evaluate, load_run, predict_arrays, predict_set
    scores = evaluate("runs/z", "other_survey.h5")
    out = predict_set("runs/z", "survey.h5")           # id, row, z, z_conf
    out = predict_arrays("runs/z", flux, ivar)          # spectra already on the run's grid
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astrocnn.core.config import RunConfig
from astrocnn.core.errors import InputError
from astrocnn.core.io import write_text_atomic
from astrocnn.models.cnn import Network
from astrocnn.tasks import Task, class_names_of, open_dataset
from astrocnn.tasks.spectral import grid_text, make_inputs
from astrocnn.train.runs import METRICS_FILE, SPLIT_FILE, load_run


def run_network(network: Network, task: Task, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Decoded predictions for inputs ``x`` (n, channels, length), in batches, in inference mode."""
    parts: list[dict[str, torch.Tensor]] = []
    network.eval()
    with torch.inference_mode():
        for lo in range(0, x.shape[0], batch_size):
            parts.append(task.decode(network(torch.from_numpy(x[lo:lo + batch_size]))))
    if not parts:
        return {}
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def network_outputs(network: Network, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    """The network's raw outputs for inputs ``x`` (n, channels, length), undecoded, as numpy arrays (a head
    with several outputs gives several arrays), in batches, in inference mode."""
    parts: list[tuple[torch.Tensor, ...]] = []
    network.eval()
    with torch.inference_mode():
        for lo in range(0, x.shape[0], batch_size):
            out = network(torch.from_numpy(np.ascontiguousarray(x[lo:lo + batch_size], dtype=np.float32)))
            parts.append(out if isinstance(out, tuple) else (out,))
    if not parts:
        return ()
    return tuple(torch.cat([p[i] for p in parts]).numpy() for i in range(len(parts[0])))


def predict_rows(network: Network, task: Task, config: RunConfig, store, rows: np.ndarray,
                 batch_size: int | None = None, with_target: bool = True):
    """Predictions for ``rows`` of ``store`` (read in sorted chunks). Returns ``(pred, target)``."""
    rows = np.asarray(rows, dtype=np.int64)
    bs = batch_size or max(256, config.data.eval_batch_size)
    chunk = 4 * bs
    preds, targets = [], []
    for lo in range(0, rows.size, chunk):
        batch, x = task.read_inputs(store, rows[lo:lo + chunk], config.data)
        preds.append(run_network(network, task, x, bs))
        if with_target:
            targets.append(task.targets(batch, class_names_of(store)))
    if not preds:
        return {}, np.zeros(0)
    pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
    return pred, (np.concatenate(targets) if with_target else None)


def _split_rows(run: str | os.PathLike, data_path, split: str, n_rows: int) -> np.ndarray:
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    with np.load(run_dir / SPLIT_FILE, allow_pickle=False) as npz:
        if split not in npz:
            raise InputError(run_dir / SPLIT_FILE, f"no split {split!r}; have {list(npz.keys())}")
        rows = npz[split]
    if rows.size and rows.max() >= n_rows:
        raise InputError(data_path, f"split {split!r} of {run} refers to rows this set does not have")
    return rows


def evaluate(run: str | os.PathLike, data_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             split: str | None = None, metrics_name: str = METRICS_FILE) -> dict[str, Any]:
    """Score a trained run on a prepared set.

    run : run folder (its best weights) or weights file.
    data_path : prepared set with labels; every row the task can use is scored, or only the ``split``
        (``"test"``, ``"val"`` or ``"train"`` from the run's ``split.npz``) when given, which requires the
        set the run was trained on.
    out_dir : if given, ``metrics_name`` (default ``metrics.json``) and the task's plots are written there.
    """
    network, task, config = load_run(run)
    store = open_dataset(data_path)
    task.check_compatible(config, store)
    rows = task.usable_rows(store)
    if split is not None:
        rows = _split_rows(run, data_path, split, len(store))
    if rows.size == 0:
        raise InputError(data_path, f"no rows with labels usable for {task.describe()}")
    pred, target = predict_rows(network, task, config, store, rows)
    metrics = task.metrics(pred, target, full=True)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_text_atomic(out_dir / metrics_name, json.dumps({"data": str(data_path), "metrics": metrics}, indent=2) + "\n")
        task.plots(pred, target, out_dir)
    store.close()
    return metrics


def predict_set(run: str | os.PathLike, data_path: str | os.PathLike, batch_size: int = 1024,
                loaded: tuple | None = None) -> dict[str, np.ndarray]:
    """Predictions for every row of a prepared set: ``id``, ``row`` and the task's outputs
    (redshift: ``z``, ``z_conf``; classify: ``cls`` (index), ``class`` (name), ``prob`` (n, n_classes);
    detect, on a strain set: ``score`` (sigmoid of the logit) and ``logit``).

    loaded : a :func:`~astrocnn.train.runs.load_run` result to reuse.
    """
    network, task, config = loaded if loaded is not None else load_run(run)
    with open_dataset(data_path) as store:
        task.check_compatible(config, store)
        rows = np.arange(len(store))
        pred, _ = predict_rows(network, task, config, store, rows, batch_size=batch_size, with_target=False)
        return task.name_predictions({"id": store.ids, "row": rows, **pred})


def predict_arrays(run: str | os.PathLike, flux: np.ndarray, ivar: np.ndarray | None = None,
                   batch_size: int = 1024, grid=None, loaded: tuple | None = None) -> dict[str, np.ndarray]:
    """Predictions for spectra already on the model's grid.

    flux, ivar : (n, n_pix) normalised flux and its inverse variance (as :func:`~astrocnn.spectra.preprocess`
        makes them). ``ivar`` is needed only by models with a ``mask`` input channel.
    grid : the spectra's :class:`LogLambdaGrid`, checked against the model's when given.
    loaded : a ``load_run`` result to reuse (avoids re-reading the weights for repeated calls).
    Returns redshift: ``z``, ``z_conf``; classify: ``cls``, ``class``, ``prob``.
    """
    network, task, config = loaded if loaded is not None else load_run(run)
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float32))
    n = int(config.input.get("length", config.model.length))
    if flux.shape[1] != n:
        raise InputError(None, f"spectra have {flux.shape[1]} pixels, the model takes {n}")
    if grid is not None and config.input.get("grid") and json.loads(grid.to_json()) != config.input["grid"]:
        raise InputError(None, f"spectra are on grid {grid_text(json.loads(grid.to_json()))}, "
                               f"the model was trained on {grid_text(config.input['grid'])}")
    if ivar is not None:
        ivar = np.atleast_2d(np.asarray(ivar, dtype=np.float32))
        if ivar.shape != flux.shape:
            raise InputError(None, f"ivar has shape {ivar.shape}, flux has {flux.shape}")
    x = make_inputs(flux, ivar, config.data.inputs)
    return task.name_predictions(run_network(network, task, x, batch_size))
