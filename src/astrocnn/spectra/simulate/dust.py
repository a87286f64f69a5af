"""Dust attenuation curves: SMC for quasars, Calzetti for galaxies.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

import numpy as np

# Pei (1992) SMC fit: xi(lambda) = A_lambda / A_B = sum_i a_i / ((l/l_i)^n_i + (l_i/l)^n_i + b_i), l in micron,
# with R_V = 2.93. SMC-like dust (no 2175 A bump) is what reddened quasars show (Hopkins et al. 2004).
_PEI_SMC = np.array([
    # a,      lambda_i, b,     n
    [185.0, 0.042, 90.0, 2.0],
    [27.0, 0.08, 5.50, 4.0],
    [0.005, 0.22, -1.95, 2.0],
    [0.010, 9.7, -1.95, 2.0],
    [0.012, 18.0, -1.80, 2.0],
    [0.030, 25.0, 0.00, 2.0],
])
_PEI_SMC_RV = 2.93


def smc_extinction(wave_aa: np.ndarray) -> np.ndarray:
    """A_lambda / E(B-V) of SMC dust at rest wavelengths ``wave_aa`` (Angstrom); same shape as the input."""
    lam = np.asarray(wave_aa, dtype=np.float64) * 1e-4
    lam = np.clip(lam, 0.02, None)
    a, li, b, n = (_PEI_SMC[:, k][:, None] for k in range(4))
    x = lam.reshape(1, -1)
    xi = (a / ((x / li) ** n + (li / x) ** n + b)).sum(axis=0)
    return ((1.0 + _PEI_SMC_RV) * xi).reshape(np.shape(lam))


_CALZETTI_RV = 4.05


def calzetti_k(wave_aa: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) starburst attenuation k(lambda) = A_lambda / E_s(B-V), rest Angstrom.

    Below 1200 A (not reached by our galaxies) the 0.12-0.63 micron polynomial is simply extended.
    """
    lam = np.clip(np.asarray(wave_aa, dtype=np.float64) * 1e-4, 0.09, 2.2)
    blue = 2.659 * (-2.156 + 1.509 / lam - 0.198 / lam**2 + 0.011 / lam**3) + _CALZETTI_RV
    red = 2.659 * (-1.857 + 1.040 / lam) + _CALZETTI_RV
    return np.where(lam < 0.63, blue, red)
