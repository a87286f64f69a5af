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
