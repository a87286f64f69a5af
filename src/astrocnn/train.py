"""Task-agnostic training, evaluation and prediction on PyTorch Lightning.

Python API::

    from astrocnn.train import train, load_run, evaluate, predict, predict_arrays
    from astrocnn.config import default_config

    result = train("redshift", "survey.h5", "runs/z", default_config("redshift", train={"max_epochs": 20}))
    model, task, config = load_run("runs/z")
    scores = evaluate("runs/z", "other_survey.h5")
    out = predict_arrays("runs/z", flux, ivar)          # {"z": ..., "z_conf": ...}

    # gravitational-wave detection on a prepared strain set (astrocnn.gw.store.prepare_g2net)
    result = train("detect", "g2net_train.h5", "runs/gw", default_config("detect"))
    scores = evaluate("runs/gw", "g2net_test.h5")      # roc_auc, its bootstrap interval, tpr_at_fpr_0.01, per SNR
    # raw strain: astrocnn.gw.apply.predict_gwosc / predict_g2net_dir

A run folder holds ``config.yaml`` (the :class:`~astrocnn.config.RunConfig` that built it, with the fitted
task state and the input grid), ``split.npz`` (row indices of the train/val/test split), ``history.csv``
(one row per epoch), ``best.safetensors`` and ``last.safetensors`` (weights with the configuration in
their metadata: loading never unpickles anything), ``metrics.json`` (scores on the held-out test rows),
``test_predictions.csv`` and plots (``metrics.json`` is written last: its presence marks a finished run).
``resume.json`` with ``resume.e<epoch>-<id>.safetensors`` hold the whole training state after the last
completed epoch (optimizer, schedule, early stopping, history, best weights, random generators), JSON +
safetensors again, so ``train(..., resume=True)`` / ``astrocnn train --resume`` continues a killed run to the
same result as an uninterrupted one (see :func:`train` and :mod:`astrocnn.resume`).

Runs on strain sets also keep the whitening PSD in the weights files (tensor ``preprocess.whitening_psd``, see
:func:`load_preprocess`) and the whitener settings in ``config.input["preprocessing"]``, so raw strain is
prepared for prediction exactly as the training set was.

Distributed training (``devices > 1``) runs DDP over spawned processes; only rank 0 writes files. Each
process takes its share of every global batch (see :mod:`astrocnn.data`), so results match a
single-process run up to floating-point summation order (and dropout streams, which differ by rank).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors import safe_open
from pytorch_lightning.callbacks import Checkpoint
from safetensors.torch import save as save_tensors

from . import __version__
from .config import RunConfig, default_config
from .data import AnySet, class_names_of, is_strain, make_inputs, make_loader, open_prepared, read_inputs, split_rows
from .errors import InputError
from .io import atomic_path, write_text_atomic
from .models.cnn import CNN, Network, he_uniform_
from .resume import (SafeCheckpointIO, read_state_header, remove_debris, remove_state, rng_state, set_rng_state,
                     verify_state)
from .tasks import Task, make_task

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "astrocnn-weights"
WEIGHTS_VERSION = "1"
HISTORY_FILE = "history.csv"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.npz"
METRICS_FILE = "metrics.json"
#: the saved training state (see :mod:`astrocnn.resume`); its tensors are in ``resume.e<epoch>-<id>.safetensors``
RESUME_FILE = "resume.json"
#: weights-file tensors under this prefix are preprocessing state (e.g. the whitening PSD), not weights
PREPROCESS_PREFIX = "preprocess."


# ----------------------------------------------------------------------------------------------------------
# building and saving networks


def build_network(config: RunConfig, task: Task | None = None) -> Network:
    """A freshly He-uniform-initialised network for ``config`` (seed torch first for reproducibility)."""
    task = task or make_task(config.task)
    body = CNN(config.model)
    net = Network(body, task.make_head(body.features))
    return he_uniform_(net)


def save_weights(network: torch.nn.Module, config: RunConfig, path: str | os.PathLike,
                 preprocess: Mapping[str, Any] | None = None) -> None:
    """Write ``network``'s weights with ``config`` in the metadata (safetensors; atomic).

    preprocess : named arrays the inputs were prepared with (strain runs: ``whitening_psd``), stored as
        tensors ``preprocess.<name>`` beside the weights so prediction can prepare new data identically.
    """
    _write_weights(network.state_dict(), config, path, preprocess)


def _write_weights(weights: Mapping[str, torch.Tensor], config: RunConfig, path: str | os.PathLike,
                   preprocess: Mapping[str, Any] | None = None) -> None:
    """:func:`save_weights` for a state dict (the best-so-far weights kept apart from the live network)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    for k, v in (preprocess or {}).items():
        state[PREPROCESS_PREFIX + k] = torch.as_tensor(np.asarray(v)).contiguous().clone()
    meta = {"format": WEIGHTS_FORMAT, "format_version": WEIGHTS_VERSION, "config": config.to_json()}
    # serialised here and written by us: safetensors' own save_file (0.8) writes through a temporary file
    # of its own (.tmpXXXXXX), which a kill -9 would leave behind in the run folder
    blob = save_tensors(state, metadata=meta)
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(blob)


def _weights_file(run: str | os.PathLike, which: str) -> Path:
    run = Path(run)
    if run.is_file():
        return run
    if not run.exists():
        raise InputError(run, "no such run folder")
    path = run / f"{which}.safetensors"
    if not path.exists():
        raise InputError(run, f"no {path.name} here: not a finished astrocnn run folder (train one with 'astrocnn train')")
    return path


def load_run(run: str | os.PathLike, which: str = "best") -> tuple[Network, Task, RunConfig]:
    """Load a trained network without unpickling anything.

    run : a run folder (its ``best`` or ``last`` weights, per ``which``) or a ``.safetensors`` file.
    Returns ``(network in eval mode, task, config)``.
    """
    path = _weights_file(run, which)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InputError(path, f"not a readable safetensors weights file ({exc})") from exc
    if meta.get("format") != WEIGHTS_FORMAT:
        raise InputError(path, "not an astrocnn weights file (no astrocnn configuration in its metadata)")
    config = RunConfig.from_json(meta["config"])
    state = {k: v for k, v in state.items() if not k.startswith(PREPROCESS_PREFIX)}
    task = make_task(config.task)
    network = build_network(config, task)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the configuration stored with them ({exc})") from exc
    network.eval()
    return network, task, config


def load_preprocess(run: str | os.PathLike, which: str = "best") -> dict[str, np.ndarray]:
    """The preprocessing arrays stored with a run's weights (strain runs: ``whitening_psd`` (C, n//2+1)
    float64); empty for spectra runs. Read without unpickling anything."""
    path = _weights_file(run, which)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k[len(PREPROCESS_PREFIX):]: f.get_tensor(k).numpy() for k in f.keys()
                    if k.startswith(PREPROCESS_PREFIX)}
    except Exception as exc:
        raise InputError(path, f"not a readable safetensors weights file ({exc})") from exc


def strain_whitener(config: RunConfig, preprocess: Mapping[str, np.ndarray]):
    """The :class:`~astrocnn.gw.transforms.GwPreprocess` (whitener + normalisation) a strain run was trained
    behind, rebuilt from ``config.input["preprocessing"]`` and the stored PSD."""
    from .gw.transforms import GwPreprocess, Whitener

    pre = config.input.get("preprocessing") or {}
    if config.input.get("kind") != "strain" or "whitener" not in pre or "whitening_psd" not in preprocess:
        raise InputError(None, "this run was not trained on a prepared strain set (no stored whitener)")
    w = Whitener.from_state(pre["whitener"], preprocess["whitening_psd"], int(config.input.get("whitening_n_fit", 1)))
    return GwPreprocess(w, pre.get("normalize", "channel"))


def check_compatible(config: RunConfig, store: AnySet, task: str | None = None) -> None:
    """Refuse a data set (or task) the network was not built for, saying what differs."""
    if task is not None and task != config.task.name:
        raise InputError(store.path, f"the model was trained for '{config.task.name}', not '{task}'")
    want_kind = config.input.get("kind", "spectra")
    have_kind = "strain" if is_strain(store) else "spectra"
    if want_kind != have_kind:
        raise InputError(store.path, f"a prepared {have_kind} set; the model was trained on {want_kind}")
    if have_kind == "strain":
        shape = [len(config.input.get("detectors", [])) or config.model.in_channels, int(config.input["length"])]
        if list(store.shape) != shape or float(store.sample_rate) != float(config.input.get("sample_rate")):
            raise InputError(store.path, f"strain of shape {tuple(store.shape)} at {store.sample_rate:g} Hz; the "
                                         f"model takes {tuple(shape)} at {config.input.get('sample_rate'):g} Hz")
        if store.preprocessing != config.input.get("preprocessing"):
            log.warning("%s: prepared with %s; the model was trained behind %s", store.path,
                        store.preprocessing, config.input.get("preprocessing"))
        return
    want = config.input.get("grid")
    have = None if store.grid is None else json.loads(store.grid.to_json())
    if want is not None and have is not None and want != have:
        raise InputError(
            store.path,
            f"spectra are on grid {_grid_text(have)}, the model was trained on {_grid_text(want)}: "
            "prepare the data on the model's grid",
        )
    n = int(config.input.get("length", config.model.length))
    if store.grid is not None and store.grid.n != n:
        raise InputError(store.path, f"spectra have {store.grid.n} pixels, the model takes {n}")


def _grid_text(g: Mapping[str, Any]) -> str:
    return f"{g['lam_min']:g}-{g['lam_max']:g} A with {g['n']} pixels"


# ----------------------------------------------------------------------------------------------------------
# the Lightning module


class TaskModule(pl.LightningModule):
    """Network + task + data for one run. Only rank 0 writes; metrics are gathered over all ranks."""

    def __init__(self, network: Network, task: Task, config: RunConfig, data_path: str, split: dict):
        super().__init__()
        self.network = network
        self.task = task
        self.run_config = config
        self.data_path = data_path
        self.split = split
        self.epoch_record: dict[str, Any] = {}
        #: preprocessing arrays saved with the weights (see :func:`save_weights`)
        self.preprocess_arrays: dict[str, np.ndarray] = {}
        #: training seconds of earlier processes of this run (restored on resume; see :meth:`train_seconds`)
        self._seconds_before = 0.0
        self._t_start = time.monotonic()
        self._reset_train()

    # -- resumable state (see :func:`train`): what the module adds to Lightning's checkpoint
    def train_seconds(self) -> float:
        """Seconds of training so far, over every process of this run (an interrupted one counts up to its
        last saved epoch). The ``cosine_time`` schedule runs on this clock."""
        return self._seconds_before + (time.monotonic() - self._t_start)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["astrocnn"] = {"train_seconds": self.train_seconds()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._seconds_before = float((checkpoint.get("astrocnn") or {}).get("train_seconds", 0.0))

    # -- data
    def setup(self, stage: str) -> None:
        tc = self.run_config.train
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // max(1, self.trainer.world_size)))
        # identical weights on every rank came from the main process; dropout streams differ by rank
        torch.manual_seed(tc.seed + self.global_rank)

    def _loader(self, part: str, train: bool):
        tc = self.run_config.train
        batch = tc.batch_size if train else self.run_config.data.eval_batch_size * self.trainer.world_size
        return make_loader(open_prepared(self.data_path), self.split[part], self.task, self.run_config.data,
                           batch_size=batch, train=train, seed=tc.seed, rank=self.global_rank,
                           world_size=self.trainer.world_size)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    # -- steps
    def forward(self, x):
        return self.network(x)

    def _reset_train(self):
        self._train_sum = torch.zeros((), dtype=torch.float64)
        self._train_n = torch.zeros((), dtype=torch.float64)
        self._val: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        per = self.task.loss(self.network(batch["x"]), batch["target"])
        w = batch["weight"]
        loss = (per * w).sum() / w.sum().clamp(min=1.0)
        self._train_sum += (per.detach() * w).sum().double().cpu()
        self._train_n += w.sum().double().cpu()
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.network(batch["x"])
        rec = {k: v.detach() for k, v in self.task.decode(out).items()}
        rec["_loss"] = self.task.loss(out, batch["target"]).detach().double()
        rec["_target"] = batch["target"]
        rec["_weight"] = batch["weight"]
        self._val.append(rec)

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        if self.trainer.world_size == 1:
            return t
        g = self.all_gather(t)
        return g.reshape(-1, *t.shape[1:])

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self._val = []
            return
        keys = self._val[0].keys()
        cat = {k: self._gather(torch.cat([r[k] for r in self._val])) for k in keys}
        self._val = []
        keep = cat.pop("_weight") > 0
        cat = {k: v[keep].cpu().numpy() for k, v in cat.items()}
        val_loss = float(cat.pop("_loss").mean())
        target = cat.pop("_target")
        train_sum = self.trainer.strategy.reduce(self._train_sum.clone(), reduce_op="sum")
        train_n = self.trainer.strategy.reduce(self._train_n.clone(), reduce_op="sum")
        self._train_sum.zero_()
        self._train_n.zero_()
        train_loss = float(train_sum / train_n) if float(train_n) > 0 else float("nan")
        scores = _flat_scores(self.task.metrics(cat, target, full=False))
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
        self.epoch_record = {"epoch": int(self.current_epoch), "train_loss": train_loss, "val_loss": val_loss,
                             "lr": float(lr), **{f"val_{k}": v for k, v in scores.items()}}
        # identical on every rank already; sync_dist only averages equal values (silences a warning)
        self.log("val_loss", val_loss, prog_bar=True, logger=False, sync_dist=True)
        mon = f"val_{self.task.monitor}"
        if mon in self.epoch_record:
            self.log(mon, self.epoch_record[mon], prog_bar=True, logger=False, sync_dist=True)

    # -- optimisation
    def configure_optimizers(self):
        tc = self.run_config.train
        params = self.network.parameters()
        if tc.weight_decay > 0:
            opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=tc.lr)
        if tc.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, tc.patience // 3))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = max(1, total // max(1, tc.max_epochs))
        warm = max(1, int(round(tc.warmup_epochs * per_epoch)))
        cosine = tc.schedule in ("cosine", "cosine_time")
        self._t_start = time.monotonic()

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if not cosine:
                return 1.0
            if tc.schedule == "cosine_time":
                frac = min(1.0, self.train_seconds() / (60.0 * tc.max_minutes))
            else:
                frac = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

def _flat_scores(m: Mapping[str, Any]) -> dict[str, float]:
    """Scalar scores for the history: nested per-class dicts become ``name_class``; matrices are dropped."""
    out: dict[str, float] = {}
    for k, v in m.items():
        if isinstance(v, (int, float, np.integer, np.floating)):
            out[k] = float(v)
        elif isinstance(v, dict) and k in ("completeness", "purity"):
            out.update({f"{k}_{c}": float(x) for c, x in v.items()})
    return out


class RunWriter(pl.Callback):
    """Rank 0: after each epoch, append to ``history.csv``, write ``last`` and (if improved) ``best`` weights.

    Its state (the history rows, the best validation loss and the best-so-far weights) goes into the resume
    state, so a resumed run keeps its history and still ends on the best epoch of the whole run. On resume it
    first rewrites ``history.csv``, ``last`` and ``best`` from that state: a process killed after writing
    them for an epoch but before that epoch's resume state was committed must not leave the folder one
    epoch ahead of the state training continues from.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.rows: list[dict[str, Any]] = []
        self.best = math.inf
        #: the weights of the best epoch so far (rank 0; CPU copies)
        self.best_weights: dict[str, torch.Tensor] = {}
        self._t0 = time.time()
        #: ``time_s`` of the last epoch that earlier processes of this run completed (0 for a fresh run)
        self._time_before = 0.0
        self._restored = False

    def on_train_epoch_end(self, trainer, module):
        rec = dict(module.epoch_record)
        if not rec or rec.get("epoch") != trainer.current_epoch:
            return
        rec["time_s"] = round(self._time_before + time.time() - self._t0, 1)
        if trainer.is_global_zero:
            self.rows.append(rec)
            _write_history(self.run_dir / HISTORY_FILE, self.rows)
            save_weights(module.network, module.run_config, self.run_dir / "last.safetensors", module.preprocess_arrays)
            if rec["val_loss"] < self.best:
                self.best = rec["val_loss"]
                self.best_weights = {k: v.detach().cpu().clone() for k, v in module.network.state_dict().items()}
                _write_weights(self.best_weights, module.run_config, self.run_dir / "best.safetensors",
                               module.preprocess_arrays)
            log.info("epoch %d: %s", rec["epoch"],
                     ", ".join(f"{k}={v:.4g}" for k, v in rec.items() if k not in ("epoch",) and isinstance(v, float)))

    def on_train_start(self, trainer, module):
        self._t0 = time.time()

    # -- resume
    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "best": self.best, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]
        self.best = float(state.get("best", math.inf))
        self.best_weights = dict(state.get("best_weights") or {})
        self._time_before = float(self.rows[-1].get("time_s", 0.0)) if self.rows else 0.0
        self._restored = True

    def on_fit_start(self, trainer, module):
        if not (self._restored and trainer.is_global_zero):
            return
        # the model's weights were restored before this hook: they are the last completed epoch's
        if self.rows:
            _write_history(self.run_dir / HISTORY_FILE, self.rows)
        save_weights(module.network, module.run_config, self.run_dir / "last.safetensors", module.preprocess_arrays)
        if self.best_weights:
            _write_weights(self.best_weights, module.run_config, self.run_dir / "best.safetensors",
                           module.preprocess_arrays)
        log.info("%s: resumed after epoch %d of %d (best val_loss %.4g so far)", self.run_dir,
                 int(self.rows[-1]["epoch"]) if self.rows else -1, module.run_config.train.max_epochs, self.best)


class ResumeWriter(Checkpoint):
    """Saves the resumable state (:mod:`astrocnn.resume`) at the end of every epoch, and restores what
    Lightning's own checkpoint restoration leaves out.

    It is a :class:`~pytorch_lightning.callbacks.Checkpoint` so that Lightning runs its epoch-end hook after
    every other callback: by then :class:`RunWriter` has written the epoch's files, early stopping has counted
    the epoch and the ``max_time`` timer has looked at the clock, so ``trainer.should_stop`` is final.
    ``trainer.save_checkpoint`` must run on every process (it synchronises them); only rank 0 writes.

    Besides what Lightning saves by itself (weights, optimizer, schedulers, loop counters, callback states),
    its own state holds:

    * the random generator states (torch, NumPy, Python) of every process, gathered from all ranks and put
      back at the start of the next epoch -- the point of the uninterrupted run that follows the save with
      no random draw in between (the data loaders draw from their own generators, see
      :func:`astrocnn.data.make_loader`);
    * ``trainer.should_stop``, which Lightning does not save: a run stopped early (or out of time) right
      after its last save must not train another epoch when resumed;
    * the monitored validation loss, because Lightning steps a ``ReduceLROnPlateau`` scheduler only *after*
      the epoch-end hooks, i.e. after the save; the resumed run replays that one step.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._trainer: pl.Trainer | None = None
        self._pending_rng: dict[str, torch.Tensor] | None = None
        self._plateau_metric: float | None = None

    @property
    def state_key(self) -> str:
        return "ResumeWriter"

    def setup(self, trainer, module, stage):
        self._trainer = trainer

    def on_train_epoch_end(self, trainer, module):
        trainer.save_checkpoint(self.path, weights_only=False)

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None:
            return {}
        metric = trainer.callback_metrics.get("val_loss")
        rng = rng_state()
        if trainer.world_size > 1:  # every rank's generators, stacked in rank order
            device = trainer.strategy.root_device
            rng = {k: trainer.strategy.all_gather(v.to(device)).cpu() for k, v in rng.items()}
        else:
            rng = {k: v[None] for k, v in rng.items()}
        return {"rng": rng, "world_size": trainer.world_size, "should_stop": bool(trainer.should_stop),
                "plateau_metric": None if metric is None else float(metric)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        trainer = self._trainer
        assert trainer is not None, "setup() runs before a checkpoint is restored"
        if int(state.get("world_size", 1)) != trainer.world_size:
            raise InputError(self.path, f"saved by {state.get('world_size')} processes; this run has "
                                        f"{trainer.world_size}")
        rank = trainer.global_rank
        self._pending_rng = {k: v[rank] for k, v in state["rng"].items()}
        self._plateau_metric = state.get("plateau_metric")
        trainer.should_stop = bool(state.get("should_stop", False))

    def on_train_start(self, trainer, module):
        # the optimizer and schedulers were restored after on_fit_start: replay the plateau step now
        if self._plateau_metric is None:
            return
        for cfg in trainer.lr_scheduler_configs:
            if cfg.reduce_on_plateau and cfg.interval == "epoch":
                cfg.scheduler.step(self._plateau_metric)
        self._plateau_metric = None

    def on_train_epoch_start(self, trainer, module):
        if self._pending_rng is not None:
            set_rng_state(self._pending_rng)
            self._pending_rng = None


def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def read_history(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """``history.csv`` as columns of floats."""
    with open(Path(run_dir) / HISTORY_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]) for k in rows[0]}


# ----------------------------------------------------------------------------------------------------------
# training


@dataclass
class RunResult:
    """What :func:`train` returns. ``metrics`` are the test-split scores also written to ``metrics.json``."""

    run_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    epochs: int
    best_val_loss: float
    wall_s: float
    n_parameters: int
    history: dict[str, np.ndarray] = field(default_factory=dict)


def _strategy(tc) -> Any:
    if tc.devices <= 1:
        return "auto"
    if tc.strategy != "auto":
        return tc.strategy
    from pytorch_lightning.strategies import DDPStrategy

    # spawned processes work from the CLI, from scripts and from pytest alike ("ddp" re-runs sys.argv)
    return DDPStrategy(start_method="spawn", find_unused_parameters=False)


#: settings that may differ between an interrupted run and its resumption: they change how fast, where or how
#: verbosely the run goes, not what it computes (``threads`` and ``accelerator`` up to floating-point summation
#: order). ``data.path`` may change too (a moved file): the split and the labels' fitted state are compared.
RESUME_FREE_SETTINGS = ("train.progress_bar", "train.threads", "train.accelerator", "data.num_workers",
                        "data.eval_batch_size", "data.path", "version")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _short(value: Any, width: int = 40) -> str:
    text = "missing" if value is _MISSING else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


_MISSING = object()


def config_differences(stored: RunConfig, now: RunConfig) -> list[str]:
    """The settings (``section.name``) in which two filled-in run configurations differ, ignoring
    :data:`RESUME_FREE_SETTINGS`, each as ``"name (<stored> in the run, <now> now)"``."""
    a, b = _flatten(json.loads(stored.to_json())), _flatten(json.loads(now.to_json()))
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or key.startswith(f + ".") for f in RESUME_FREE_SETTINGS):
            continue
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va is _MISSING or vb is _MISSING or va != vb:
            out.append(f"{key} ({_short(va)} in the run, {_short(vb)} now)")
    return out


def _resume_point(out_dir: Path, config: RunConfig, split: dict[str, np.ndarray]) -> Path | None:
    """Where :func:`train` with ``resume=True`` goes on from: the run's ``resume.json``; its ``metrics.json``
    when the run has finished; ``None`` to start a new run (nothing saved yet). Refuses a run that was built
    from another configuration or data."""
    cfg_file = out_dir / CONFIG_FILE
    if not cfg_file.exists():
        log.info("%s: no run to resume here; starting a new run", out_dir)
        return None
    stored = RunConfig.load(cfg_file)
    diffs = config_differences(stored, config)
    if diffs:
        raise InputError(cfg_file, f"cannot resume: this run was built with other settings: {'; '.join(diffs)} "
                                   "(resume with the run's own configuration, or train into a new folder)")
    if stored.data.path != config.data.path:
        log.info("%s: the run was trained on %s; resuming on %s (same split and labels)", out_dir,
                 stored.data.path, config.data.path)
    state = out_dir / RESUME_FILE
    split_file = out_dir / SPLIT_FILE
    if split_file.exists():
        with np.load(split_file, allow_pickle=False) as npz:
            same = all(k in npz and np.array_equal(npz[k], split[k]) for k in split)
        if not same:
            raise InputError(split_file, "cannot resume: these data give another train/val/test split than the "
                                         "run's (a different data set?)")
    elif state.exists():
        raise InputError(out_dir, f"has a saved training state but no {SPLIT_FILE}: cannot resume")
    if (out_dir / METRICS_FILE).exists():
        log.info("%s: this run has already finished (metrics.json); nothing to resume. Train without --resume "
                 "(or into a new folder) to train it again", out_dir)
        return out_dir / METRICS_FILE
    if not state.exists():
        log.warning("%s: no saved training state (the run stopped before its first epoch ended); starting it "
                    "again from scratch", out_dir)
        return None
    epoch = verify_state(state)  # fail here, in one line, rather than inside Lightning
    log.info("%s: resuming from the state saved after epoch %d", out_dir, epoch)
    return state


def _finished_result(out_dir: Path) -> RunResult:
    """The :class:`RunResult` of a finished run, read back from its files."""
    doc = json.loads((out_dir / METRICS_FILE).read_text(encoding="utf-8"))
    s = doc["summary"]
    return RunResult(run_dir=out_dir, metrics=doc["test"], best_epoch=int(s["best_epoch"]), epochs=int(s["epochs"]),
                     best_val_loss=float(s["best_val_loss"]), wall_s=float(s["wall_s"]),
                     n_parameters=int(s["n_parameters"]), history=read_history(out_dir))


def train(task: str, data_path: str | os.PathLike, out_dir: str | os.PathLike, config: RunConfig | None = None,
          *, resume: bool = False) -> RunResult:
    """Train ``task`` (``"redshift"`` or ``"classify"`` on a spectra set, ``"detect"`` on a strain set) on a
    prepared set and write a run folder.

    The usable rows (see :meth:`Task.rows`) are split into train/val/test with ``config.data``; training
    stops when the validation loss has not improved for ``config.train.patience`` epochs (or at
    ``max_epochs`` / ``max_minutes``); the best weights are kept and scored on the test rows.

    resume : continue the run in ``out_dir`` from its last completed epoch instead of starting afresh.
        Every epoch ends by saving the whole training state (``resume.json`` + a safetensors file, see
        :mod:`astrocnn.resume`), so a run killed at any moment -- even ``kill -9`` -- loses at most the epoch
        in progress, and resuming it ends with the same weights, history and scores as an uninterrupted run
        with the same seed (bitwise on one device with a fixed thread count). What happens:

        * the configuration (after what the data fill in) must equal the run's ``config.yaml`` except for
          settings that do not change what is computed (:data:`RESUME_FREE_SETTINGS`), and the data must give
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
    data_path = Path(data_path)
    out_dir = Path(out_dir)
    store = open_prepared(data_path)
    strain = is_strain(store)
    if not strain and store.grid is None:
        raise InputError(data_path, "this prepared set has no wavelength grid (is it a spectra set?)")
    tsk = make_task(config.task)
    rows = tsk.usable_rows(store)
    dc, tc = config.data, config.train
    if dc.max_rows and rows.size > dc.max_rows:
        rows = np.sort(np.random.default_rng([dc.split_seed, 4]).choice(rows, dc.max_rows, replace=False))
    if rows.size < 4:
        raise InputError(data_path, f"only {rows.size} rows are usable for {tsk.describe()}")
    split = split_rows(rows, dc.test_fraction, dc.val_fraction, dc.split_seed)

    # what the data dictate
    # the preprocessing is stored so predict treats new files exactly as the training set was treated
    preprocess_arrays: dict[str, np.ndarray] = {}
    if strain:
        # strain: the whitener config, normalisation and PSD travel with the run (the PSD in the weights file)
        config.input = {"kind": "strain", "length": int(store.shape[1]), "sample_rate": float(store.sample_rate),
                        "detectors": json.loads(store.attrs.get("detectors", "[]")),
                        "preprocessing": store.preprocessing,
                        "whitening_n_fit": int(store.attrs.get("whitening_n_fit", 1)),
                        "whitening_fit": str(store.attrs.get("whitening_fit", ""))}
        preprocess_arrays = {"whitening_psd": np.asarray(store.whitening_psd, dtype=np.float64)}
        config.data.inputs = ["strain"]
        config.model.in_channels = int(store.shape[0])
        config.model.length = int(store.shape[1])
    else:
        config.input = {"grid": json.loads(store.grid.to_json()), "length": int(store.grid.n),
                        "preprocess": json.loads(store.attrs.get("preprocess", "{}")),
                        "class_names": list(store.class_names)}
        config.model.in_channels = len(dc.inputs)
        config.model.length = int(store.grid.n)
    config.model = type(config.model).from_dict(config.model.to_dict())  # re-validate
    config.data.path = str(data_path)
    config.version = __version__
    if strain:  # labels only: never read the strain of the whole training side
        fit_targets = tsk.targets({"target": store.target[split["train"]], "snr": store.snr[split["train"]]}, ())
    else:
        fit_targets = tsk.targets(store.read(split["train"], fields=()), store.class_names)
    tsk.fit(fit_targets)
    config.task = tsk.config

    resume_from: Path | None = None
    resumed_after: int | None = None
    if resume:
        resume_from = _resume_point(out_dir, config, split)
        if resume_from == out_dir / METRICS_FILE:
            store.close()
            return _finished_result(out_dir)
        if resume_from is not None:
            resumed_after = int(read_state_header(resume_from)["epoch"])

    # with strategy="ddp" this function runs again in every re-launched process: only rank 0 writes
    writer_rank = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    if writer_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
        if resume_from is None:
            # a new run: nothing of an earlier run in this folder may survive, its resume state least of all,
            # and it goes before the new config.yaml, which a later --resume would otherwise pair with it
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

    pl.seed_everything(tc.seed, workers=True, verbose=False)
    network = build_network(config, tsk)
    n_params = sum(p.numel() for p in network.parameters())
    log.info("%s: %d train / %d val / %d test rows; %s; %d parameters", data_path.name, split["train"].size,
             split["val"].size, split["test"].size, tsk.describe(), n_params)

    module = TaskModule(network, tsk, config, str(data_path), split)
    module.preprocess_arrays = preprocess_arrays
    writer = RunWriter(out_dir)
    from pytorch_lightning.callbacks import EarlyStopping

    callbacks = [writer, EarlyStopping(monitor="val_loss", mode="min", patience=tc.patience, min_delta=tc.min_delta,
                                       check_on_train_epoch_end=False),
                 ResumeWriter(out_dir / RESUME_FILE)]
    threads_before = torch.get_num_threads()  # fit sets this process's thread count; give it back after
    if tc.threads:
        torch.set_num_threads(tc.threads)
    trainer = pl.Trainer(
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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*train_dataloader.*num_workers.*")
        # Lightning's own use of a deprecated torch API (pytorch_lightning/utilities/_pytree.py)
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        try:
            trainer.fit(module, ckpt_path=str(resume_from) if resume_from is not None else None)
        finally:
            torch.set_num_threads(threads_before)
    if trainer.global_rank != 0:
        store.close()
        return None  # type: ignore[return-value]  # a re-launched "ddp" process; rank 0 reports

    if not (out_dir / "best.safetensors").exists():
        raise RuntimeError(f"{out_dir}: training ended before the first validation; no weights were written")
    history = read_history(out_dir)
    best_network, _, _ = load_run(out_dir, "best")
    test_rows = split["test"] if split["test"].size else split["val"]
    pred, target = predict_rows(best_network, tsk, config, store, test_rows)
    metrics = tsk.metrics(pred, target, full=True)
    best_i = int(np.nanargmin(history["val_loss"]))
    summary = {
        "task": tsk.describe(),
        "data": str(data_path),
        "split": "test" if split["test"].size else "val",
        "n_train": int(split["train"].size), "n_val": int(split["val"].size), "n_test": int(split["test"].size),
        "epochs": int(len(history["epoch"])), "best_epoch": int(history["epoch"][best_i]),
        "best_val_loss": float(history["val_loss"][best_i]),
        "wall_s": round(time.time() - t0, 1), "n_parameters": int(n_params),
        "devices": tc.devices,
    }
    if resumed_after is not None:
        summary["resumed_after_epoch"] = resumed_after  # wall_s then counts this process only
    _write_predictions(out_dir / "test_predictions.csv", store.ids[test_rows], test_rows, pred, target, tsk)
    _run_plots(out_dir, history, tsk, pred, target)
    # last: its presence marks a finished run (see ``resume`` above)
    write_text_atomic(out_dir / METRICS_FILE, json.dumps({"summary": summary, "test": metrics}, indent=2) + "\n")
    log.info("%s: best epoch %d of %d; test %s = %.4f", out_dir, summary["best_epoch"], summary["epochs"],
             tsk.monitor, metrics.get(tsk.monitor, float("nan")))
    store.close()
    return RunResult(run_dir=out_dir, metrics=metrics, best_epoch=summary["best_epoch"], epochs=summary["epochs"],
                     best_val_loss=summary["best_val_loss"], wall_s=summary["wall_s"], n_parameters=n_params,
                     history=history)


def _run_plots(out_dir: Path, history, task: Task, pred, target) -> None:
    from . import plots

    try:
        plots.plot_loss_curves(history, out_dir / "loss.png")
        task.plots(pred, target, out_dir)
    except Exception as exc:  # a figure must never cost a finished training run
        warnings.warn(f"{out_dir}: plots failed ({exc})", RuntimeWarning)


def _write_predictions(path: Path, ids, rows, pred, target, task: Task) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if task.name == "detect":
        t = np.asarray(target, np.float64).reshape(-1, 2)
        w.writerow(["row", "id", "target", "snr", "score", "logit"])
        for i in range(len(rows)):
            w.writerow([int(rows[i]), ids[i], int(t[i, 0]), "" if not np.isfinite(t[i, 1]) else f"{t[i, 1]:.3f}",
                        f"{pred['score'][i]:.6g}", f"{pred['logit'][i]:.6g}"])
    elif task.name == "redshift":
        z_true = np.expm1(np.asarray(target, np.float64))
        cols = ["row", "id", "z_true", "z_pred"] + (["z_conf"] if "z_conf" in pred else [])
        w.writerow(cols)
        for i in range(len(rows)):
            extra = [f"{pred['z_conf'][i]:.4f}"] if "z_conf" in pred else []
            w.writerow([int(rows[i]), ids[i], f"{z_true[i]:.5f}", f"{pred['z'][i]:.5f}", *extra])
    else:
        names = task.class_names
        w.writerow(["row", "id", "cls_true", "cls_pred", *[f"p_{c}" for c in names]])
        for i in range(len(rows)):
            w.writerow([int(rows[i]), ids[i], names[int(target[i])], names[int(pred["cls"][i])],
                        *[f"{p:.4f}" for p in pred["prob"][i]]])
    write_text_atomic(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------------------
# inference


def _run_network(network: Network, task: Task, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Decoded predictions for inputs ``x`` (n, channels, n_pix), in batches, in inference mode."""
    parts: list[dict[str, torch.Tensor]] = []
    network.eval()
    with torch.inference_mode():
        for lo in range(0, x.shape[0], batch_size):
            parts.append(task.decode(network(torch.from_numpy(x[lo:lo + batch_size]))))
    if not parts:
        return {}
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def predict_rows(network: Network, task: Task, config: RunConfig, store: AnySet, rows: np.ndarray,
                 batch_size: int | None = None, with_target: bool = True):
    """Predictions for ``rows`` of ``store`` (read in sorted chunks). Returns ``(pred, target)``."""
    rows = np.asarray(rows, dtype=np.int64)
    bs = batch_size or max(256, config.data.eval_batch_size)
    chunk = 4 * bs
    preds, targets = [], []
    for lo in range(0, rows.size, chunk):
        batch, x = read_inputs(store, rows[lo:lo + chunk], config.data.inputs)
        preds.append(_run_network(network, task, x, bs))
        if with_target:
            targets.append(task.targets(batch, class_names_of(store)))
    if not preds:
        return {}, np.zeros(0)
    pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
    return pred, (np.concatenate(targets) if with_target else None)


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
    store = open_prepared(data_path)
    check_compatible(config, store)
    rows = task.usable_rows(store)
    if split is not None:
        run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
        with np.load(run_dir / SPLIT_FILE, allow_pickle=False) as npz:
            if split not in npz:
                raise InputError(run_dir / SPLIT_FILE, f"no split {split!r}; have {list(npz.keys())}")
            rows = npz[split]
        if rows.size and rows.max() >= len(store):
            raise InputError(data_path, f"split {split!r} of {run} refers to rows this set does not have")
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


def predict(run: str | os.PathLike, data_path: str | os.PathLike, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Predictions for every row of a prepared set: ``id``, ``row`` and the task's outputs
    (redshift: ``z``, ``z_conf``; classify: ``cls`` (index), ``class`` (name), ``prob`` (n, n_classes);
    detect, on a strain set: ``score`` (sigmoid of the logit) and ``logit``)."""
    network, task, config = load_run(run)
    store = open_prepared(data_path)
    check_compatible(config, store)
    rows = np.arange(len(store))
    pred, _ = predict_rows(network, task, config, store, rows, batch_size=batch_size, with_target=False)
    out = {"id": store.ids, "row": rows, **pred}
    store.close()
    return _add_class_names(out, task)


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
        raise InputError(None, f"spectra are on grid {_grid_text(json.loads(grid.to_json()))}, "
                               f"the model was trained on {_grid_text(config.input['grid'])}")
    if ivar is not None:
        ivar = np.atleast_2d(np.asarray(ivar, dtype=np.float32))
        if ivar.shape != flux.shape:
            raise InputError(None, f"ivar has shape {ivar.shape}, flux has {flux.shape}")
    x = make_inputs(flux, ivar, config.data.inputs)
    return _add_class_names(_run_network(network, task, x, batch_size), task)


def _add_class_names(out: dict[str, np.ndarray], task: Task) -> dict[str, np.ndarray]:
    if task.name == "classify" and "cls" in out:
        out["class"] = np.asarray(task.class_names, dtype=object)[out["cls"]]
    return out
