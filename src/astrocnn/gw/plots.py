"""Figures of gravitational-wave detection: efficiency against injected SNR.

Gravitational-wave domain; built on :mod:`astrocnn.core.plots`.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from astrocnn.core.plots import save  # first: it chooses matplotlib's backend (Agg unless one is chosen)
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


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
