"""Figures every task draws: loss curves, confusion matrices, ROC curves; and :func:`save`, which all figures use.

Core layer. Every function takes arrays (never files or models) and writes a PNG atomically. The domains
draw their own figures on top of these (:mod:`astrocnn.spectra.plots`, :mod:`astrocnn.gw.plots`).
"""
from __future__ import annotations

import os
import sys
from typing import Sequence

import matplotlib

# Figures go to files, which Agg draws without a display. A backend already chosen is left alone: a
# notebook's inline backend (ipykernel names it in MPLBACKEND) or whatever the user's own pyplot runs on;
# forcing Agg there would stop the notebook's own figures from showing.
if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from astrocnn.core.io import atomic_path  # noqa: E402


def save(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


def plot_loss_curves(history: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """Training and validation loss per epoch (log scale), with the learning rate on a second axis.

    history : columns ``epoch``, ``train_loss``, ``val_loss`` and optionally ``lr``.
    """
    epoch = np.asarray(history["epoch"], dtype=float) + 1
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        if key in history:
            ax.plot(epoch, history[key], marker="o", ms=3, label=label)
    if "val_loss" in history and np.isfinite(history["val_loss"]).any():
        best = int(np.nanargmin(history["val_loss"]))
        ax.axvline(epoch[best], color="0.5", ls=":", lw=1, label="best")
    vals = np.concatenate([np.asarray(history[k], float) for k in ("train_loss", "val_loss") if k in history])
    if np.all(vals[np.isfinite(vals)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if "lr" in history:
        ax2 = ax.twinx()
        ax2.plot(epoch, history["lr"], color="0.6", lw=0.8, ls="--")
        ax2.set_ylabel("learning rate", color="0.5")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | os.PathLike) -> None:
    """Confusion matrix (rows true, columns predicted) with counts and row fractions."""
    cm = np.asarray(matrix, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.4 * k + 2.2, 1.2 * k + 1.6))
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{int(cm[i, j])}\n{frac[i, j]:.1%}", ha="center", va="center", fontsize=9,
                    color="white" if frac[i, j] > 0.6 else "black")
    ax.set_xticks(range(k), class_names)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = cm.sum()
    ax.set_title(f"accuracy {np.trace(cm) / total:.2%} (n = {int(total)})" if total else "no data", fontsize=9)
    fig.tight_layout()
    save(fig, path)


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, path: str | os.PathLike, auc: float | None = None) -> None:
    """ROC curve of a detector (log false-positive axis, where a search operates), with the chance line."""
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    label = "CNN" if auc is None else f"AUC = {auc:.3f}"
    ax.plot(np.clip(fpr, 1e-4, 1), tpr, color="tab:blue", lw=1.4, label=label, drawstyle="steps-post")
    grid = np.logspace(-4, 0, 50)
    ax.plot(grid, grid, color="0.6", lw=0.8, ls="--", label="chance")
    ax.set_xscale("log")
    ax.set_xlim(max(1e-4, 0.5 / max(1, fpr.size)), 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", fontsize=8)
    save(fig, path)
