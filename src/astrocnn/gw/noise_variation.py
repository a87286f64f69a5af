"""Noise PSDs that change from sample to sample, so a detector trained on them does not learn one noise curve.

Gravitational-wave domain, used by the simulator (``astrocnn simulate gw --noise varied``,
:func:`~astrocnn.gw.simulate.simulate_sample`). A network trained on noise of one PSD and whitened with that
PSD learns what its whitened noise looks like; on noise of another PSD (G2Net's organisers', real LIGO
strain) whitened with the wrong curve it sees coloured noise and calls it signal. Here each detector of
each sample gets its own PSD: the base curve (the simulator's design curve with its low-frequency bump)
multiplied by

* a scale: ASD x exp(N(0, ``scale_sigma``)), per detector;
* a tilt: ASD x (f / 100 Hz)^t with t ~ U(-``tilt_max``, ``tilt_max``), f clipped to 20-1000 Hz (the tilt
  pivots on 100 Hz and leaves the part below 20 Hz, which the band-pass removes anyway, as it is);
* 0 to ``bumps_max`` broad bumps: PSD x (1 + A exp(-(ln f - ln f_c)^2 / 2 w^2)), f_c log-uniform in
  ``bump_band``, A log-uniform in ``bump_height``, w uniform in ``bump_width`` (in ln f);
* 0 to ``lines_max`` narrow spectral lines: PSD x (1 + B exp(-(f - f_l)^2 / 2 s^2)), f_l uniform in
  ``line_band``, B log-uniform in ``line_height``, s uniform in ``line_width_hz``;
* for H1/L1, the 10-15 Hz bump's power scaled by U(``low_scale``).

All numbers are drawn from a random stream of the sample's own (seed, index), so a sample is reproducible
alone. The ranges are a choice, not a measurement: wide enough that the design curve is one draw among many
unlike it (the G2Net organisers' noise above 20 Hz lies within them), narrow enough that the noise stays
LIGO-like (a tilt of +-0.5 moves the ASD by at most a factor 2.2 at 20 Hz and 1000 Hz).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class VariationPrior:
    """Ranges of the per-detector PSD variations (see the module docstring for what each does)."""

    scale_sigma: float = 0.3
    tilt_max: float = 0.5
    tilt_pivot_hz: float = 100.0
    tilt_band: tuple[float, float] = (20.0, 1000.0)
    bumps_max: int = 2
    bump_band: tuple[float, float] = (20.0, 500.0)
    bump_height: tuple[float, float] = (0.3, 10.0)
    bump_width: tuple[float, float] = (0.05, 0.3)
    lines_max: int = 4
    line_band: tuple[float, float] = (20.0, 1000.0)
    line_height: tuple[float, float] = (10.0, 1000.0)
    line_width_hz: tuple[float, float] = (0.1, 0.5)
    low_scale: tuple[float, float] = (0.5, 2.0)


@dataclass(frozen=True)
class PsdVariation:
    """One detector's drawn variation: ``scale`` (ASD factor), ``tilt`` (ASD exponent), ``bumps`` and ``lines``
    ((centre Hz, height, width) each: width in ln f for bumps, in Hz for lines), ``low_scale`` (power factor
    of the 10-15 Hz bump)."""

    scale: float = 1.0
    tilt: float = 0.0
    bumps: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)
    lines: tuple[tuple[float, float, float], ...] = field(default_factory=tuple)
    low_scale: float = 1.0


def _log_uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(lo_hi[0]), math.log(lo_hi[1]))))


def draw_variation(rng: np.random.Generator, prior: VariationPrior = VariationPrior()) -> PsdVariation:
    """Draw one detector's :class:`PsdVariation` from ``prior``."""
    scale = float(math.exp(prior.scale_sigma * rng.standard_normal()))
    tilt = float(rng.uniform(-prior.tilt_max, prior.tilt_max))
    bumps = tuple((_log_uniform(rng, prior.bump_band), _log_uniform(rng, prior.bump_height),
                   float(rng.uniform(*prior.bump_width))) for _ in range(int(rng.integers(0, prior.bumps_max + 1))))
    lines = tuple((float(rng.uniform(*prior.line_band)), _log_uniform(rng, prior.line_height),
                   float(rng.uniform(*prior.line_width_hz))) for _ in range(int(rng.integers(0, prior.lines_max + 1))))
    return PsdVariation(scale=scale, tilt=tilt, bumps=bumps, lines=lines, low_scale=float(rng.uniform(*prior.low_scale)))


def variation_factor(freqs: np.ndarray, v: PsdVariation, prior: VariationPrior = VariationPrior()) -> np.ndarray:
    """The factor (F,) a variation multiplies the base PSD by at ``freqs`` (Hz): scale^2, tilt, bumps, lines."""
    f = np.asarray(freqs, dtype=np.float64)
    pivot = np.clip(f, *prior.tilt_band) / prior.tilt_pivot_hz
    out = v.scale ** 2 * pivot ** (2.0 * v.tilt)
    log_f = np.log(np.maximum(f, 1e-3))
    for centre, height, width in v.bumps:
        out = out * (1.0 + height * np.exp(-0.5 * ((log_f - math.log(centre)) / width) ** 2))
    for centre, height, width in v.lines:
        out = out * (1.0 + height * np.exp(-0.5 * ((f - centre) / width) ** 2))
    return out


def varied_psd(freqs: np.ndarray, base: np.ndarray, low: np.ndarray | None, v: PsdVariation,
               prior: VariationPrior = VariationPrior()) -> np.ndarray:
    """One detector's PSD (F,) in 1/Hz: ``base`` (the curve without its low-frequency bump) times
    :func:`variation_factor`, plus ``low`` (the 10-15 Hz bump's PSD, or None) times ``v.low_scale``."""
    out = np.asarray(base, dtype=np.float64) * variation_factor(freqs, v, prior)
    if low is not None:
        out = out + v.low_scale * np.asarray(low, dtype=np.float64)
    return out


# A prior unlike the default one, for a domain-shift test (a network trained on VariationPrior() scored on noise
# it never saw): every range wider (tilts to +-0.8, scales of sigma 0.5, up to 3 bumps of up to 30x in power,
# up to 8 lines of 30-3000x, the 10-15 Hz bump 0.25-4x), so most test PSDs lie outside the training draws.
SHIFTED_PRIOR = VariationPrior(scale_sigma=0.5, tilt_max=0.8, bumps_max=3, bump_height=(1.0, 30.0), lines_max=8,
                               line_height=(30.0, 3000.0), low_scale=(0.25, 4.0))
