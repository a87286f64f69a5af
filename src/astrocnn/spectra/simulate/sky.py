"""The night sky above Apache Point as BOSS records it: airglow lines, OH Meinel bands, continuum, telluric bands.

All fluxes are in the spectra's calibrated unit (1e-17 erg/s/cm^2/A through a 2" BOSS fibre), so the sky array
can be stored beside an object's flux like the SDSS ``sky`` column.

The OH forest is computed, not copied: line positions come from the vibrational term values and a
Hill & Van Vleck rotational ladder of the OH X^2Pi state, rotational populations at T_rot ~ 190 K and
Honl-London factors; band strengths, the [OI]/Na/Hg line fluxes and the continuum were matched (least squares)
to the sky spectra of public BOSS spec files (plates 6001, 7338-7340), where the model reproduces the bright
line positions to a fraction of a pixel.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import expit

# ---------------------------------------------------------------------------------------------------------------
# OH Meinel bands

#: Vibrational term values G(v) - G(0) of OH X^2Pi (cm^-1), with small corrections fitted to BOSS sky spectra.
_OH_G = {0: 0.0, 1: 3568.1, 2: 6972.7, 3: 10215.2, 4: 13292.4, 5: 16206.2, 6: 18958.3, 7: 21544.5,
         8: 23959.6, 9: 26196.0}
_OH_A = -139.5  # spin-orbit constant (cm^-1); negative: the 2Pi_3/2 ladder (F1) lies lowest
_OH_T_ROT = 190.0  # rotational temperature of the emitting OH (K)
_OH_J_MAX = 15.5
#: Band strengths (v', v'') in the flux unit times Angstrom per unit Honl-London x Boltzmann weight.
_OH_BANDS = {
    (3, 0): 208.0, (4, 0): 23.4, (4, 1): 490.0, (5, 0): 2.1, (5, 1): 62.9, (6, 0): 0.8, (6, 1): 10.5,
    (6, 2): 119.0, (7, 1): 4.2, (7, 2): 20.2, (7, 3): 142.0, (8, 2): 7.8, (8, 3): 45.5, (8, 4): 335.0,
    (9, 3): 10.8, (9, 4): 60.4, (9, 5): 340.0,
}


def _oh_b(v: int) -> float:
    return 18.911 - 0.7242 * (v + 0.5)  # rotational constant B_v (cm^-1)


def _oh_term(v: int, j: np.ndarray, component: int) -> np.ndarray:
    """Rotational term F_1 or F_2 (cm^-1) of level J in vibrational level v (Hill & Van Vleck, Lambda = 1)."""
    b = _oh_b(v)
    y = _OH_A / b
    x = (j + 0.5) ** 2
    root = 0.5 * np.sqrt(4.0 * x + y * (y - 4.0))
    return b * (x - 1.0 - root) if component == 1 else b * (x - 1.0 + root)


@lru_cache(maxsize=1)
def oh_lines() -> tuple[np.ndarray, np.ndarray]:
    """OH Meinel-band lines between 3500 and 10600 A: (vacuum wavelengths in A, integrated fluxes), sorted."""
    waves, fluxes = [], []
    for (vu, vl), strength in _OH_BANDS.items():
        e0 = float(_oh_term(vu, np.array(1.5), 1))
        for component, omega in ((1, 1.5), (2, 0.5)):
            ju = np.arange(omega, _OH_J_MAX)
            fu = _oh_term(vu, ju, component)
            boltz = np.exp(-1.43877 * (fu - e0) / _OH_T_ROT)
            for branch in ("P", "Q", "R"):
                jl = ju + {"P": 1.0, "Q": 0.0, "R": -1.0}[branch]
                ok = jl >= omega
                if branch == "P":
                    s = (jl + omega) * (jl - omega) / jl
                elif branch == "Q":
                    s = (2 * jl + 1) * omega**2 / (jl * (jl + 1))
                else:
                    s = (jl + 1 + omega) * (jl + 1 - omega) / (jl + 1)
                ok &= s > 0
                nu = _OH_G[vu] - _OH_G[vl] + fu - _oh_term(vl, jl, component)
                waves.append(1e8 / nu[ok])
                fluxes.append(strength * s[ok] * boltz[ok])
    w = np.concatenate(waves)
    f = np.concatenate(fluxes)
    keep = (w > 3500) & (w < 10600) & (f > 1e-3)
    order = np.argsort(w[keep])
    return w[keep][order], f[keep][order]


# ---------------------------------------------------------------------------------------------------------------
# atomic airglow and light pollution

#: (vacuum wavelength A, integrated flux) of the atomic lines: [OI] airglow, Na D (airglow + street lamps),
#: the Hg lines of street lamps near Apache Point, and [NI].
ATOMIC_SKY_LINES: tuple[tuple[float, float], ...] = (
    (5578.89, 203.0),  # [OI] 5577 (air)
    (6302.05, 138.0),  # [OI] 6300
    (6365.54, 47.5),   # [OI] 6364
    (5891.58, 55.0),   # Na D2
    (5897.56, 39.4),   # Na D1
    (4047.71, 22.5),   # Hg 4046.6
    (4359.56, 47.0),   # Hg 4358.3
    (5462.27, 36.5),   # Hg 5460.7
    (5771.20, 12.0),   # Hg 5769.6
    (5792.27, 10.6),   # Hg 5790.7
    (5200.5, 10.0),    # [NI] 5198/5200
)

#: Indices of the lines a BOSS fibre sees as "strong" (sky-subtraction residuals are largest there).
STRONG_SKY_LINES = (5578.89, 5891.58, 5897.56, 6302.05, 6365.54)

#: Smooth sky continuum in the flux unit (BOSS, dark time): zodiacal light, scattered moonlight, the broad
#: high-pressure-sodium street-lamp emission near 5900 A and the unresolved OH pseudo-continuum in the red.
_SKY_CONTINUUM_KNOTS = np.array([
    (3560, 4.8), (3675, 4.4), (3775, 3.9), (3875, 3.3), (3975, 3.4), (4075, 3.6), (4175, 3.4), (4275, 3.2),
    (4475, 3.25), (4675, 3.2), (4875, 3.1), (5075, 2.9), (5275, 2.75), (5475, 3.0), (5675, 3.4), (5775, 3.7),
    (5875, 4.6), (5975, 4.6), (6075, 3.8), (6175, 3.4), (6275, 3.2), (6375, 2.7), (6575, 2.45), (6775, 2.15),
    (7075, 2.1), (7275, 2.4), (7475, 2.2), (7675, 2.6), (7875, 3.1), (8075, 2.4), (8375, 2.2), (8675, 2.4),
    (8975, 2.3), (9175, 1.9), (9375, 2.6), (9675, 2.6), (9975, 3.2), (10175, 5.5), (10400, 5.5),
])


def sky_continuum(wave_aa: np.ndarray) -> np.ndarray:
    """Sky continuum at observed vacuum wavelengths (flux unit, BOSS fibre)."""
    k = _SKY_CONTINUUM_KNOTS
    return np.interp(wave_aa, k[:, 0], k[:, 1])


# ---------------------------------------------------------------------------------------------------------------
# telluric absorption

#: (blue edge, red edge, depth, sharp head on the blue side) of the O2 B and A bands and the H2O bands,
#: vacuum A. Depths are those of the uncorrected bands at moderate airmass; BOSS divides them out using
#: standard stars, so only a few per cent of them survive as residuals.
_TELLURIC_BANDS = (
    (6868.0, 6960.0, 0.35, True),   # O2 B band
    (7160.0, 7340.0, 0.15, False),  # H2O
    (7596.0, 7700.0, 0.80, True),   # O2 A band
    (8130.0, 8350.0, 0.15, False),  # H2O
    (8950.0, 9800.0, 0.30, False),  # H2O
)


def telluric_depth(wave_aa: np.ndarray) -> np.ndarray:
    """Fractional depth (0..1) of the uncorrected telluric bands at observed wavelengths ``wave_aa``."""
    wave_aa = np.asarray(wave_aa, dtype=np.float64)
    depth = np.zeros_like(wave_aa)
    for lo, hi, d, sharp in _TELLURIC_BANDS:
        if sharp:
            # a band head: absorption rises within a few A and fades towards the red
            x = (wave_aa - lo) / (hi - lo)
            prof = np.where((x >= 0) & (x <= 1), np.exp(-2.5 * x) * (1 + 0.3 * np.cos(40 * np.pi * x)), 0.0)
            prof *= expit((wave_aa - lo) / 1.5)
        else:
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
            prof = np.exp(-0.5 * ((wave_aa - mid) / (0.5 * half)) ** 4)
        depth = 1.0 - (1.0 - depth) * (1.0 - d * np.clip(prof, 0.0, 1.0))
    return depth
