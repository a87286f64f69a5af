"""What happens at the end of every epoch: the run folder's files, and the resumable training state.

Trainer layer. :class:`RunWriter` writes ``history.csv`` and the ``last`` / ``best`` weights;
:class:`ResumeWriter` saves the whole training state (:mod:`astrocnn.train.resume`) after them.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from astrocnn.core.errors import InputError
from astrocnn.train.resume import rng_state, set_rng_state
from astrocnn.train.runs import HISTORY_FILE, save_weights, write_history, write_weights

log = logging.getLogger(__name__)


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
            write_history(self.run_dir / HISTORY_FILE, self.rows)
            save_weights(module.network, module.run_config, self.run_dir / "last.safetensors", module.preprocess_arrays)
            if rec["val_loss"] < self.best:
                self.best = rec["val_loss"]
                self.best_weights = {k: v.detach().cpu().clone() for k, v in module.network.state_dict().items()}
                write_weights(self.best_weights, module.run_config, self.run_dir / "best.safetensors",
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
            write_history(self.run_dir / HISTORY_FILE, self.rows)
        save_weights(module.network, module.run_config, self.run_dir / "last.safetensors", module.preprocess_arrays)
        if self.best_weights:
            write_weights(self.best_weights, module.run_config, self.run_dir / "best.safetensors",
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
      :func:`astrocnn.train.loader.make_loader`);
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
