"""Training a task on a prepared set, into a run folder: :func:`train`.

Trainer layer, on PyTorch Lightning. The steps: open the set and let the task say which rows it can use and
what they fix in the configuration (:func:`prepare_config`); claim the run folder (never overwriting an
earlier run by accident) or find where a resumed run goes on from; build the network and Lightning's trainer
(:func:`make_trainer`); fit; score the best weights on the held-out rows and write the results
(:func:`finish_run`).

Distributed training (``devices > 1``) runs DDP over spawned processes; only rank 0 writes files. Each
process takes its share of every global batch (see :mod:`astrocnn.train.loader`), so results match a
single-process run up to floating-point summation order (and dropout streams, which differ by rank).
"""
from __future__ import annotations

import json
import logging
import os
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.strategies import DDPStrategy

from astrocnn.core.config import RunConfig, default_config
from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path, write_text_atomic
from astrocnn.tasks import Task, make_task, open_dataset
from astrocnn.train.callbacks import ResumeWriter, RunWriter
from astrocnn.train.inference import predict_rows
from astrocnn.train.loader import split_rows
from astrocnn.train.module import TaskModule
from astrocnn.train.resume import SafeCheckpointIO, read_state_header, remove_debris, remove_state, resume_point
from astrocnn.train.runs import (CONFIG_FILE, HISTORY_FILE, METRICS_FILE, RESUME_FILE, SPLIT_FILE,
                                 TEST_PREDICTIONS_FILE, RunResult, build_network, claim_run_folder, finished_result,
                                 load_run, read_history, write_table)
from astrocnn.version import __version__

log = logging.getLogger(__name__)

def _strategy(tc) -> Any:
    if tc.devices <= 1:
        return "auto"
    if tc.strategy != "auto":
        return tc.strategy
    # spawned processes work from the CLI, from scripts and from pytest alike ("ddp" re-runs sys.argv)
    return DDPStrategy(start_method="spawn", find_unused_parameters=False)


def prepare_config(task: Task, store, config: RunConfig, data_path: Path
                   ) -> tuple[RunConfig, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What the data decide: the usable rows split into train/val/test, the input description (the
    preprocessing is stored so prediction treats new files exactly as the training set was treated), and the
    task's statistics fitted on the training rows. Returns ``(config filled in, split, arrays to keep with
    the weights)``."""
    task.check_data(store)
    rows = task.usable_rows(store)
    dc = config.data
    if dc.max_rows and rows.size > dc.max_rows:
        rows = np.sort(np.random.default_rng([dc.split_seed, 4]).choice(rows, dc.max_rows, replace=False))
    if rows.size < 4:
        raise InputError(data_path, f"only {rows.size} rows are usable for {task.describe()}")
    split = split_rows(rows, dc.test_fraction, dc.val_fraction, dc.split_seed)
    arrays = task.configure_inputs(store, config)
    config.model = type(config.model).from_dict(config.model.to_dict())  # re-validate
    config.data.path = str(data_path)
    config.version = __version__
    task.fit(task.targets(task.read_labels(store, split["train"]), getattr(store, "class_names", ())))
    config.task = task.config
    return config, split, arrays


def _start_folder(out_dir: Path, config: RunConfig, split: dict[str, np.ndarray], new_run: bool) -> None:
    """Rank 0 only: a new run's configuration and split; debris of a killed process removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if new_run:
        # nothing of an earlier attempt may survive (--resume of a run killed before its first saved state),
        # its resume state least of all, and it goes before the new config.yaml, which a later --resume would
        # otherwise pair with it
        remove_state(out_dir / RESUME_FILE)
        for stale in (METRICS_FILE, HISTORY_FILE, "best.safetensors", "last.safetensors"):
            (out_dir / stale).unlink(missing_ok=True)
        config.save(out_dir / CONFIG_FILE)
        with atomic_path(out_dir / SPLIT_FILE, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **split)
    removed = remove_debris(out_dir, out_dir / RESUME_FILE)
    if removed:
        log.info("%s: removed %d file(s) left by an interrupted process: %s", out_dir, len(removed),
                 ", ".join(p.name for p in removed))


def make_trainer(config: RunConfig, out_dir: Path) -> pl.Trainer:
    """Lightning's trainer for a run: early stopping on the validation loss (the paper's convergence rule),
    our run-folder and resume callbacks, checkpoints through :class:`SafeCheckpointIO` (no pickle)."""
    tc = config.train
    callbacks = [RunWriter(out_dir),
                 EarlyStopping(monitor="val_loss", mode="min", patience=tc.patience, min_delta=tc.min_delta,
                               check_on_train_epoch_end=False),
                 ResumeWriter(out_dir / RESUME_FILE)]
    return pl.Trainer(
        accelerator=tc.accelerator,
        devices=tc.devices,
        strategy=_strategy(tc),
        max_epochs=tc.max_epochs,
        min_epochs=tc.min_epochs,
        max_time=timedelta(minutes=tc.max_minutes) if tc.max_minutes > 0 else None,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=True,  # our ResumeWriter is the checkpoint callback; no Lightning .ckpt (pickle)
        plugins=[SafeCheckpointIO()],
        enable_model_summary=False,
        enable_progress_bar=tc.progress_bar,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        gradient_clip_val=tc.grad_clip or None,
        sync_batchnorm=tc.devices > 1 and config.model.norm == "batch",
        default_root_dir=str(out_dir),
        deterministic=False,
    )


def _fit(trainer: pl.Trainer, module: TaskModule, threads: int, resume_from: Path | None) -> None:
    threads_before = torch.get_num_threads()  # fit sets this process's thread count; give it back after
    if threads:
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*train_dataloader.*num_workers.*")
        # Lightning's own use of a deprecated torch API (pytorch_lightning/utilities/_pytree.py)
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        try:
            trainer.fit(module, ckpt_path=str(resume_from) if resume_from is not None else None)
        finally:
            torch.set_num_threads(threads_before)


def finish_run(out_dir: Path, task: Task, config: RunConfig, store, split: dict[str, np.ndarray],
               summary: dict[str, Any]) -> RunResult:
    """Score the best weights on the test rows (the validation rows when there are none) and write
    ``test_predictions.csv``, the plots and, last, ``metrics.json``."""
    if not (out_dir / "best.safetensors").exists():
        raise RuntimeError(f"{out_dir}: training ended before the first validation; no weights were written")
    history = read_history(out_dir)
    best_network, _, _ = load_run(out_dir, "best")
    test_rows = split["test"] if split["test"].size else split["val"]
    pred, target = predict_rows(best_network, task, config, store, test_rows)
    metrics = task.metrics(pred, target, full=True)
    best_i = int(np.nanargmin(history["val_loss"]))
    summary = {**summary, "split": "test" if split["test"].size else "val",
               "epochs": int(len(history["epoch"])), "best_epoch": int(history["epoch"][best_i]),
               "best_val_loss": float(history["val_loss"][best_i])}
    order = ["task", "data", "split", "n_train", "n_val", "n_test", "epochs", "best_epoch", "best_val_loss",
             "wall_s", "n_parameters", "devices", "resumed_after_epoch"]
    summary = {k: summary[k] for k in order if k in summary}
    write_table(out_dir / TEST_PREDICTIONS_FILE, *task.test_table(test_rows, store.ids[test_rows], pred, target))
    _plots(out_dir, history, task, pred, target)
    # last: its presence marks a finished run (see resume_point)
    write_text_atomic(out_dir / METRICS_FILE, json.dumps({"summary": summary, "test": metrics}, indent=2) + "\n")
    log.info("%s: best epoch %d of %d; test %s = %.4f", out_dir, summary["best_epoch"], summary["epochs"],
             task.monitor, metrics.get(task.monitor, float("nan")))
    return RunResult(run_dir=out_dir, metrics=metrics, best_epoch=summary["best_epoch"], epochs=summary["epochs"],
                     best_val_loss=summary["best_val_loss"], wall_s=summary["wall_s"],
                     n_parameters=summary["n_parameters"], history=history, monitor=task.monitor)


def _plots(out_dir: Path, history, task: Task, pred, target) -> None:
    from astrocnn.core import plots  # matplotlib: only when drawing

    try:
        plots.plot_loss_curves(history, out_dir / "loss.png")
        task.plots(pred, target, out_dir)
    except Exception as exc:  # a figure must never cost a finished training run
        warnings.warn(f"{out_dir}: plots failed ({exc})", RuntimeWarning)


def train(task: str, data_path: str | os.PathLike, out_dir: str | os.PathLike, config: RunConfig | None = None,
          *, resume: bool = False, force: bool = False) -> RunResult:
    """Train ``task`` (``"redshift"`` or ``"classify"`` on a spectra set, ``"detect"`` on a strain set) on a
    prepared set and write a run folder (see :mod:`astrocnn.train.runs`).

    The usable rows are split into train/val/test with ``config.data``; training stops when the validation
    loss has not improved for ``config.train.patience`` epochs (or at ``max_epochs`` / ``max_minutes``); the
    best weights are kept and scored on the test rows.

    A folder that already holds a run (finished or not) is refused with an :class:`InputError`, every file left
    as it was, unless ``resume`` or ``force`` (replace the earlier run) is given.

    resume : continue the run in ``out_dir`` from its last completed epoch instead of starting afresh.
        Every epoch ends by saving the whole training state (``resume.json`` + a safetensors file, see
        :mod:`astrocnn.train.resume`), so a run killed at any moment -- even ``kill -9`` -- loses at most the
        epoch in progress, and resuming it ends with the same weights, history and scores as an uninterrupted
        run with the same seed (bitwise on one device with a fixed thread count). What happens:

        * the configuration (after what the data fill in) must equal the run's ``config.yaml`` except for
          settings that do not change what is computed (``RESUME_FREE_SETTINGS``), and the data must give
          the same split; otherwise :class:`InputError` names what differs;
        * a finished run (``metrics.json`` present, written last) is left untouched: the result is read back
          from its files and a message says so;
        * a folder with no saved state (no run yet, or killed before its first epoch ended) starts a new run,
          with a log message, so a requeued batch job can always pass ``resume=True``;
        * ``max_minutes`` (and the ``cosine_time`` schedule) count training time over all processes of the
          run up to the last saved epoch; time lost in an interrupted epoch and restart overhead is not
          counted;
        * ``devices > 1``: every process's random generator state is saved and restored; the number of
          processes must not change.
    """
    t0 = time.time()
    config = config if config is not None else default_config(task)
    if config.task.name != task:
        raise ValueError(f"task {task!r} differs from the configuration's task {config.task.name!r}")
    # a fresh copy we may fill in (input shape, fitted state, provenance)
    config = RunConfig.from_dict(config.to_dict())
    data_path, out_dir = Path(data_path), Path(out_dir)
    # with strategy="ddp" this function runs again in every re-launched process: only rank 0 writes, and only
    # rank 0 judges the folder (the others find the files rank 0 has just written)
    writer_rank = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    if writer_rank:
        claim_run_folder(out_dir, resume=resume, force=force)
    tsk = make_task(config.task)
    store = open_dataset(data_path)
    try:
        config, split, arrays = prepare_config(tsk, store, config, data_path)
        resume_from = resume_point(out_dir, config, split) if resume else None
        if resume_from == out_dir / METRICS_FILE:
            return finished_result(out_dir, tsk.monitor)
        resumed_after = None if resume_from is None else int(read_state_header(resume_from)["epoch"])
        if writer_rank:
            _start_folder(out_dir, config, split, new_run=resume_from is None)
        pl.seed_everything(config.train.seed, workers=True, verbose=False)
        network = build_network(config, tsk)
        n_params = sum(p.numel() for p in network.parameters())
        log.info("%s: %d train / %d val / %d test rows; %s; %d parameters", data_path.name, split["train"].size,
                 split["val"].size, split["test"].size, tsk.describe(), n_params)
        module = TaskModule(network, tsk, config, str(data_path), split)
        module.preprocess_arrays = arrays
        trainer = make_trainer(config, out_dir)
        _fit(trainer, module, config.train.threads, resume_from)
        if trainer.global_rank != 0:
            return None  # type: ignore[return-value]  # a re-launched "ddp" process; rank 0 reports
        summary: dict[str, Any] = {
            "task": tsk.describe(), "data": str(data_path), "n_train": int(split["train"].size),
            "n_val": int(split["val"].size), "n_test": int(split["test"].size),
            "wall_s": round(time.time() - t0, 1), "n_parameters": int(n_params), "devices": config.train.devices}
        if resumed_after is not None:
            summary["resumed_after_epoch"] = resumed_after  # wall_s then counts this process only
        return finish_run(out_dir, tsk, config, store, split, summary)
    finally:
        store.close()
