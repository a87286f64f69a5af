"""Quasar redshifts from spectra: the paper's MSE head on log(1+z), or our binned head.

Tasks layer (see :mod:`astrocnn.tasks.base` for the interface).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from astrocnn.core.config import TaskConfig
from astrocnn.core.metrics import C_KMS, dv_kms, redshift_metrics
from astrocnn.models.heads import BinnedRegressionHead, ScalarHead
from astrocnn.tasks.spectral import SpectraTask, class_lookup


class RedshiftBins:
    """The binned log(1+z) head's arithmetic: ``n_bins`` bins uniform in ``y = log(1 + z)`` between
    ``log(1 + z_min)`` and ``log(1 + z_max)``; a cross-entropy smeared over neighbouring bins plus the offset of
    the target inside the bin (see :class:`~astrocnn.core.config.TaskConfig`), and the decoding of both
    outputs into ``z`` and a confidence ``z_conf``. Shared by every task with a binned redshift head."""

    def __init__(self, config: TaskConfig):
        self.config = config
        self.n = config.n_bins
        self.y_lo = math.log1p(config.z_min)
        self.y_hi = math.log1p(config.z_max)
        self.width = (self.y_hi - self.y_lo) / config.n_bins

    def loss(self, log_prob: torch.Tensor, offset: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-sample loss for targets ``y = log(1 + z)`` (batch,)."""
        n = self.n
        pos = ((target - self.y_lo) / self.width).clamp(0.0, n - 1e-4)  # position in bin units
        true_bin = pos.long()
        centres = torch.arange(n, device=target.device, dtype=target.dtype) + 0.5
        dist = pos[:, None] - centres[None, :]  # offset of the target from every bin centre, in bins
        sigma = self.config.label_sigma
        if sigma > 0:
            soft = torch.exp(-0.5 * (dist / sigma) ** 2)
            soft = soft / soft.sum(dim=1, keepdim=True)
            ce = -(soft * log_prob).sum(dim=1)
        else:
            ce = F.nll_loss(log_prob, true_bin, reduction="none")
        near = (torch.arange(n, device=target.device)[None, :] - true_bin[:, None]).abs() <= self.config.offset_window
        off = F.smooth_l1_loss(offset, dist, reduction="none", beta=0.5) * near
        return ce + self.config.offset_weight * off.sum(dim=1) / near.sum(dim=1)

    def decode(self, log_prob: torch.Tensor, offset: torch.Tensor) -> dict[str, torch.Tensor]:
        """``z`` (float64) at the most probable bin plus its offset; ``z_conf``, the probability within +-2 bins."""
        prob = log_prob.exp()
        best = prob.argmax(dim=1)
        off = offset.gather(1, best[:, None])[:, 0].clamp(-3.0, 3.0)
        y = self.y_lo + (best.double() + 0.5 + off.double()) * self.width
        # probability within +-2 bins of the answer: a confidence the catalogue user can cut on
        cum = torch.nn.functional.pad(prob.cumsum(dim=1), (1, 0))
        lo = (best - 2).clamp(min=0)
        hi = (best + 3).clamp(max=self.n)
        conf = cum.gather(1, hi[:, None])[:, 0] - cum.gather(1, lo[:, None])[:, 0]
        return {"z": torch.expm1(y), "z_conf": conf}


class RedshiftTask(SpectraTask):
    """Redshift regression on log(1+z), with the paper's MSE head or our binned head (see :class:`TaskConfig`).

    Targets are ``y = log(1 + z)``; the MSE head learns ``(y - mean) / std`` with mean and std of the
    training rows (stored in ``config.state``); the binned head classifies ``y`` into ``n_bins`` bins
    between ``log(1 + z_min)`` and ``log(1 + z_max)`` and regresses the offset inside the bin. ``dv`` is
    ``c dz / (1 + z)`` ~ ``c dy``, so a bin width in ``y`` is a velocity width: 500 bins up to z = 6 are
    ~1170 km/s wide.
    """

    name = "redshift"
    monitor = "frac_dv_lt_6000"

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.bins = RedshiftBins(config)

    @property
    def bin_width_kms(self) -> float:
        return C_KMS * self.bins.width

    def rows(self, z, cls, class_names):
        if z is None:
            return np.zeros(0, dtype=np.int64)
        ok = np.isfinite(z) & (z > -1)
        if self.config.classes is not None:
            if cls is None:
                return np.zeros(0, dtype=np.int64)
            ok &= class_lookup(self.config.classes, class_names)[cls.astype(np.int64) + 1] >= 0
        return np.flatnonzero(ok)

    def fit(self, targets):
        y = np.asarray(targets, dtype=np.float64)
        self.config.state = {"y_mean": float(y.mean()), "y_std": float(max(y.std(), 1e-6))}
        return self

    def targets(self, batch, class_names):
        return np.log1p(batch["z"].astype(np.float64)).astype(np.float32)

    def make_head(self, features):
        if self.config.head == "mse":
            return ScalarHead(features)
        return BinnedRegressionHead(features, self.config.n_bins)

    def _standardise(self) -> tuple[float, float]:
        s = self.config.state
        if "y_mean" not in s:
            raise RuntimeError("the redshift task has not been fitted: target statistics are missing")
        return s["y_mean"], s["y_std"]

    def loss(self, output, target):
        if self.config.head == "mse":
            mean, std = self._standardise()
            return (output - (target - mean) / std) ** 2
        log_prob, offset = output
        return self.bins.loss(log_prob, offset, target)

    def decode(self, output):
        if self.config.head == "mse":
            mean, std = self._standardise()
            y = output.double() * std + mean
            return {"z": torch.expm1(y)}
        log_prob, offset = output
        return self.bins.decode(log_prob, offset)

    def metrics(self, pred, target, full=True):
        z_true = np.expm1(np.asarray(target, dtype=np.float64))
        m = redshift_metrics(pred["z"], z_true, bins=self.config.z_bins)
        if not full:
            m.pop("per_bin")
        return m

    def plots(self, pred, target, out_dir):
        from astrocnn.spectra import plots  # matplotlib: only when drawing

        out_dir = Path(out_dir)
        z_true = np.expm1(np.asarray(target, dtype=np.float64))
        z_pred = np.asarray(pred["z"], dtype=np.float64)
        plots.plot_z_pred_vs_true(z_true, z_pred, out_dir / "z_pred_vs_true.png")
        plots.plot_dv_hist(dv_kms(z_pred, z_true), out_dir / "dv_hist.png")
        return [out_dir / "z_pred_vs_true.png", out_dir / "dv_hist.png"]

    def test_table(self, rows, ids, pred, target):
        z_true = np.expm1(np.asarray(target, np.float64))
        columns = ["row", "id", "z_true", "z_pred"] + (["z_conf"] if "z_conf" in pred else [])
        table = []
        for i in range(len(rows)):
            extra = [f"{pred['z_conf'][i]:.4f}"] if "z_conf" in pred else []
            table.append([int(rows[i]), ids[i], f"{z_true[i]:.5f}", f"{pred['z'][i]:.5f}", *extra])
        return columns, table

    def prediction_columns(self):
        return ["id", "source", "z_pred", "z_conf", "error"]

    def prediction_rows(self, ids, sources, pred):
        conf = pred.get("z_conf")
        return [[ids[i], sources[i], f"{pred['z'][i]:.5f}", "" if conf is None else f"{conf[i]:.4f}", ""]
                for i in range(len(ids))]

    def describe(self):
        if self.config.head == "mse":
            return "redshift (paper's MSE head on standardised log(1+z))"
        return f"redshift ({self.config.n_bins} log(1+z) bins of {self.bin_width_kms:.0f} km/s + in-bin offset)"
