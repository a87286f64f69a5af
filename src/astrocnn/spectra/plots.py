"""Figures of spectra: spectra with their lines marked (``astrocnn show``), predicted against true
redshift, and the velocity-error histogram.

Spectra domain; built on :mod:`astrocnn.core.plots`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from astrocnn.core.plots import save  # first: it chooses matplotlib's backend (Agg unless one is chosen)
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from astrocnn.core.errors import InputError  # noqa: E402
from astrocnn.spectra.dataset import SpectraSet  # noqa: E402
from astrocnn.spectra.lines import PLOT_LINES  # noqa: E402


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


def show_prepared(path: str | os.PathLike, indices: Sequence[int], out: str | os.PathLike | None = None) -> Path:
    """Plot rows ``indices`` of a prepared set with the main lines marked at each label z.

    Returns the PNG written (default ``<file stem>-<i>.png`` beside the set).
    """
    ds = SpectraSet(path)
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not -len(ds) <= i < len(ds)]
    if bad:
        raise InputError(path, f"index {bad[0]} out of range: the set holds {len(ds)} spectra")
    idx = [i % len(ds) for i in idx]
    b = ds.read(idx)
    names = [ds.class_names[c] if c >= 0 else None for c in b["cls"]]
    titles = [
        f"{oid}  {name or 'unknown class'}  z={z:.4f}  S/N={s:.1f}"
        for oid, name, z, s in zip(b["id"], names, b["z"], ds.snr[idx])
    ]
    if out is None:
        p = Path(path)
        out = p.with_name(f"{p.stem}-{'-'.join(map(str, idx))}.png")
    plot_spectra(ds.grid.wave, b["flux"], b["ivar"], titles, np.asarray(b["z"], float), names, out)
    ds.close()
    return Path(out)
