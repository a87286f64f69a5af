"""Intervening absorption in front of a quasar: Lyman-alpha forest, Lyman series and limit, DLAs, metal systems.

- Lyman-alpha forest: a lognormal optical-depth field, tau = tau0(z) exp(sigma g) with g a unit Gaussian
  field correlated over ~2 pixels. tau0(z) is solved (once per process, by quadrature over g) so that the
  *mean* transmission <exp(-tau)> equals Becker et al. (2013): tau_eff = 0.751((1+z)/4.5)^2.90 - 0.132.
- Ly-beta ... Ly-epsilon: the same field statistics with tau scaled by f*lambda (Ly-beta 0.16 x Ly-alpha),
  drawn independently (their gas is at a different redshift from the Ly-alpha gas at the same pixel).
- Lyman continuum: half of Madau (1995)'s mean IGM photo-absorption for the many low-column clouds, plus
  discrete Lyman-limit systems (log N_HI 17.2-20.3, l(z) ~ ((1+z)/4)^2) with Voigt Ly-alpha lines.
- DLAs: log N_HI >= 20.3, dn/dz = 0.17 ((1+z)/3.5)^1.9 (Noterdaeme et al. 2012), f(N) ~ N^-2 steepening to
  N^-3 above 10^21.5; Voigt Ly-alpha and Ly-beta, a black Lyman limit and weak low-ionisation metal lines.
- Metal systems: MgII (W_r(2796) > 0.3 A, dn/dz ~ 0.8, exponential W* = 0.7 A; Nestor et al. 2005) with FeII
  and MgI, and CIV (W_r(1548) > 0.2 A, dn/dz ~ 1.2, W* = 0.4 A); doublet ratios follow from optical depths
  2:1 through a curve of growth, so strong systems saturate.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.special import voigt_profile

from astrocnn.spectra.lines import LYMAN_LIMIT, QSO_LINES
from astrocnn.spectra.simulate.common import C_KMS, LN10, MODEL_N, MODEL_WAVE, gaussian_peaks

LYA = QSO_LINES["Lya"]
#: Lyman series: (rest A, oscillator strength, damping constant s^-1).
LYMAN_SERIES = (
    (1215.67, 0.4164, 6.265e8),
    (1025.72, 0.07912, 1.897e8),
    (972.537, 0.02900, 8.127e7),
    (949.743, 0.01394, 4.204e7),
    (937.803, 0.007799, 2.450e7),
)
_SIGMA_LL = 6.30e-18  # H I photo-ionisation cross-section at the Lyman limit (cm^2)
_PI_E2_MEC = 0.026540  # pi e^2 / (m_e c), cm^2 Hz

#: Lognormal width (in ln tau) and correlation length (pixels) of the forest field. With these the forest
#: flux at BOSS resolution fluctuates by ~0.23 rms (delta_F ~ 0.3) at z = 2.6, ~0.3 at z = 3.3, close to
#: what the BOSS 1D flux power spectrum integrates to at 69 km/s pixels (Palanque-Delabrouille et al. 2013).
FOREST_SIGMA = 1.6
FOREST_CORRELATION_PIX = 2.0


def tau_eff_becker(z: np.ndarray | float) -> np.ndarray:
    """Becker et al. (2013) effective Lyman-alpha optical depth at absorber redshift ``z``."""
    return 0.751 * ((1.0 + np.asarray(z, dtype=np.float64)) / 4.5) ** 2.90 - 0.132


def mean_transmission_becker(z: np.ndarray | float) -> np.ndarray:
    """Mean Lyman-alpha forest transmission exp(-tau_eff) (Becker et al. 2013)."""
    return np.exp(-tau_eff_becker(z))


@lru_cache(maxsize=4)
def _lognormal_table(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(ln tau_eff, ln tau0) on a grid, for tau = tau0 exp(sigma g), g ~ N(0, 1)."""
    x = np.linspace(-9.0, 9.0, 3601)
    w = np.exp(-0.5 * x * x)
    w /= w.sum()
    ln_tau0 = np.linspace(-9.0, 5.0, 1401)
    mean_f = (w[None, :] * np.exp(-np.exp(ln_tau0[:, None] + sigma * x[None, :]))).sum(axis=1)
    return np.log(-np.log(mean_f)), ln_tau0


def lognormal_tau0(tau_eff: np.ndarray, sigma: float) -> np.ndarray:
    """tau0 such that <exp(-tau0 exp(sigma g))> = exp(-tau_eff)."""
    ln_eff, ln_t0 = _lognormal_table(sigma)
    return np.exp(np.interp(np.log(np.maximum(tau_eff, 1e-4)), ln_eff, ln_t0))


def _unit_field(rng: np.random.Generator, n: int, corr_pix: float) -> np.ndarray:
    """A stationary Gaussian field of unit variance with a Gaussian correlation of ``corr_pix`` pixels."""
    half = int(np.ceil(4 * corr_pix))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / corr_pix) ** 2)
    k /= np.sqrt((k * k).sum())
    white = rng.standard_normal(n + 2 * half)
    return np.convolve(white, k, mode="valid")


def lyman_forest_tau(z_qso: float, rng: np.random.Generator, sigma: float | None = None,
                     corr_pix: float | None = None) -> np.ndarray:
    """Forest optical depth (Lyman alpha to epsilon) on the model grid, shape (MODEL_N,).

    ``sigma`` (ln tau scatter) and ``corr_pix`` default to FOREST_SIGMA and FOREST_CORRELATION_PIX.
    """
    sigma = FOREST_SIGMA if sigma is None else sigma
    corr_pix = FOREST_CORRELATION_PIX if corr_pix is None else corr_pix
    tau = np.zeros(MODEL_N)
    lya_f_lambda = LYMAN_SERIES[0][0] * LYMAN_SERIES[0][1]
    for lam0, f, _gamma in LYMAN_SERIES:
        n = int(np.searchsorted(MODEL_WAVE, lam0 * (1.0 + z_qso)))
        if n <= 0:
            continue
        z_abs = MODEL_WAVE[:n] / lam0 - 1.0
        tau0 = lognormal_tau0(tau_eff_becker(z_abs), sigma)
        ratio = lam0 * f / lya_f_lambda
        tau[:n] += ratio * tau0 * np.exp(sigma * _unit_field(rng, n, corr_pix))
    return tau


def madau_lyman_continuum_tau(z_qso: float) -> np.ndarray:
    """Madau (1995) mean photo-electric optical depth of the IGM below the Lyman limit, model grid."""
    x_em = 1.0 + z_qso
    x_c = MODEL_WAVE / LYMAN_LIMIT
    below = x_c < x_em
    xc = x_c[below]
    tau = np.zeros(MODEL_N)
    tau[below] = (0.25 * xc**3 * (x_em**0.46 - xc**0.46) + 9.4 * xc**1.5 * (x_em**0.18 - xc**0.18)
                  - 0.7 * xc**3 * (xc**-1.32 - x_em**-1.32) - 0.023 * (x_em**1.68 - xc**1.68))
    return np.maximum(tau, 0.0)


def voigt_tau(z_abs: float, log_n: float, b_kms: float = 30.0, n_lines: int = 2,
              window_aa: float | None = None) -> np.ndarray:
    """H I optical depth (model grid) of one absorber: Voigt Lyman lines plus the Lyman continuum."""
    tau = np.zeros(MODEL_N)
    col = 10.0**log_n
    wave_rest = MODEL_WAVE / (1.0 + z_abs)
    if window_aa is None:
        # damping wings: tau = 0.01 reached ~ sqrt(N) away from the centre
        window_aa = 8.0 + 60.0 * np.sqrt(col / 1e21)
    for lam0, f, gamma in LYMAN_SERIES[:n_lines]:
        sel = np.abs(wave_rest - lam0) < window_aa
        if not sel.any():
            continue
        nu = C_KMS * 1e13 / wave_rest[sel]  # Hz (c in A/s)
        nu0 = C_KMS * 1e13 / lam0
        sigma_nu = b_kms / C_KMS * nu0 / np.sqrt(2.0)
        tau[sel] += col * _PI_E2_MEC * f * voigt_profile(nu - nu0, sigma_nu, gamma / (4.0 * np.pi))
    ll = wave_rest < LYMAN_LIMIT
    tau[ll] += col * _SIGMA_LL * (wave_rest[ll] / LYMAN_LIMIT) ** 3
    return tau


# ---------------------------------------------------------------------------------------------------------------
# metal systems: Gaussian optical-depth profiles through a curve of growth

#: (rest A, optical depth relative to the system's reference line) per kind of system.
METAL_SYSTEMS: dict[str, tuple[tuple[float, float], ...]] = {
    "MgII": ((2796.35, 1.0), (2803.53, 0.5), (2600.17, 0.35), (2586.65, 0.10), (2382.77, 0.40),
             (2344.21, 0.15), (2852.96, 0.12)),
    "CIV": ((1548.20, 1.0), (1550.78, 0.5), (1393.76, 0.30), (1402.77, 0.15)),
    # low ionisation lines of a DLA (reference SiII 1526)
    "DLA": ((1260.42, 1.6), (1302.17, 1.0), (1334.53, 1.8), (1526.71, 1.0), (1608.45, 0.5), (1670.79, 1.5),
            (1548.20, 0.6), (1550.78, 0.3), (2796.35, 3.0), (2803.53, 1.5), (2600.17, 1.2), (2382.77, 1.2)),
}


@lru_cache(maxsize=1)
def _curve_of_growth() -> tuple[np.ndarray, np.ndarray]:
    """(W / (sigma_lambda), tau0) for a Gaussian optical-depth profile of peak tau0."""
    x = np.linspace(-12, 12, 4801)
    tau0 = np.logspace(-3, 6, 600)
    w = (1.0 - np.exp(-tau0[:, None] * np.exp(-0.5 * x[None, :] ** 2))).sum(axis=1) * (x[1] - x[0])
    return w, tau0


def tau0_for_ew(ew_over_sigma: float) -> float:
    """Peak optical depth of a Gaussian-tau line of equivalent width ``ew_over_sigma`` x its sigma."""
    w, t0 = _curve_of_growth()
    return float(np.exp(np.interp(np.log(ew_over_sigma), np.log(w), np.log(t0))))


def metal_system_tau(kind: str, z_abs: float, ew_ref: float, sigma_kms: float) -> np.ndarray:
    """Optical depth (model grid) of a metal system whose reference line has rest EW ``ew_ref`` A."""
    lines = METAL_SYSTEMS[kind]
    lam_ref = lines[0][0] if kind != "DLA" else 1526.71
    sigma_aa = lam_ref * sigma_kms / C_KMS
    tau0 = tau0_for_ew(ew_ref / sigma_aa)
    lam = np.array([l for l, _ in lines])
    rel = np.array([r for _, r in lines])
    centres = np.log10(lam * (1.0 + z_abs))
    return gaussian_peaks(centres, sigma_kms / C_KMS / LN10, tau0 * rel)


# ---------------------------------------------------------------------------------------------------------------
# one line of sight


@dataclass
class Sightline:
    """Intervening absorption towards one quasar."""

    tau: np.ndarray  # (MODEL_N,) total optical depth; transmission is exp(-tau)
    dlas: list[tuple[float, float]] = field(default_factory=list)  # (z_abs, log N_HI)
    n_lls: int = 0
    n_metal: int = 0

    @property
    def n_dla(self) -> int:
        return len(self.dlas)

    @property
    def max_log_nhi(self) -> float:
        return max((n for _, n in self.dlas), default=float("nan"))


def _poisson_redshifts(rng: np.random.Generator, z_lo: float, z_hi: float, rate, n_grid: int = 64) -> np.ndarray:
    """Redshifts of a Poisson process with density ``rate(z)`` per unit z on [z_lo, z_hi], sorted."""
    if z_hi <= z_lo:
        return np.empty(0)
    zg = np.linspace(z_lo, z_hi, n_grid)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate(zg[1:]) + rate(zg[:-1])) * np.diff(zg))])
    k = rng.poisson(cum[-1])
    return np.sort(np.interp(rng.random(k) * cum[-1], cum, zg))


def _dla_rate(z):
    return 0.17 * ((1.0 + z) / 3.5) ** 1.9


def _lls_rate(z):
    return ((1.0 + z) / 4.0) ** 2.0


def _mgii_rate(z):
    return 0.8 * ((1.0 + z) / 2.0) ** 0.5


def _civ_rate(z):
    return 1.2 + 0.0 * z


def sightline(z_qso: float, rng: np.random.Generator) -> Sightline:
    """Draw everything between us and a quasar at ``z_qso``; the model-grid optical depth and its inventory."""
    tau = np.zeros(MODEL_N)
    wmin, wmax = MODEL_WAVE[0], MODEL_WAVE[-1]
    # absorbers within 3000 km/s of the quasar are "associated", not intervening: leave them out
    z_max = (1.0 + z_qso) * (1.0 - 3000.0 / C_KMS) - 1.0
    if wmin < LYA * (1.0 + z_qso):
        tau += lyman_forest_tau(z_qso, rng)
        tau += 0.5 * madau_lyman_continuum_tau(z_qso)
    out = Sightline(tau=tau)

    z_lya_min = wmin / LYA - 1.0
    # Lyman-limit systems
    z_lls = _poisson_redshifts(rng, z_lya_min, z_max, _lls_rate)
    for z in z_lls:
        log_n = 17.2 - np.log10(1.0 - rng.random() * (1.0 - 10 ** (-0.5 * 3.1))) / 0.5
        tau += voigt_tau(z, min(log_n, 20.29), b_kms=rng.uniform(20, 40), window_aa=25.0)
    out.n_lls = len(z_lls)

    # DLAs: f(N) ~ N^-2 (p(log N) ~ 10^-logN) steepening above 10^21.5
    for z in _poisson_redshifts(rng, z_lya_min, z_max, _dla_rate):
        while True:
            u, v = rng.random(2)
            log_n = 20.3 - np.log10(1.0 - u * (1.0 - 10 ** -2.0))
            if log_n <= 21.5 or v < 10 ** (-(log_n - 21.5)):
                break
        tau += voigt_tau(z, log_n, b_kms=rng.uniform(20, 50))
        tau += metal_system_tau("DLA", z, ew_ref=rng.uniform(0.2, 1.0), sigma_kms=rng.uniform(40, 90))
        out.dlas.append((float(z), float(log_n)))

    # intervening metal systems, wherever their lines land in the spectrum
    n_metal = 0
    for kind, lam_ref, rate, w_min, w_star in (("MgII", 2796.35, _mgii_rate, 0.3, 0.7),
                                               ("CIV", 1548.20, _civ_rate, 0.2, 0.4)):
        for z in _poisson_redshifts(rng, max(wmin / lam_ref - 1.0, 0.0), min(z_max, wmax / lam_ref - 1.0), rate):
            ew = w_min + rng.exponential(w_star)
            sigma_kms = float(np.clip(ew / lam_ref * C_KMS / 3.0, 40.0, 250.0))
            tau += metal_system_tau(kind, z, ew, sigma_kms)
            n_metal += 1
    out.n_metal = n_metal
    return out
