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


def plot_event_scan(white: np.ndarray, sample_rate: float, gps_start: float, centres: np.ndarray, scores: np.ndarray,
                    valid: np.ndarray, gps_event: float, path: str | os.PathLike, merger_offset_s: float = 0.7,
                    title: str = "") -> None:
    """A network's scan of a segment over its spectrogram: the whitened strain of one detector ``white`` (N,)
    as a spectrogram (20-500 Hz, 1/8-s FFTs), the score of every window drawn at the merger time it stands
    for (window centre + ``merger_offset_s``, where training samples had their mergers; invalid windows grey),
    and the catalogue time ``gps_event`` as a dashed line. Times are seconds from ``gps_event``."""
    from scipy.signal import spectrogram

    white = np.asarray(white, dtype=np.float64)
    nper = max(16, int(sample_rate / 8))
    f, t, sxx = spectrogram(white, fs=sample_rate, nperseg=nper, noverlap=nper * 7 // 8)
    band = (f >= 20) & (f <= 500)
    fig, (ax_s, ax) = plt.subplots(2, 1, figsize=(7.0, 5.0), sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
    x0 = gps_start - gps_event
    ax_s.pcolormesh(t + x0, f[band], np.log10(sxx[band] + 1e-30), shading="auto", cmap="viridis")
    ax_s.set_yscale("log")
    ax_s.set_ylabel("frequency (Hz)")
    ax_s.set_title(title, fontsize=9)
    at = np.asarray(centres) + merger_offset_s - gps_event
    ok = np.asarray(valid, dtype=bool)
    ax.plot(at[ok], np.asarray(scores)[ok], ".-", ms=3, lw=0.8, color="C0", label="network score (valid windows)")
    if (~ok).any():
        ax.plot(at[~ok], np.asarray(scores)[~ok], ".", ms=2, color="0.7", label="windows in tapers or gaps")
    for a in (ax_s, ax):
        a.axvline(0.0, color="C3", ls="--", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("merger time the window stands for, s from the catalogue time")
    ax.set_ylabel("score")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    save(fig, path)
