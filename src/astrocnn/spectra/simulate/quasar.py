"""Quasars: continuum, broad and narrow lines, Fe II and Balmer continuum, host galaxy, reddening and BALs.

Continuum (shape of Temple et al. 2021, qsogen): f_nu ~ nu^alpha with a break at 3880 A, 0.94 bluer above
it, and 1.0 softer below 1200 A (the extreme-UV turn-over); a ~1240 K hot-dust blackbody normalised to ~3x the
power law at 2 micron; SMC dust with E(B-V) ~ exponential(0.03). Design choice: the intrinsic alpha is
N(-0.2, 0.3) rather than Temple's -0.35, because our SMC reddening (median E(B-V) 0.02) and host galaxies
redden a median composite by ~0.25: the composite then has alpha_nu ~ -0.47 over 1350-4230 A, close to
Vanden Berk et al. (2001)'s -0.44.

Broad lines: rest equivalent widths chosen so that a median composite of simulated quasars measures the design
table (Vanden Berk et al. 2001 values; a median stack of lines of varying width and strength shows ~15% less
than the median line), FWHMs typical of single quasars, each line a core + wing pair of Gaussians. Balmer
and a few other lines follow flux ratios to H-beta instead (see FLUX_RATIOS_TO_HB). The CIV blueshift is
lognormal (median 800 km/s, tail to ~5000 km/s); SiIV, NV, Ly-alpha and HeII share a fraction of it; EWs
scatter by ~0.15 dex in common and 0.1 dex per line, fall with luminosity (Baldwin effect, EW ~ L^beta) and
CIV weakens as its blueshift grows.

Small blue bump: a Balmer continuum (Grandi 1982; T_e = 15000 K, tau = 1 at the edge) with the high-order
Balmer lines merging into it, and Fe II built from multiplet lines (UV 2200-3090 A: clusters at the UV1,
UV2/3, UV62/63, UV60/78 positions plus a fixed blend of weaker lines; optical multiplets 37/38, 42, 48/49),
broadened with the object's line width, so the bump has multiplet texture, not one smooth hump.

Narrow lines: [OIII] 4960/5008 (1:2.98, with a blueshifted wing), [OII], [NeV], [NeIII], narrow Balmer,
[NII], [SII], [OI]; [OIII] anti-correlates with optical Fe II (eigenvector 1).

Host galaxy (z < 1.2): a kcorrect-template mixture whose share of the 4000-5000 A flux is 0.24 at M_i = -23,
falling for brighter quasars as L^-0.8 (Temple et al. 2021), with 0.2 dex scatter.

BALs: troughs at 0-29,000 km/s blueward of CIV, SiIV, NV, Ly-alpha and OVI (depth ratios fixed per ion);
LoBALs add AlIII, CII and MgII troughs at the lower velocities of the trough.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import expit

from astrocnn.spectra.lines import QSO_LINES
from astrocnn.spectra.simulate.common import C_KMS, LN10, MODEL_LOGLAM, MODEL_WAVE, gaussian_lines, gaussian_smooth_log, log_uniform, \
    planck_lambda, shift_resample
from astrocnn.spectra.simulate.dust import smc_extinction
from astrocnn.spectra.simulate.forest import sightline
from astrocnn.spectra.simulate.galaxy import galaxy_templates, on_model_grid, template_mix

ALPHA_MEAN = -0.2
ALPHA_SIGMA = 0.3
ALPHA_BREAK_AA = 3880.0
ALPHA_STEP_RED = 0.94   # Temple et al.: -0.35 -> +0.59
EUV_BREAK_AA = 1200.0
EUV_STEP = -1.0
EBV_SCALE = 0.03
#: Luminosity at which the line EWs take their table values (median M_i of the simulated quasars).
M_I_REFERENCE = -25.0

#: Broad lines: (name, rest vacuum A, EW A, FWHM median / low / high km/s, share of the CIV blueshift,
#: Baldwin slope beta in EW ~ L^beta). The EWs of the lines in FLUX_RATIOS_TO_HB are replaced by their flux
#: ratio to H-beta (the listed values are what those ratios give on a typical continuum, for reference).
BROAD_LINES: tuple[tuple[str, float, float, float, float, float, float, float], ...] = (
    ("OVI", 1033.82, 9.0, 5000, 3000, 8000, 0.3, -0.15),
    ("Lya", QSO_LINES["Lya"], 95.0, 4000, 3000, 6000, 0.15, -0.10),
    ("NV", QSO_LINES["NV"], 25.0, 4500, 3000, 7000, 0.4, -0.10),
    ("OI1305", 1304.35, 2.0, 3500, 2500, 5000, 0.0, 0.0),
    ("CII1335", 1335.31, 0.7, 3500, 2500, 5000, 0.0, 0.0),
    ("SiIV", QSO_LINES["SiIV"], 9.8, 5000, 4000, 6000, 0.5, -0.10),
    ("CIV", QSO_LINES["CIV"], 44.0, 5000, 3000, 8000, 1.0, -0.20),
    ("HeII1640", QSO_LINES["HeII"], 1.5, 5000, 3000, 8000, 0.5, -0.20),
    ("OIII]1663", 1663.50, 0.6, 4000, 3000, 6000, 0.3, 0.0),
    ("AlIII", 1857.40, 0.6, 5000, 4000, 7000, 0.1, 0.0),
    ("SiIII]", 1892.03, 1.5, 4500, 3500, 6000, 0.1, 0.0),
    ("CIII]", QSO_LINES["CIII]"], 22.5, 5500, 4000, 7000, 0.1, -0.10),
    ("CII]2326", 2326.44, 1.5, 4500, 3000, 6000, 0.0, 0.0),
    ("[NeIV]2424", 2423.83, 0.5, 3000, 2000, 5000, 0.0, 0.0),
    ("MgII", QSO_LINES["MgII"], 45.0, 4000, 2500, 6000, 0.0, -0.10),
    ("He", 3971.20, 3.0, 4500, 2500, 8000, 0.0, 0.0),
    ("Hd", QSO_LINES["Hd"], 6.0, 4500, 2500, 8000, 0.0, 0.0),
    ("Hg", QSO_LINES["Hg"], 13.0, 4500, 2000, 8000, 0.0, 0.0),
    ("HeII4687", 4687.02, 1.5, 4500, 3000, 8000, 0.0, 0.0),
    ("Hb", QSO_LINES["Hb"], 72.0, 4000, 2000, 8000, 0.0, 0.0),
    ("HeI5877", 5877.25, 6.0, 4500, 3000, 8000, 0.0, 0.0),
    ("Ha", QSO_LINES["Ha"], 195.0, 3500, 2000, 6000, 0.0, 0.0),
    ("OI8446", 8446.36, 6.0, 3500, 2500, 6000, 0.0, 0.0),
)

#: Narrow lines: (name, rest vacuum A, median EW A). They scale together with [OIII] 5008.
NARROW_LINES: tuple[tuple[str, float, float], ...] = (
    ("[NeV]3426", 3426.85, 1.0), ("[OII]3727", 3727.09, 0.9), ("[OII]3730", 3729.88, 1.1),
    ("[NeIII]3869", 3869.81, 1.3), ("Hb_n", 4862.68, 1.3), ("[OIII]4960", 4960.30, 13.0 / 2.98),
    ("[OIII]5008", QSO_LINES["[OIII]"], 13.0), ("[OI]6302", 6302.05, 0.6), ("[NII]6550", 6549.86, 1.0),
    ("Ha_n", 6564.61, 4.5), ("[NII]6585", 6585.27, 3.0), ("[SII]6718", 6718.29, 1.0), ("[SII]6733", 6732.67, 0.9),
)

_BROAD_LAM = np.array([row[1] for row in BROAD_LINES])
_BROAD_EW = np.array([row[2] for row in BROAD_LINES])
_BROAD_FWHM = np.array([row[3:6] for row in BROAD_LINES], dtype=float)
_BROAD_SHIFT = np.array([row[6] for row in BROAD_LINES])
_BROAD_BETA = np.array([row[7] for row in BROAD_LINES])
_NARROW_LAM = np.array([row[1] for row in NARROW_LINES])
_NARROW_EW = np.array([row[2] for row in NARROW_LINES])
#: Lines set by their flux relative to broad H-beta rather than by an EW: with the blue accretion-disc slope
#: above 3880 A an EW table would make H-alpha far too weak (broad H-alpha/H-beta ~ 3-3.5: Dong et al. 2008
#: give a median of 3.06, the Vanden Berk composite ~4).
FLUX_RATIOS_TO_HB = {"Ha": 3.5, "Hg": 0.40, "Hd": 0.22, "He": 0.12, "HeI5877": 0.13, "OI8446": 0.10}
_NAMES = [row[0] for row in BROAD_LINES]
_RATIO_IDX = np.array([_NAMES.index(k) for k in FLUX_RATIOS_TO_HB])
_RATIO_VAL = np.array(list(FLUX_RATIOS_TO_HB.values()))
_I_CIV = [row[0] for row in BROAD_LINES].index("CIV")
_I_MGII = [row[0] for row in BROAD_LINES].index("MgII")
_I_HB = [row[0] for row in BROAD_LINES].index("Hb")
_HIGH_IONISATION = np.isin([row[0] for row in BROAD_LINES], ["CIV", "HeII1640", "SiIV", "NV"])
#: A broad line is a core (fraction 0.55) and a wing 2.5x wider; together their FWHM is 2.78 core sigmas.
_CORE_FRACTION, _WING_RATIO, _FWHM_PER_CORE_SIGMA = 0.55, 2.5, 2.78

# ---------------------------------------------------------------------------------------------------------------
# Fe II and Balmer-continuum templates on a rest grid

QSO_REST_LOGLAM0 = np.log10(900.0)
QSO_REST_DLOG = 1e-4
QSO_REST_N = 9210  # to 7500 A
QSO_REST_WAVE = 10.0 ** (QSO_REST_LOGLAM0 + QSO_REST_DLOG * np.arange(QSO_REST_N))
FWHM_LEVELS = (1500.0, 2500.0, 3500.0, 5000.0, 7000.0)

#: UV Fe II emission clusters (vacuum A centre, half width A, relative strength): UV2/3 at 2330-2420,
#: UV1 at 2580-2640, UV62/63 at 2740-2760, UV60/78 at 2930-2990, and weaker groups between.
_FEII_UV_CLUSTERS = (
    (2260, 12, 0.15), (2330, 18, 0.55), (2385, 22, 1.0), (2415, 12, 0.5), (2470, 20, 0.35), (2530, 18, 0.30),
    (2565, 12, 0.25), (2605, 22, 1.0), (2630, 12, 0.5), (2745, 18, 0.6), (2800, 25, 0.25), (2845, 15, 0.2),
    (2880, 15, 0.15), (2950, 25, 0.7), (2975, 15, 0.35), (3035, 20, 0.2), (3070, 15, 0.12),
)
#: Optical Fe II multiplets 37/38, 42 and 48/49 (air A, relative strength).
_FEII_OPT_AIR = (
    (4173.5, 0.3), (4233.2, 0.4), (4303.2, 0.3), (4385.4, 0.3), (4416.8, 0.3), (4473.0, 0.3), (4491.4, 0.4),
    (4508.3, 0.6), (4515.3, 0.5), (4520.2, 0.4), (4522.6, 0.7), (4549.5, 0.8), (4555.9, 0.5), (4576.3, 0.4),
    (4582.8, 0.35), (4583.8, 0.9), (4620.5, 0.3), (4629.3, 0.6), (4923.9, 1.0), (5018.4, 1.2), (5169.0, 1.2),
    (5197.6, 0.6), (5234.6, 0.6), (5264.8, 0.3), (5276.0, 0.7), (5284.1, 0.4), (5316.6, 0.9), (5325.6, 0.3),
    (5362.9, 0.4), (5425.3, 0.3), (5534.9, 0.4),
)


def air_to_vacuum(wave_air: np.ndarray) -> np.ndarray:
    """Air to vacuum wavelengths (Angstrom), Morton (2000)."""
    w = np.asarray(wave_air, dtype=np.float64)
    s2 = (1e4 / w) ** 2
    return w * (1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2))


@dataclass(frozen=True)
class _QsoTemplates:
    """(len(FWHM_LEVELS), 3, QSO_REST_N): UV Fe II (unit integral over 2200-3090 A), optical Fe II (unit
    integral over 4434-4684 A) and Balmer continuum + high-order Balmer lines (1 at the edge)."""

    flux: np.ndarray


@lru_cache(maxsize=1)
def qso_templates() -> _QsoTemplates:
    rng = np.random.default_rng(2001)  # fixed: the Fe II blend is the same for every quasar
    wave = QSO_REST_WAVE
    pix = wave * LN10 * QSO_REST_DLOG
    one_pix = QSO_REST_DLOG

    uv_lam, uv_str = [], []
    for c, half, s in _FEII_UV_CLUSTERS:
        lam = c + rng.uniform(-half, half, 6)
        uv_lam.append(lam), uv_str.append(s * rng.dirichlet(np.ones(6)))
    n_fill = 250
    uv_lam.append(rng.uniform(2200.0, 3090.0, n_fill)), uv_str.append(rng.exponential(0.45 * 3.0 / n_fill, n_fill))
    uv_lam, uv_str = np.concatenate(uv_lam), np.concatenate(uv_str)
    opt = np.array(_FEII_OPT_AIR)
    opt_lam = np.concatenate([air_to_vacuum(opt[:, 0]), rng.uniform(4400, 4700, 30), rng.uniform(5100, 5600, 40)])
    opt_str = np.concatenate([opt[:, 1], rng.exponential(0.06, 70)])

    def lines(lam, s):
        return gaussian_lines(np.log10(lam), one_pix, s, loglam0=QSO_REST_LOGLAM0, dlog=QSO_REST_DLOG, n=QSO_REST_N)

    uv = lines(uv_lam, uv_str)
    uv /= (uv * pix)[(wave >= 2200) & (wave <= 3090)].sum()
    op = lines(opt_lam, opt_str)
    op /= (op * pix)[(wave >= 4434) & (wave <= 4684)].sum()

    edge = 3646.0
    bc = np.where(wave <= edge, planck_lambda(wave, 15000.0) * (1.0 - np.exp(-(wave / edge) ** 3)), 0.0)
    bc /= planck_lambda(np.array(edge), 15000.0) * (1.0 - np.exp(-1.0))
    n_up = np.arange(8, 41)
    lam_n = 1e8 / (109677.58 * (0.25 - 1.0 / n_up**2))
    bc += lines(lam_n, 6.0 * (8.0 / n_up) ** 2.5)

    pix_kms = C_KMS * LN10 * QSO_REST_DLOG
    # the Balmer edge is smeared by bulk motions of at least ~5000 km/s FWHM (Grandi 1982; qsogen)
    levels = [np.vstack([gaussian_smooth_log(np.stack([uv, op]), f / 2.355 / pix_kms),
                         gaussian_smooth_log(bc, np.hypot(f, 5000.0) / 2.355 / pix_kms)]) for f in FWHM_LEVELS]
    arr = np.stack(levels)
    arr.setflags(write=False)
    return _QsoTemplates(flux=arr)


def _blue_bump_on_grid(z: float, fwhm_kms: float, amplitudes: np.ndarray) -> np.ndarray:
    """Fe II (UV, optical) + Balmer continuum on the model grid for a line width ``fwhm_kms``."""
    t = qso_templates().flux
    lv = np.log(FWHM_LEVELS)
    x = float(np.clip(np.log(fwhm_kms), lv[0], lv[-1]))
    j = int(min(np.searchsorted(lv, x, side="right") - 1, lv.size - 2))
    a = (x - lv[j]) / (lv[j + 1] - lv[j])
    rest = amplitudes @ ((1.0 - a) * t[j] + a * t[j + 1])
    return shift_resample(QSO_REST_LOGLAM0, QSO_REST_DLOG, rest, MODEL_LOGLAM, np.log10(1.0 + z))


# ---------------------------------------------------------------------------------------------------------------
# one quasar


def _power_law(rest: np.ndarray, a1: float, a2: float, a3: float) -> np.ndarray:
    """Broken power law in f_lambda (f_nu ~ nu^alpha -> f_lambda ~ lambda^(-alpha-2)), 1 at the 3880 A break."""
    x = rest / ALPHA_BREAK_AA
    out = np.where(rest >= ALPHA_BREAK_AA, x ** (-a2 - 2.0), x ** (-a1 - 2.0))
    euv = rest < EUV_BREAK_AA
    xb = EUV_BREAK_AA / ALPHA_BREAK_AA
    out[euv] = xb ** (-a1 - 2.0) * (rest[euv] / EUV_BREAK_AA) ** (-a3 - 2.0)
    return out


#: BAL ions: (rest A, optical depth relative to CIV, low ionisation).
_BAL_IONS = ((1549.06, 1.0, False), (1397.61, 0.55, False), (1240.81, 0.9, False), (1215.67, 0.6, False),
             (1033.82, 0.8, False), (1857.40, 0.5, True), (1335.31, 0.35, True), (2798.75, 0.6, True))


def bal_tau(rest: np.ndarray, rng: np.random.Generator, lobal: bool) -> np.ndarray:
    """Optical depth of broad absorption troughs at rest wavelengths ``rest`` (outflow velocities > 0)."""
    troughs = []
    v_start = rng.uniform(0.0, 12000.0)
    for k in range(1 + int(rng.random() < 0.3)):
        width = log_uniform(rng, 2000.0, 15000.0)
        v_lo = v_start if k == 0 else troughs[-1][1] + rng.uniform(1000.0, 5000.0)
        v_hi = min(v_lo + width, 29000.0)
        if v_hi - v_lo < 1000.0:
            break
        troughs.append((v_lo, v_hi, log_uniform(rng, 0.7, 6.0), rng.uniform(300.0, 1500.0),
                        rng.uniform(1500.0, 5000.0), rng.uniform(0, 2 * np.pi), rng.uniform(-0.5, 0.3)))
    tau = np.zeros_like(rest)
    for lam, strength, low in _BAL_IONS:
        if low and not lobal:
            continue
        v = C_KMS * (1.0 - rest / lam)
        sel = (v > -3000.0) & (v < 32000.0)
        if not sel.any():
            continue
        vs = v[sel]
        tv = np.zeros_like(vs)
        for v_lo, v_hi, tmax, soft, period, phase, slope in troughs:
            prof = expit((vs - v_lo) / soft) * expit((v_hi - vs) / soft)
            prof *= (1.0 + 0.3 * np.sin(2 * np.pi * vs / period + phase)) * (
                1.0 + slope * np.clip((vs - v_lo) / (v_hi - v_lo), 0.0, 1.0))
            if low:
                prof *= expit((v_lo + 0.5 * (v_hi - v_lo) - vs) / soft)
            tv += tmax * prof
        tau[sel] += strength * tv
    return tau


def bal_probability(z: float) -> tuple[float, float]:
    """(P(BAL), P(LoBAL | BAL)). CIV troughs are visible from z ~ 1.57; below only LoBALs (MgII) are seen."""
    return (0.13, 0.10) if z >= 1.57 else (0.013, 1.0)


@dataclass
class Quasar:
    model: np.ndarray            # (MODEL_N,) f_lambda with all absorption, arbitrary scale
    unabsorbed: np.ndarray       # (MODEL_N,) the same without intervening (IGM, DLA, metal) absorption
    lines: tuple[np.ndarray, np.ndarray, np.ndarray]  # narrow lines, same scale
    truth: dict


def simulate_quasar(rng: np.random.Generator, z: float, abs_mag: float) -> Quasar:
    """A quasar at ``z`` with absolute magnitude ``abs_mag`` (M_i), noiseless, arbitrary flux scale."""
    # Long because the spectrum is built component by component (continuum, dust, lines, Fe II, host,
    # reddening, absorbers) from one random stream in a fixed order: the order fixes the simulated bytes.
    rest = MODEL_WAVE / (1.0 + z)
    lum = -0.4 * (abs_mag - M_I_REFERENCE)  # log10 L / L_ref

    a1 = rng.normal(ALPHA_MEAN, ALPHA_SIGMA)
    a2 = a1 + ALPHA_STEP_RED + rng.normal(0.0, 0.15)
    a3 = a1 + EUV_STEP
    ebv = float(min(rng.exponential(EBV_SCALE), 0.5))
    t_dust = rng.normal(1240.0, 60.0)
    bbnorm = 10 ** rng.normal(np.log10(3.0), 0.15)

    def continuum(lam):
        pl = _power_law(np.atleast_1d(np.asarray(lam, dtype=np.float64)), a1, a2, a3)
        pl2 = _power_law(np.array([20000.0]), a1, a2, a3)[0]
        return pl + bbnorm * pl2 * planck_lambda(lam, t_dust) / planck_lambda(np.array(20000.0), t_dust)

    # broad lines
    civ_blueshift = float(min(np.exp(rng.normal(np.log(800.0), 0.75)), 6000.0))
    fwhm_common = rng.normal(0.0, 0.12)
    fwhm = np.exp(np.log(_BROAD_FWHM[:, 0]) + LN10 * (fwhm_common + rng.normal(0.0, 0.07, _BROAD_LAM.size)))
    fwhm *= np.where(_BROAD_SHIFT > 0, 1.0 + 0.1 * _BROAD_SHIFT * civ_blueshift / 1000.0, 1.0)
    fwhm = np.clip(fwhm, _BROAD_FWHM[:, 1], _BROAD_FWHM[:, 2])
    log_ew = (np.log10(_BROAD_EW) + rng.normal(0.0, 0.15) + rng.normal(0.0, 0.1, _BROAD_LAM.size)
              + _BROAD_BETA * lum)
    log_ew -= np.where(_HIGH_IONISATION, 0.12 * (civ_blueshift / 1000.0 - 0.8) * np.where(
        np.arange(_BROAD_LAM.size) == _I_CIV, 1.0, 0.5), 0.0)
    ew = 10**log_ew
    shift = -_BROAD_SHIFT * civ_blueshift
    cont_at = continuum(_BROAD_LAM)
    line_flux = ew * cont_at * (1.0 + z)
    line_flux[_RATIO_IDX] = line_flux[_I_HB] * _RATIO_VAL * 10 ** rng.normal(0.0, 0.08, _RATIO_IDX.size)
    ew = line_flux / (cont_at * (1.0 + z))
    sig_core = fwhm / _FWHM_PER_CORE_SIGMA / C_KMS / LN10
    centres = np.log10(_BROAD_LAM * (1.0 + z))
    c_core = centres + np.log10(1.0 + shift / C_KMS)
    c_wing = centres + np.log10(1.0 + 1.5 * shift / C_KMS)
    broad = gaussian_lines(np.concatenate([c_core, c_wing]),
                           np.concatenate([sig_core, _WING_RATIO * sig_core]),
                           np.concatenate([_CORE_FRACTION * line_flux, (1 - _CORE_FRACTION) * line_flux]))

    # Fe II and Balmer continuum
    ew_feii_uv = 10 ** rng.normal(np.log10(55.0), 0.2)
    r_feii = 10 ** rng.normal(np.log10(0.45), 0.2)
    bc_frac = 10 ** rng.normal(np.log10(0.25), 0.15)
    amps = np.array([ew_feii_uv * continuum(2600.0)[0], r_feii * ew[_I_HB] * continuum(4570.0)[0],
                     bc_frac * continuum(3646.0)[0]])
    bump = _blue_bump_on_grid(z, fwhm[_I_MGII], amps)

    redden = 10 ** (-0.4 * ebv * smc_extinction(rest))
    intrinsic = (continuum(rest) + broad + bump) * redden

    # narrow lines (not absorbed by BAL outflows, reddened like the rest)
    narrow_scale = (r_feii / 0.45) ** -0.8 * 10 ** (rng.normal(0.0, 0.3) - 0.3 * lum)
    nl_ew = _NARROW_EW * narrow_scale * 10 ** rng.normal(0.0, 0.1, _NARROW_LAM.size)
    nl_flux = nl_ew * continuum(_NARROW_LAM) * 10 ** (-0.4 * ebv * smc_extinction(_NARROW_LAM)) * (1.0 + z)
    fwhm_n = rng.uniform(300.0, 800.0)
    sig_n = fwhm_n / 2.355 / C_KMS / LN10
    wing_shift = rng.normal(-150.0, 100.0)
    nl_c = np.log10(_NARROW_LAM * (1.0 + z))
    is_oiii = np.isin(_NARROW_LAM, (4960.30, 5008.24))
    lines = (np.concatenate([nl_c, nl_c[is_oiii] + np.log10(1.0 + wing_shift / C_KMS)]),
             np.concatenate([np.full(nl_c.size, sig_n), np.full(int(is_oiii.sum()), 2.5 * sig_n)]),
             np.concatenate([nl_flux * np.where(is_oiii, 0.7, 1.0), 0.3 * nl_flux[is_oiii]]))

    # broad absorption lines
    p_bal, p_lobal = bal_probability(z)
    bal = bool(rng.random() < p_bal)
    lobal = bool(bal and rng.random() < p_lobal)
    if bal:
        intrinsic *= np.exp(-bal_tau(rest, rng, lobal))

    # host galaxy
    host_frac = 0.0
    if z < 1.2:
        weights = rng.dirichlet([3.0, 0.3, 2.0, 3.0, 0.5, 2.0])
        ratio = (1.0 / 0.24 - 1.0) * 10 ** (-0.4 * 0.8 * (abs_mag + 23.0)) * 10 ** rng.normal(0.0, 0.2)
        host_frac = 1.0 / (1.0 + ratio)
        qso_4500 = float(continuum(4500.0)[0] * 10 ** (-0.4 * ebv * smc_extinction(np.array([4500.0]))[0]))
        host_mean = float(weights @ galaxy_templates().mean_4000_5000)
        host = on_model_grid(template_mix(weights, 200.0), z) * (host_frac / (1.0 - host_frac)) * qso_4500 / host_mean
        intrinsic = intrinsic + host

    # intervening absorption
    los = sightline(z, rng)
    model = intrinsic * np.exp(-los.tau)

    truth = {
        "subclass": "LOBAL" if lobal else "BAL" if bal else "BROADLINE",
        "bal": bal, "lobal": lobal, "n_dla": los.n_dla, "max_log_nhi": los.max_log_nhi, "n_lls": los.n_lls,
        "n_metal_abs": los.n_metal, "alpha": float(a1), "ebv": ebv, "civ_shift_kms": -civ_blueshift,
        "fwhm_kms": float(fwhm[_I_MGII]), "host_frac": float(host_frac), "abs_mag": float(abs_mag),
        "oiii_ew": float(nl_ew[list(_NARROW_LAM).index(5008.24)]), "civ_ew": float(ew[_I_CIV]),
    }
    return Quasar(model=model, unabsorbed=intrinsic, lines=lines, truth=truth)
