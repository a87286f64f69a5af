"""Figures. Every function takes arrays (never files or models) and writes a PNG atomically."""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .io import atomic_path  # noqa: E402
from .spectra.lines import PLOT_LINES  # noqa: E402


def save(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Save ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    plt.close(fig)


def mark_lines(ax, z: float, cls: str | None, wave_range: tuple[float, float]) -> None:
    """Draw the main lines of class ``cls`` (default: quasar lines) at redshift ``z``."""
    if not np.isfinite(z):
        return
    lines = PLOT_LINES.get(cls or "qso", PLOT_LINES["qso"])
    lo, hi = wave_range
    ymax = ax.get_ylim()[1]
    for name, rest in lines.items():
        obs = rest * (1 + z)
        if lo <= obs <= hi:
            ax.axvline(obs, color="tab:red", lw=0.7, alpha=0.6, ls="--")
            ax.text(obs, ymax, name, rotation=90, va="top", ha="right", fontsize=7, color="tab:red")


def plot_spectra(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None,
    titles: Sequence[str],
    z: Sequence[float],
    cls: Sequence[str | None],
    path: str | os.PathLike,
    smooth: int = 5,
) -> None:
    """One panel per spectrum with its lines marked.

    wave : (n_pix,) Angstrom; flux, ivar : (n_spec, n_pix); pixels with ivar == 0 are not drawn.
    ``smooth`` > 1 overlays a boxcar-smoothed curve so low-S/N features stay visible.
    """
    flux = np.atleast_2d(flux)
    n = flux.shape[0]
    fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        f = flux[i].astype(float)
        good = np.ones_like(f, bool) if ivar is None else np.atleast_2d(ivar)[i] > 0
        shown = np.where(good, f, np.nan)
        ax.plot(wave, shown, lw=0.4, color="0.6")
        if smooth > 1:
            k = np.ones(smooth) / smooth
            w = np.convolve(good.astype(float), k, "same")
            s = np.convolve(np.where(good, f, 0.0), k, "same") / np.where(w > 0, w, np.nan)
            ax.plot(wave, np.where(good, s, np.nan), lw=0.8, color="k")
        if np.isfinite(shown).any():
            lo, hi = np.nanpercentile(shown, [0.5, 99.5])
            pad = 0.15 * (hi - lo + 1e-9)
            ax.set_ylim(lo - pad, hi + 2 * pad)
        mark_lines(ax, float(z[i]), cls[i], (float(wave[0]), float(wave[-1])))
        ax.set_title(titles[i], fontsize=9, loc="left")
        ax.set_xlim(wave[0], wave[-1])
        ax.set_ylabel("norm. flux")
    axes[-1, 0].set_xlabel("observed vacuum wavelength [A]")
    fig.tight_layout()
    save(fig, path)


# --- training and evaluation figures ---------------------------------------------------------------------


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


def plot_z_pred_vs_true(z_true: np.ndarray, z_pred: np.ndarray, path: str | os.PathLike, dv_limit_kms: float = 6000.0) -> None:
    """Predicted against true redshift (density for large samples) with the +-``dv_limit_kms`` band."""
    z_true = np.asarray(z_true, float)
    z_pred = np.asarray(z_pred, float)
    ok = np.isfinite(z_true) & np.isfinite(z_pred)
    z_true, z_pred = z_true[ok], z_pred[ok]
    fig, ax = plt.subplots(figsize=(5.2, 5))
    hi = max(1.0, float(np.max(np.concatenate([z_true, z_pred]))) * 1.03) if z_true.size else 1.0
    if z_true.size > 2000:
        ax.hexbin(z_true, z_pred, gridsize=120, bins="log", extent=(0, hi, 0, hi), cmap="viridis", mincnt=1)
    else:
        ax.scatter(z_true, z_pred, s=3, alpha=0.5)
    zz = np.linspace(0, hi, 200)
    f = dv_limit_kms / 299792.458
    ax.plot(zz, zz, color="k", lw=0.6)
    ax.fill_between(zz, zz - f * (1 + zz), zz + f * (1 + zz), color="tab:red", alpha=0.15, lw=0,
                    label=f"|dv| < {dv_limit_kms:g} km/s")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("true z")
    ax.set_ylabel("predicted z")
    if z_true.size:
        rel = 299792.458 * np.abs(z_pred - z_true) / (1 + z_true)
        ax.set_title(f"n = {z_true.size}, {np.mean(rel < dv_limit_kms):.2%} within {dv_limit_kms:g} km/s", fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def plot_dv_hist(dv_kms: np.ndarray, path: str | os.PathLike, limit_kms: float = 6000.0, span_kms: float = 20000.0) -> None:
    """Histogram of velocity errors within +-``span_kms``; the share outside is given in the title."""
    dv = np.asarray(dv_kms, float)
    dv = dv[np.isfinite(dv)]
    fig, ax = plt.subplots(figsize=(6, 4))
    inside = np.abs(dv) <= span_kms
    ax.hist(dv[inside], bins=np.linspace(-span_kms, span_kms, 161), color="tab:blue")
    for s in (-1, 1):
        ax.axvline(s * limit_kms, color="tab:red", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("c dz / (1 + z)  [km/s]")
    ax.set_ylabel("spectra")
    if dv.size:
        ax.set_title(f"n = {dv.size}; |dv| < {limit_kms:g}: {np.mean(np.abs(dv) < limit_kms):.2%}; "
                     f"outside plot: {np.mean(~inside):.1%}", fontsize=9)
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


def plot_efficiency_vs_snr(snr: np.ndarray, signal_score: np.ndarray, noise_score: np.ndarray,
                           path: str | os.PathLike, fprs: Sequence[float] = (0.01, 0.1), n_bins: int = 12) -> None:
    """Detection efficiency against injected SNR: the share of signals scoring above the threshold that
    ``fpr`` of the noise-only samples exceed, in SNR bins of about equal counts, with binomial errors."""
    snr = np.asarray(snr, dtype=np.float64)
    sig = np.asarray(signal_score, dtype=np.float64)
    noise = np.sort(np.asarray(noise_score, dtype=np.float64))
    ok = np.isfinite(snr)
    snr, sig = snr[ok], sig[ok]
    fig, ax = plt.subplots(figsize=(5.0, 3.8))
    if snr.size and noise.size:
        edges = np.unique(np.quantile(snr, np.linspace(0, 1, max(2, min(n_bins, snr.size // 5) + 1))))
        if edges.size < 2:
            edges = np.array([snr.min(), snr.max() + 1e-9])
        which = np.clip(np.searchsorted(edges, snr, side="right") - 1, 0, edges.size - 2)
        centres = np.array([np.median(snr[which == b]) if np.any(which == b) else np.nan for b in range(edges.size - 1)])
        for fpr in fprs:
            thr = noise[min(noise.size - 1, int(np.ceil((1 - fpr) * noise.size)) - 1)] if noise.size else np.inf
            eff, err = [], []
            for b in range(edges.size - 1):
                k = which == b
                n = int(k.sum())
                p = float((sig[k] > thr).mean()) if n else np.nan
                eff.append(p)
                err.append(np.sqrt(p * (1 - p) / n) if n else np.nan)
            ax.errorbar(centres, eff, yerr=err, marker="o", ms=3, lw=1, capsize=2, label=f"FPR {fpr:g}")
    ax.set_xlabel("injected network SNR")
    ax.set_ylabel("detection efficiency")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    save(fig, path)
