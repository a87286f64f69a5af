"""Stars: A to M dwarfs and white dwarfs with radial velocities within +-300 km/s.

A star is a blackbody at its effective temperature, with ultraviolet metal-line blanketing (stronger in
cooler stars), a Balmer jump in A/F stars and absorption lines whose strengths follow the spectral type:

- Balmer series (Lorentzian wings; strongest near 9500 K), Ca II H&K, the G band (CH), Ca I 4227, Mg b,
  Na D, the Ca triplet and a few Fe I lines, plus a dense forest of weak metal lines (fixed positions)
  that gives cool stars their texture at BOSS resolution;
- TiO band heads (4954 ... 8859 A) with a sharp blue edge and a red-degraded tail, CaH, and VO in late M;
- white dwarfs: DA (pressure-broadened Balmer lines tens of A wide) and DB (broad He I lines).

Equivalent widths are typical values for dwarfs of solar metallicity (approx.), not fits to a library.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import expit

from astrocnn.spectra.lines import ABSORPTION
from astrocnn.spectra.simulate.common import C_KMS, MODEL_LOGLAM, MODEL_WAVE, gaussian_peaks, planck_lambda, shift_resample, truncated_normal

#: Design choice: mix of stellar types among spectroscopic stars (SEGUE/BOSS stars, standards, contaminants).
STAR_TYPE_FRACTIONS = {"A": 0.10, "F": 0.25, "G": 0.20, "K": 0.18, "M": 0.22, "WD": 0.05}

# effective temperature at (type index: A0 = 0, F0 = 10, G0 = 20, K0 = 30, M0 = 40, M9 = 49)
_TEFF_KNOTS = np.array([(0, 9600), (5, 8200), (10, 7200), (15, 6500), (20, 5900), (25, 5600), (30, 5250),
                        (35, 4400), (40, 3850), (43, 3400), (45, 3100), (47, 2800), (49, 2450)], dtype=float)
_LETTERS = "AFGKM"

BALMER = (6564.61, 4862.68, 4341.69, 4102.89, 3971.20, 3890.17, 3836.49, 3798.98, 3771.70, 3751.22)
_BALMER_REL = (0.8, 0.95, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)

#: TiO band heads (vacuum A) and relative strengths; CaH; VO (late M only).
_TIO = ((4955.0, 0.45), (5168.0, 0.55), (5449.0, 0.5), (5849.0, 0.5), (6161.0, 0.8), (6653.0, 0.6),
        (7055.0, 1.0), (7591.0, 0.7), (8434.0, 0.5), (8861.0, 0.4))
_CAH = ((6384.0, 0.35), (6752.0, 0.25))
_VO = ((7336.0, 0.5), (7867.0, 0.5))
_DB_LINES = (4027.3, 4389.2, 4472.7, 4714.5, 4923.3, 5017.1, 5877.2, 6679.9)


def teff_of_type(index: float) -> float:
    return float(np.interp(index, _TEFF_KNOTS[:, 0], _TEFF_KNOTS[:, 1]))


# weak metal-line forest: fixed pseudo-random positions (same for every star), so texture is reproducible
_FOREST_LOGLAM0, _FOREST_DLOG, _FOREST_N = 3.55, 1e-4, 4700


@lru_cache(maxsize=1)
def _metal_forest_tau() -> np.ndarray:
    rng = np.random.default_rng(20240611)
    n_lines = 900
    lam = np.exp(rng.uniform(np.log(3550.0), np.log(9000.0), n_lines))
    # line density and strength fall towards the red, as in real cool-star spectra
    strength = rng.exponential(0.10, n_lines) * (4500.0 / lam) ** 1.5
    sig = 1.0 / (lam * np.log(10))  # 1 A Gaussian sigma, in dex (blends of weaker lines)
    return gaussian_peaks(np.log10(lam), sig, strength, loglam0=_FOREST_LOGLAM0, dlog=_FOREST_DLOG, n=_FOREST_N)


@dataclass
class Star:
    model: np.ndarray  # (MODEL_N,) f_lambda, arbitrary scale
    truth: dict


def _lorentz_lines(wave: np.ndarray, centres, depths, hwhm) -> np.ndarray:
    """Product of (1 - Lorentzian depth) for lines (multiplicative absorption), evaluated on ``wave``."""
    out = np.zeros_like(wave)
    for c, d, w in zip(centres, depths, hwhm):
        win = np.abs(wave - c) < 40.0 * w + 5.0
        x = (wave[win] - c) / w
        out[win] += np.log1p(-d / (1.0 + x * x))
    return np.exp(out)


def _band_tau(wave: np.ndarray, bands, amplitude: float, length: float) -> np.ndarray:
    tau = np.zeros_like(wave)
    for head, rel in bands:
        x = wave - head
        tau += amplitude * rel * expit(x / 2.0) * np.exp(-np.clip(x, 0.0, None) / length) * (x > -20)
    return tau


def simulate_star(rng: np.random.Generator) -> tuple[Star, float]:
    """A star (noiseless, arbitrary flux scale) and its redshift rv / c."""
    kinds = list(STAR_TYPE_FRACTIONS)
    kind = kinds[int(rng.choice(len(kinds), p=np.array(list(STAR_TYPE_FRACTIONS.values()))))]
    rv = truncated_normal(rng, -10.0, 100.0, -300.0, 300.0)
    z = rv / C_KMS
    wave = MODEL_WAVE / (1.0 + z)

    if kind == "WD":
        da = rng.random() < 0.8
        teff = float(np.exp(rng.uniform(np.log(7000.0 if da else 12000.0), np.log(40000.0 if da else 30000.0))))
        flux = planck_lambda(wave, teff)
        if da:
            peak = np.exp(-0.5 * (np.log10(teff / 12000.0) / 0.2) ** 2)
            depth = 0.1 + 0.5 * peak
            width = rng.uniform(15.0, 35.0) * (0.5 + 0.5 * peak)
            scale = np.array([1.2, 1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35])
            flux *= _lorentz_lines(wave, BALMER, np.full(10, depth) * np.array(_BALMER_REL), width * scale)
            sub_type = "DA"
        else:
            flux *= _lorentz_lines(wave, _DB_LINES, np.full(len(_DB_LINES), rng.uniform(0.2, 0.35)),
                                   np.full(len(_DB_LINES), rng.uniform(8.0, 15.0)))
            sub_type = "DB"
        truth = {"subclass": "WD", "spectral_type": sub_type, "teff": teff, "rv_kms": rv}
        return Star(model=flux, truth=truth), z

    letter_index = _LETTERS.index(kind)
    digit = int(rng.integers(0, 10)) if kind != "M" else int(min(rng.geometric(0.3) - 1, 9))
    index = 10 * letter_index + digit
    teff = teff_of_type(index) * float(np.exp(rng.normal(0.0, 0.02)))
    lt = np.log10(teff)
    flux = planck_lambda(wave, teff)

    # ultraviolet line blanketing and the Balmer jump
    blanket = float(np.interp(teff, [3000, 4500, 5500, 6500, 8000, 9500], [0.8, 0.7, 0.55, 0.35, 0.15, 0.05]))
    flux *= 1.0 - blanket * expit((4000.0 - wave) / 180.0)
    jump = 0.5 * np.exp(-0.5 * ((lt - np.log10(9000.0)) / 0.07) ** 2)
    flux *= 1.0 - jump * expit((3660.0 - wave) / 12.0)

    # line strengths (equivalent widths, A) versus temperature
    ew_balmer = 1.0 + 17.0 * np.exp(-0.5 * ((lt - np.log10(9500.0)) / 0.1) ** 2)
    cool = float(np.clip((7500.0 - teff) / 2500.0, 0.0, 1.0))  # 0 for A stars, 1 for K/M
    ew_cak = 0.5 + 17.0 * float(np.interp(teff, [3000, 4000, 5000, 6000, 7000, 8000, 9500],
                                              [0.5, 1.0, 1.0, 0.7, 0.35, 0.1, 0.0]))
    metal = float(np.interp(teff, [2500, 3500, 4500, 5500, 6500, 7500, 8500], [1.2, 1.4, 1.6, 1.0, 0.5, 0.2, 0.05]))
    cent, ew, kind_w = [], [], []
    for lam, rel in zip(BALMER, _BALMER_REL):
        cent.append(lam), ew.append(ew_balmer * rel), kind_w.append(0.6)
    a = ABSORPTION
    for lam, e in ((a["CaK"], ew_cak), (a["CaH"], 0.8 * ew_cak), (4227.9, 4.0 * cool ** 2 * metal),
                   (a["Gband"], 5.0 * cool * np.clip(teff / 4000.0, 0, 1)), (a["Mgb5167"], 1.2 * metal),
                   (a["Mgb5173"], 1.3 * metal), (a["Mgb5184"], 1.5 * metal), (a["NaD5892"], 1.2 * metal + 0.3),
                   (a["NaD5898"], 1.0 * metal + 0.25), (a["CaT8500"], 0.8 * metal), (a["CaT8544"], 2.0 * metal),
                   (a["CaT8665"], 1.6 * metal),
                   (4046.0, 0.6 * metal), (4384.8, 0.8 * metal), (5271.0, 0.9 * metal), (5329.6, 0.5 * metal)):
        cent.append(lam), ew.append(e), kind_w.append(0.8)
    cent, ew, depth = np.array(cent), np.maximum(np.array(ew), 0.01) * np.exp(rng.normal(0.0, 0.1)), np.array(kind_w)
    # lines narrower than ~1 A would be undersampled on the grid (losing their equivalent width): widen them
    hwhm = np.maximum(ew / (np.pi * depth), 1.2)
    depth = ew / (np.pi * hwhm)
    flux *= _lorentz_lines(wave, cent, depth, hwhm)
    forest = shift_resample(_FOREST_LOGLAM0, _FOREST_DLOG, _metal_forest_tau(), MODEL_LOGLAM, np.log10(1.0 + z))
    flux *= np.exp(-metal * forest)

    # molecular bands of M (and late K) dwarfs
    if index >= 35:
        sub = index - 40.0
        a_tio = float(np.interp(sub, [-5, 0, 2, 4, 6, 9], [0.05, 0.25, 0.5, 0.9, 1.4, 1.8]))
        tau = _band_tau(wave, _TIO, a_tio, rng.uniform(80.0, 140.0))
        tau += _band_tau(wave, _CAH, a_tio, 60.0)
        if sub >= 7:
            tau += _band_tau(wave, _VO, 0.4 * a_tio, 150.0)
        flux *= np.exp(-tau)
    truth = {"subclass": f"{kind}{digit}", "spectral_type": f"{kind}{digit}", "teff": teff, "rv_kms": rv}
    return Star(model=flux, truth=truth), z
