"""The Lightning module that trains any task: network + task + data, with Adam and the learning-rate schedules.

Trainer layer. It knows the task only through :class:`~astrocnn.tasks.base.Task`: the task gives the loss,
decodes outputs and scores them; the data come through :mod:`astrocnn.train.loader`.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch

from astrocnn.core.config import RunConfig
from astrocnn.models.cnn import Network
from astrocnn.tasks import Task, open_dataset
from astrocnn.train.loader import make_loader


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
        #: arrays the inputs were prepared with, saved with the weights (see :func:`~astrocnn.train.runs.save_weights`)
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
        return make_loader(open_dataset(self.data_path), self.split[part], self.task, self.run_config.data,
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
        scores = flat_scores(self.task.metrics(cat, target, full=False))
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


def flat_scores(m: Mapping[str, Any]) -> dict[str, float]:
    """Scalar scores for the history: nested per-class dicts become ``name_class``; matrices are dropped."""
    out: dict[str, float] = {}
    for k, v in m.items():
        if isinstance(v, (int, float, np.integer, np.floating)):
            out[k] = float(v)
        elif isinstance(v, dict) and k in ("completeness", "purity"):
            out.update({f"{k}_{c}": float(x) for c, x in v.items()})
    return out
