"""What differs between learning problems: which rows are used, the targets, the head, the loss, how
outputs become predictions, and how predictions are scored.

The trainer (:mod:`astrocnn.train`) knows nothing beyond this interface:

- :meth:`Task.rows` : usable row indices of a prepared set;
- :meth:`Task.fit` : learn target statistics from the training rows (kept in ``config.state``);
- :meth:`Task.targets` : numpy labels of a batch -> the target array the loss takes;
- :meth:`Task.make_head` : the output head for a feature vector of a given size;
- :meth:`Task.loss` : per-sample loss of a network output against targets;
- :meth:`Task.decode` : network output -> named prediction tensors (``z``, ``cls``, ``prob`` ...);
- :meth:`Task.metrics` : predictions and targets -> JSON-ready scores; ``monitor`` names the headline one;
- :meth:`Task.plots` : figures of predictions against targets.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .config import TaskConfig
from .metrics import classification_metrics, redshift_metrics
from .models.heads import BinnedRegressionHead, ClassificationHead, RegressionHead


class Task:
    """Base class; see the module docstring for the interface."""

    name: str = ""
    #: headline validation score and whether larger is better
    monitor: str = ""
    monitor_mode: str = "max"

    def __init__(self, config: TaskConfig):
        self.config = config

    # -- data ---------------------------------------------------------------------------------------------
    def rows(self, z: np.ndarray | None, cls: np.ndarray | None, class_names: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def fit(self, targets: np.ndarray) -> "Task":
        """Learn what the task needs from the training targets (default: nothing). Returns self."""
        return self

    def targets(self, batch: Mapping[str, np.ndarray], class_names: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def usable_rows(self, store) -> np.ndarray:
        """Usable rows of a prepared set (spectra tasks: :meth:`rows` of its ``z``, ``cls`` and class names)."""
        if getattr(store, "kind", "spectra") != "spectra" or not hasattr(store, "z"):
            from .errors import InputError

            raise InputError(store.path, f"the {self.name} task needs a prepared spectra set, not a strain set")
        return self.rows(store.z, store.cls, store.class_names)

    # -- network ------------------------------------------------------------------------------------------
    def make_head(self, features: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, output: Any, target: Tensor) -> Tensor:
        """Per-sample loss, shape (batch,)."""
        raise NotImplementedError

    def decode(self, output: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    # -- scores -------------------------------------------------------------------------------------------
    def metrics(self, pred: Mapping[str, np.ndarray], target: np.ndarray, full: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def plots(self, pred: Mapping[str, np.ndarray], target: np.ndarray, out_dir: str | os.PathLike) -> list[Path]:
        return []

    def describe(self) -> str:
        return self.name


def _class_lookup(wanted: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Map a set's class indices (+1 so -1 'unknown' maps to slot 0) to indices into ``wanted`` (-1 = not used)."""
    lut = np.full(len(class_names) + 1, -1, dtype=np.int64)
    for i, name in enumerate(class_names):
        if name in wanted:
            lut[i + 1] = list(wanted).index(name)
    return lut


class RedshiftTask(Task):
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
        self.y_lo = math.log1p(config.z_min)
        self.y_hi = math.log1p(config.z_max)
        self.width = (self.y_hi - self.y_lo) / config.n_bins

    @property
    def bin_width_kms(self) -> float:
        return 299792.458 * self.width

    def rows(self, z, cls, class_names):
        if z is None:
            return np.zeros(0, dtype=np.int64)
        ok = np.isfinite(z) & (z > -1)
        if self.config.classes is not None:
            if cls is None:
                return np.zeros(0, dtype=np.int64)
            ok &= _class_lookup(self.config.classes, class_names)[cls.astype(np.int64) + 1] >= 0
        return np.flatnonzero(ok)

    def fit(self, targets):
        y = np.asarray(targets, dtype=np.float64)
        self.config.state = {"y_mean": float(y.mean()), "y_std": float(max(y.std(), 1e-6))}
        return self

    def targets(self, batch, class_names):
        return np.log1p(batch["z"].astype(np.float64)).astype(np.float32)

    def make_head(self, features):
        if self.config.head == "mse":
            return RegressionHead(features)
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
        n = self.config.n_bins
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

    def decode(self, output):
        if self.config.head == "mse":
            mean, std = self._standardise()
            y = output.double() * std + mean
            return {"z": torch.expm1(y)}
        log_prob, offset = output
        prob = log_prob.exp()
        best = prob.argmax(dim=1)
        off = offset.gather(1, best[:, None])[:, 0].clamp(-3.0, 3.0)
        y = self.y_lo + (best.double() + 0.5 + off.double()) * self.width
        # probability within +-2 bins of the answer: a confidence the catalogue user can cut on
        cum = torch.nn.functional.pad(prob.cumsum(dim=1), (1, 0))
        lo = (best - 2).clamp(min=0)
        hi = (best + 3).clamp(max=self.config.n_bins)
        conf = cum.gather(1, hi[:, None])[:, 0] - cum.gather(1, lo[:, None])[:, 0]
        return {"z": torch.expm1(y), "z_conf": conf}

    def metrics(self, pred, target, full=True):
        z_true = np.expm1(np.asarray(target, dtype=np.float64))
        m = redshift_metrics(pred["z"], z_true, bins=self.config.z_bins)
        if not full:
            m.pop("per_bin")
        return m

    def plots(self, pred, target, out_dir):
        from . import plots
        from .metrics import dv_kms

        out_dir = Path(out_dir)
        z_true = np.expm1(np.asarray(target, dtype=np.float64))
        z_pred = np.asarray(pred["z"], dtype=np.float64)
        plots.plot_z_pred_vs_true(z_true, z_pred, out_dir / "z_pred_vs_true.png")
        plots.plot_dv_hist(dv_kms(z_pred, z_true), out_dir / "dv_hist.png")
        return [out_dir / "z_pred_vs_true.png", out_dir / "dv_hist.png"]

    def describe(self):
        if self.config.head == "mse":
            return "redshift (paper's MSE head on standardised log(1+z))"
        return f"redshift ({self.config.n_bins} log(1+z) bins of {self.bin_width_kms:.0f} km/s + in-bin offset)"


class ClassifyTask(Task):
    """Classification into ``config.classes`` (rows of other classes are left out); NLL on log-softmax."""

    name = "classify"
    monitor = "accuracy"

    @property
    def class_names(self) -> list[str]:
        return list(self.config.classes or [])

    def rows(self, z, cls, class_names):
        if cls is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(_class_lookup(self.class_names, class_names)[cls.astype(np.int64) + 1] >= 0)

    def targets(self, batch, class_names):
        return _class_lookup(self.class_names, class_names)[batch["cls"].astype(np.int64) + 1]

    def make_head(self, features):
        return ClassificationHead(features, len(self.class_names))

    def loss(self, output, target):
        return F.nll_loss(output, target.long(), reduction="none")

    def decode(self, output):
        prob = output.exp()
        return {"cls": prob.argmax(dim=1), "prob": prob}

    def metrics(self, pred, target, full=True):
        return classification_metrics(np.asarray(target), np.asarray(pred["cls"]), self.class_names)

    def plots(self, pred, target, out_dir):
        from . import plots
        from .metrics import confusion_matrix

        path = Path(out_dir) / "confusion.png"
        cm = confusion_matrix(np.asarray(target), np.asarray(pred["cls"]), len(self.class_names))
        plots.plot_confusion(cm, self.class_names, path)
        return [path]

    def describe(self):
        return f"classify ({', '.join(self.class_names)})"


def _snr_bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}"


def detection_metrics(label: np.ndarray, score: np.ndarray, snr: np.ndarray | None = None,
                      snr_bins: Sequence[float] = (), n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Scores of a detector: ``n``, ``n_signal``, ``n_noise``, ``roc_auc`` (NaN without both classes), with
    ``n_boot`` > 0 its stratified bootstrap 95% interval ``roc_auc_low`` / ``roc_auc_high``, ``tpr_at_fpr_0.01``
    and, where ``snr`` of the positives is known, ``per_snr_bin``: for each bin ``[lo, hi)`` of
    ``snr_bins`` (the last open-ended) the AUC of the positives in the bin against ALL negatives.
    """
    from .gw.roc import bootstrap_auc, roc_auc, tpr_at_fpr

    y = np.asarray(label).astype(np.int64) == 1
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    out: dict[str, Any] = {"n": int(y.size), "n_signal": n_pos, "n_noise": n_neg}
    both = n_pos > 0 and n_neg > 0
    out["roc_auc"] = roc_auc(y, s) if both else float("nan")
    if n_boot > 0:
        b = bootstrap_auc(y, s, n_boot=n_boot, seed=seed) if both else {"low": float("nan"), "high": float("nan")}
        out["roc_auc_low"], out["roc_auc_high"] = b["low"], b["high"]
    out["tpr_at_fpr_0.01"] = tpr_at_fpr(y, s, 0.01) if both else float("nan")
    if snr is not None and len(snr_bins) and n_neg > 0:
        snr = np.asarray(snr, dtype=np.float64)
        edges = list(snr_bins) + [math.inf]
        per = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            in_bin = y & (snr >= lo) & (snr < hi)
            k = int(in_bin.sum())
            if k == 0:
                continue
            keep = in_bin | ~y
            per.append({"snr": _snr_bin_label(lo, hi), "snr_lo": lo, "snr_hi": hi if math.isfinite(hi) else None,
                        "n_signal": k, "roc_auc": roc_auc(y[keep], s[keep])})
        if per:
            out["per_snr_bin"] = per
    return out


class DetectTask(Task):
    """Gravitational-wave detection on prepared strain sets (:class:`~astrocnn.gw.store.StrainSet`).

    One output, a logit, trained with binary cross-entropy on the label (1 signal, 0 noise only; rows with an
    unknown label, -1, are left out). :meth:`decode` gives ``score`` = sigmoid(logit) and ``logit``. The
    target array the trainer passes around is (n, 2) float32: the label and the injected network SNR (NaN
    when unknown), so the metrics can be given per SNR bin; only the label enters the loss.
    """

    name = "detect"
    monitor = "roc_auc"

    def rows(self, z, cls, class_names):
        raise NotImplementedError("the detect task takes rows from a strain set: use usable_rows(store)")

    def usable_rows(self, store) -> np.ndarray:
        target = getattr(store, "target", None)
        if target is None or not hasattr(store, "whitening_psd"):
            from .errors import InputError

            raise InputError(store.path, "the detect task needs a prepared strain set (astrocnn.gw.store.prepare_g2net)")
        return np.flatnonzero(np.asarray(target) >= 0)

    def targets(self, batch, class_names):
        label = np.asarray(batch["target"], dtype=np.float32)
        snr = batch.get("snr")
        snr = np.full(label.shape, np.nan, np.float32) if snr is None else np.asarray(snr, dtype=np.float32)
        return np.stack([label, snr], axis=-1)

    def make_head(self, features):
        return RegressionHead(features)

    def loss(self, output, target):
        return F.binary_cross_entropy_with_logits(output, target[..., 0].to(output.dtype), reduction="none")

    def decode(self, output):
        return {"score": torch.sigmoid(output), "logit": output}

    def metrics(self, pred, target, full=True):
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        return detection_metrics(target[:, 0], np.asarray(pred["logit"]), target[:, 1],
                                 snr_bins=self.config.snr_bins if full else (),
                                 n_boot=self.config.n_boot if full else 0)

    def plots(self, pred, target, out_dir):
        from . import plots
        from .gw.roc import roc_curve

        out_dir = Path(out_dir)
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        y = target[:, 0] == 1
        logit = np.asarray(pred["logit"], dtype=np.float64)
        paths = []
        if y.any() and (~y).any():
            fpr, tpr, _ = roc_curve(y, logit)
            plots.plot_roc(fpr, tpr, out_dir / "roc.png", auc=detection_metrics(y, logit, n_boot=0)["roc_auc"])
            paths.append(out_dir / "roc.png")
            if np.isfinite(target[y, 1]).any():
                plots.plot_efficiency_vs_snr(target[y, 1], logit[y], logit[~y], out_dir / "efficiency_vs_snr.png")
                paths.append(out_dir / "efficiency_vs_snr.png")
        return paths

    def describe(self):
        return "detect (gravitational-wave signal vs noise; one logit, binary cross-entropy)"


_TASKS = {"redshift": RedshiftTask, "classify": ClassifyTask, "detect": DetectTask}


def make_task(config: TaskConfig) -> Task:
    """The task object for ``config.name``."""
    try:
        return _TASKS[config.name](config)
    except KeyError:
        raise ValueError(f"unknown task {config.name!r}; known: {sorted(_TASKS)}") from None
