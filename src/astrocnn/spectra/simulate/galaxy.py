"""Galaxies: stellar-population continua from kcorrect's templates, dust, velocity dispersion, nebular lines.

Continua are mixtures of the six spectral templates that ship with kcorrect (Blanton & Roweis 2007; BSD-3):
the five NMF templates of ``kcorrect-default-v4.fits`` and the LRG template of ``kcorrect-lrg1-v4.fits``.
They are stellar-population synthesis spectra (Bruzual & Charlot 2003 based), so the 4000 A break, Ca H&K,
the G band, Mg b, Na D, the Ca triplet and Balmer absorption come from the templates, not from us.

Template preparation, once per process:

1. Nebular emission in the templates (templates 0-3 carry [OII], Balmer, [OIII], [NII], [SII], [SIII],
   Paschen and, for the old template, UV lines) is removed: each line window is replaced by an emission-free
   reference template scaled to the window edges (the A-star-like template 4 under the Balmer lines, the
   LRG template elsewhere), so Balmer absorption survives under the removed emission. We add our own lines
   with controlled ratios.
2. The templates are tabulated at 3.7e-4 dex (257 km/s) per pixel: they are resampled by cubic spline to a
   1e-4 dex rest grid and Gaussian-smoothed to velocity dispersions of 100, 200 and 300 km/s (allowing
   ~150 km/s already in the coarse templates, and at least 60 km/s of smoothing to remove spline ringing).
   An object's dispersion interpolates between neighbouring levels.

Emission lines: Case-B Balmer ratios (H-alpha/H-beta 2.863, H-gamma 0.468, H-delta 0.259), BPT-consistent
[NII]/H-alpha and [OIII]/H-beta drawn along the star-forming sequence (log [NII]/Ha ~ N(-0.45, 0.15),
log [OIII]/Hb = 0.61/(x - 0.05) + 1.05 +- 0.15, so log [OIII]/Hb has mean ~ -0.2 and spread ~ 0.35),
[OIII] 4960:5008 = 1:2.98, [NII] 6550:6585 = 1:3, density-dependent [OII] and [SII] doublet ratios, Calzetti
dust with E(B-V)_gas = E(B-V)_stars / 0.44. ELGs are [OII]-dominated (low metallicity, high EW).

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.spectra.lines import GALAXY_EMISSION
from astrocnn.spectra.simulate.common import C_KMS, LN10, MODEL_LOGLAM, gaussian_smooth_log, shift_resample, truncated_normal
from astrocnn.spectra.simulate.dust import calzetti_k

# ---------------------------------------------------------------------------------------------------------------
# templates

REST_LOGLAM0 = 3.0  # 1000 A
REST_DLOG = 1e-4
REST_N = 10415      # to 11000 A
REST_WAVE = 10.0 ** (REST_LOGLAM0 + REST_DLOG * np.arange(REST_N))
VDISP_LEVELS = (100.0, 200.0, 300.0)
_TEMPLATE_SIGMA_KMS = 150.0  # effective dispersion already present in the coarse templates
_MIN_SMOOTH_KMS = 60.0
TEMPLATE_NAMES = ("old", "young", "intermediate", "old_metal_rich", "post_starburst", "lrg")

#: Nebular lines removed from the templates (rest vacuum A).
_TEMPLATE_EMISSION = (
    977.0, 1025.7, 1084.9, 1215.7, 1335.3, 1397.6, 1549.1, 1640.4, 1663.5, 1750.0, 1892.0, 1908.7, 2139.0,
    2326.4, 2471.0, 2799.0, 3426.9, 3728.5, 3869.8, 3889.0, 3970.0, 4102.9, 4341.7, 4364.4, 4862.7, 4960.3,
    5008.2, 5201.0, 5877.3, 6302.0, 6330.0, 6365.5, 6549.9, 6564.6, 6585.3, 6718.3, 6732.7, 7067.0, 7137.8,
    7325.0, 7751.0, 8750.0, 8865.0, 9017.0, 9071.1, 9232.0, 9533.2, 9548.6, 10052.1, 10941.0, 10833.0,
)
_BALMER = (3889.0, 3970.0, 4102.9, 4341.7, 4862.7, 6564.6, 8750.0, 8865.0, 9017.0, 9232.0, 9548.6, 10052.1,
           10941.0)


def _kcorrect_template_dir() -> Path:
    spec = importlib.util.find_spec("kcorrect")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, "the galaxy simulator needs kcorrect's templates: pip install 'kcorrect>=5.1' "
                               "(BSD-3; the templates ship inside the package, no download)")
    d = Path(list(spec.submodule_search_locations)[0]) / "data" / "templates"
    if not (d / "kcorrect-default-v4.fits").is_file():
        raise InputError(d / "kcorrect-default-v4.fits", "kcorrect is installed without its templates; "
                                                         "reinstall it: pip install --force-reinstall kcorrect")
    return d


def _read_kcorrect() -> tuple[np.ndarray, np.ndarray]:
    """(wave (10000,), flux (6, 10000)) of the kcorrect templates, f_lambda."""
    from astropy.io import fits

    d = _kcorrect_template_dir()
    with fits.open(d / "kcorrect-default-v4.fits") as hdul:
        wave = np.asarray(hdul["FLUX"].data["wave"][0], dtype=np.float64)
        flux = np.asarray(hdul["FLUX"].data["flux"][0], dtype=np.float64).reshape(-1, wave.size)
    with fits.open(d / "kcorrect-lrg1-v4.fits") as hdul:
        lrg = np.asarray(hdul["FLUX"].data["flux"][0], dtype=np.float64).reshape(-1, wave.size)
    return wave, np.vstack([flux, lrg])


def _emission_windows(wave: np.ndarray) -> list[tuple[int, int, bool]]:
    """Merged pixel windows (first, last, holds a Balmer line) around the template emission lines."""
    lw = np.log(wave)
    spans = []
    for lam0 in _TEMPLATE_EMISSION:
        half = (1800.0 if lam0 == 3728.5 else 1300.0) / C_KMS
        sel = np.flatnonzero(np.abs(lw - np.log(lam0)) < half)
        if sel.size:
            spans.append([max(sel[0] - 1, 0), min(sel[-1] + 1, wave.size - 1), lam0 in _BALMER])
    spans.sort()
    merged: list[list] = []
    for a, b, balmer in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][2] = merged[-1][2] or balmer
        else:
            merged.append([a, b, balmer])
    return [(int(a), int(b), bool(c)) for a, b, c in merged]


def _remove_emission(wave: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Replace the nebular-line windows of templates 0-3 by a clean reference scaled to the window edges.

    Under Balmer lines of the young templates the reference is the A-star-like template (keeps the Balmer
    absorption); in the optical it is the LRG template; in the UV, where the references are themselves
    noisy (below 3650 A), a straight line in log flux.
    """
    out = flux.copy()
    lw = np.log(wave)
    for j0, j1, balmer in _emission_windows(wave):
        t = (lw[j0:j1 + 1] - lw[j0]) / (lw[j1] - lw[j0])
        for i in range(4):
            if wave[j0] < 3650.0:
                lo, hi = np.log(max(out[i, j0], 1e-30)), np.log(max(out[i, j1], 1e-30))
                out[i, j0:j1 + 1] = np.exp(lo + (hi - lo) * t)
                continue
            ref = flux[4] if (balmer and i in (1, 2)) else flux[5]
            r0 = out[i, j0] / max(ref[j0], 1e-30)
            r1 = out[i, j1] / max(ref[j1], 1e-30)
            out[i, j0:j1 + 1] = ref[j0:j1 + 1] * (r0 + (r1 - r0) * t)
    return out


@dataclass(frozen=True)
class GalaxyTemplates:
    """Emission-free templates on the rest grid ``REST_WAVE``.

    ``flux``: (len(VDISP_LEVELS), 6, REST_N) f_lambda with unit mean over 5400-5600 A.
    ``d4000_red``/``d4000_blue``: (6,) mean f_nu over 4000-4100 and 3850-3950 A (narrow 4000 A break).
    ``mean_4000_5000``: (6,) mean f_lambda over 4000-5000 A (host-galaxy normalisation of quasars).
    """

    flux: np.ndarray
    d4000_red: np.ndarray
    d4000_blue: np.ndarray
    mean_4000_5000: np.ndarray


@lru_cache(maxsize=1)
def galaxy_templates() -> GalaxyTemplates:
    from scipy.interpolate import CubicSpline

    wave, flux = _read_kcorrect()
    flux = _remove_emission(wave, np.maximum(flux, 0.0))
    spline = CubicSpline(np.log10(wave), flux, axis=1)
    fine = np.maximum(spline(np.log10(REST_WAVE)), 0.0)
    norm = fine[:, (REST_WAVE > 5400) & (REST_WAVE < 5600)].mean(axis=1)
    fine /= norm[:, None]
    pix_kms = C_KMS * LN10 * REST_DLOG
    levels = []
    for v in VDISP_LEVELS:
        s = np.sqrt(max(v**2 - _TEMPLATE_SIGMA_KMS**2, 0.0) + _MIN_SMOOTH_KMS**2) / pix_kms
        levels.append(gaussian_smooth_log(fine, s))
    arr = np.stack(levels)
    fnu = fine * REST_WAVE**2
    red = fnu[:, (REST_WAVE >= 4000) & (REST_WAVE <= 4100)].mean(axis=1)
    blue = fnu[:, (REST_WAVE >= 3850) & (REST_WAVE <= 3950)].mean(axis=1)
    m45 = fine[:, (REST_WAVE >= 4000) & (REST_WAVE <= 5000)].mean(axis=1)
    for a in (arr, red, blue, m45):
        a.setflags(write=False)
    return GalaxyTemplates(flux=arr, d4000_red=red, d4000_blue=blue, mean_4000_5000=m45)


def template_mix(weights: np.ndarray, vdisp_kms: float) -> np.ndarray:
    """Rest-grid f_lambda (REST_N,) of a template mixture at velocity dispersion ``vdisp_kms``."""
    t = galaxy_templates()
    lv = np.asarray(VDISP_LEVELS)
    v = float(np.clip(vdisp_kms, lv[0], lv[-1]))
    j = int(min(np.searchsorted(lv, v, side="right") - 1, lv.size - 2))
    a = (v - lv[j]) / (lv[j + 1] - lv[j])
    return (1.0 - a) * (weights @ t.flux[j]) + a * (weights @ t.flux[j + 1])


def on_model_grid(rest_flux: np.ndarray, z: float) -> np.ndarray:
    """A rest-grid spectrum redshifted onto the model grid (f_lambda evaluated at lambda / (1 + z))."""
    return shift_resample(REST_LOGLAM0, REST_DLOG, rest_flux, MODEL_LOGLAM, np.log10(1.0 + z))


# ---------------------------------------------------------------------------------------------------------------
# samples


@dataclass(frozen=True)
class GalaxySample:
    """A spectroscopic target sample: redshift law, fibre-magnitude range and the galaxy types it holds.

    ``z``: (mean, sigma, lo, hi) of a truncated normal, or for MAIN a lognormal (median, sigma_ln, lo, hi).
    ``mag``: (lo, hi, slope) of i-band fibre magnitudes, dN/dm ~ 10**(slope m).
    ``types``: probabilities of "passive", "starforming", "elg".
    """

    name: str
    weight: float
    z: tuple[float, float, float, float]
    z_lognormal: bool
    mag: tuple[float, float, float]
    p_legacy: float
    types: tuple[float, float, float]


#: Design choice: the mix of galaxy samples (SDSS Main; SDSS LRG + BOSS LOWZ; BOSS CMASS; eBOSS LRG; eBOSS ELG).
GALAXY_SAMPLES: tuple[GalaxySample, ...] = (
    GalaxySample("MAIN", 0.35, (0.10, 0.45, 0.01, 0.33), True, (17.0, 18.9, 0.3), 0.5, (0.4, 0.6, 0.0)),
    GalaxySample("LRG", 0.15, (0.30, 0.09, 0.15, 0.45), False, (18.6, 20.0, 0.4), 0.2, (0.9, 0.1, 0.0)),
    GalaxySample("CMASS", 0.25, (0.55, 0.08, 0.43, 0.70), False, (18.9, 20.2, 0.4), 0.0, (0.85, 0.15, 0.0)),
    GalaxySample("EBOSS_LRG", 0.08, (0.75, 0.10, 0.60, 1.00), False, (20.3, 21.3, 0.4), 0.0, (0.9, 0.1, 0.0)),
    GalaxySample("ELG", 0.17, (0.85, 0.12, 0.60, 1.10), False, (21.3, 22.6, 0.3), 0.0, (0.0, 0.0, 1.0)),
)

#: Dirichlet concentrations over the six templates per galaxy type.
_MIX = {
    "passive": np.array([3.0, 0.05, 0.3, 3.0, 0.2, 4.0]),
    "starforming": np.array([1.0, 1.0, 3.0, 1.0, 1.0, 0.3]),
    "elg": np.array([0.2, 4.0, 2.0, 0.2, 1.0, 0.1]),
}

# nebular lines: (rest vacuum A, key)
_HA, _HE, _H8 = GALAXY_EMISSION["Ha"], 3971.20, 3890.17


@dataclass
class Galaxy:
    """A galaxy ready to observe: model-grid continuum, narrow lines and its truth."""

    model: np.ndarray  # (MODEL_N,) f_lambda, arbitrary scale
    lines: tuple[np.ndarray, np.ndarray, np.ndarray]  # centres log10 A (observed), sigma dex, fluxes
    truth: dict


def draw_galaxy_redshift(rng: np.random.Generator, sample: GalaxySample) -> float:
    a, b, lo, hi = sample.z
    if sample.z_lognormal:
        return float(np.exp(truncated_normal(rng, np.log(a), b, np.log(lo), np.log(hi))))
    return truncated_normal(rng, a, b, lo, hi)


def _line_ratios(rng: np.random.Generator, kind: str) -> tuple[dict[str, float], bool]:
    """Line fluxes relative to intrinsic H-beta = 1, and whether the galaxy sits on the AGN branch of the BPT."""
    agn = kind == "liner" or (kind == "starforming" and rng.random() < 0.08)
    if kind == "liner":
        x, y = rng.normal(0.15, 0.15), rng.normal(0.1, 0.25)
        oii, sii, oi = rng.normal(0.7, 0.2), rng.normal(-0.2, 0.12), rng.normal(-0.8, 0.15)
    elif agn:
        x, y = rng.normal(0.0, 0.15), rng.normal(0.5, 0.25)
        oii, sii, oi = rng.normal(0.5, 0.2), rng.normal(-0.35, 0.12), rng.normal(-1.0, 0.2)
    else:
        x = min(rng.normal(-0.75 if kind == "elg" else -0.45, 0.15), -0.15)
        y = 0.61 / (x - 0.05) + 1.05 + rng.normal(0.0, 0.15)
        oii = rng.normal(0.55 if kind == "elg" else 0.4, 0.12)
        sii, oi = rng.normal(-0.6, 0.12), rng.normal(-1.4, 0.15)
    ha = 2.863
    oiii = 10**y
    oii_tot = 10**oii
    r_oii = rng.uniform(1.0, 1.45)  # 3729/3726, density dependent
    sii_tot = ha * 10**sii
    r_sii = rng.uniform(1.05, 1.45)  # 6718/6733
    nii = ha * 10**x
    ratios = {
        "[OII]3727": oii_tot / (1 + r_oii), "[OII]3730": oii_tot * r_oii / (1 + r_oii),
        "[NeIII]": oiii * 10 ** rng.normal(-1.0, 0.15),
        "H8": 0.105, "He": 0.159, "Hd": 0.259, "Hg": 0.468, "Hb": 1.0,
        "[OIII]4960": oiii / 2.98, "[OIII]5008": oiii,
        "HeI5877": 0.11, "[OI]6302": ha * 10**oi, "[OI]6365": ha * 10**oi / 3.0,
        "[NII]6550": nii / 3.0, "Ha": ha, "[NII]6585": nii,
        "[SII]6718": sii_tot * r_sii / (1 + r_sii), "[SII]6733": sii_tot / (1 + r_sii),
    }
    return ratios, agn


_LINE_WAVE = {
    **{k: v for k, v in GALAXY_EMISSION.items() if k != "[OI]"},
    "H8": _H8, "He": _HE, "HeI5877": 5877.25, "[OI]6302": GALAXY_EMISSION["[OI]"], "[OI]6365": 6365.54,
}


def simulate_galaxy(rng: np.random.Generator, sample: GalaxySample, z: float) -> Galaxy:
    """A galaxy of ``sample`` at redshift ``z`` (noiseless, arbitrary flux scale)."""
    kind = ("passive", "starforming", "elg")[int(rng.choice(3, p=np.asarray(sample.types)))]
    weights = rng.dirichlet(_MIX[kind])
    if kind == "passive":
        vdisp = truncated_normal(rng, 230.0 if sample.name != "MAIN" else 180.0, 45.0, 100.0, 300.0)
        ebv = min(rng.exponential(0.03), 0.3)
    elif kind == "starforming":
        vdisp = truncated_normal(rng, 120.0, 30.0, 100.0, 250.0)
        ebv = min(rng.exponential(0.12), 0.6)
    else:
        vdisp = truncated_normal(rng, 100.0, 15.0, 100.0, 160.0)
        ebv = min(rng.exponential(0.08), 0.4)

    rest = template_mix(weights, vdisp) * 10.0 ** (-0.4 * ebv * calzetti_k(REST_WAVE))
    t = galaxy_templates()
    d4000 = float(weights @ t.d4000_red / (weights @ t.d4000_blue)) * 10 ** (
        -0.4 * ebv * (calzetti_k(4050.0) - calzetti_k(3900.0)))

    # nebular emission, scaled by the H-alpha equivalent width against the attenuated continuum
    if kind == "passive":
        has_lines = rng.random() < 0.35
        ew_ha = 10 ** rng.normal(0.0, 0.3) if has_lines else 0.0
        ratios, agn = _line_ratios(rng, "liner")
    elif kind == "starforming":
        ratios, agn = _line_ratios(rng, "starforming")
        ew_ha = float(np.clip(10 ** rng.normal(np.log10(10.0 if agn else 20.0), 0.3), 2.0, 300.0))
    else:
        ratios, agn = _line_ratios(rng, "elg")
        ew_ha = float(np.clip(10 ** rng.normal(np.log10(90.0), 0.25), 20.0, 600.0))
    sigma_gas = rng.uniform(40.0, 100.0) if kind != "elg" else rng.uniform(35.0, 80.0)

    names = list(_LINE_WAVE)
    lam = np.array([_LINE_WAVE[k] for k in names])
    cont_at = np.interp(lam, REST_WAVE, rest)
    e_gas = ebv / 0.44
    att = 10 ** (-0.4 * e_gas * calzetti_k(lam))
    ha_obs_flux = ew_ha * float(np.interp(_HA, REST_WAVE, rest))
    hb_intrinsic = ha_obs_flux / (2.863 * 10 ** (-0.4 * e_gas * float(calzetti_k(_HA))))
    fluxes = np.array([ratios[k] for k in names]) * hb_intrinsic * att
    i2, i3 = names.index("[OII]3727"), names.index("[OII]3730")
    oii_ew = float((fluxes[i2] + fluxes[i3]) / max(cont_at[i2], 1e-30))

    if kind == "passive":
        subclass = "AGN" if (has_lines and agn and ew_ha > 3.0) else ""
    elif agn:
        subclass = "AGN"
    else:
        subclass = "STARBURST" if ew_ha > 50.0 else "STARFORMING"

    model = on_model_grid(rest, z)
    lines = (np.log10(lam * (1.0 + z)), np.full(lam.size, sigma_gas / C_KMS / LN10), fluxes * (1.0 + z))
    truth = {"subclass": subclass, "sample": sample.name, "vdisp_kms": float(vdisp), "ebv": float(ebv),
             "d4000": d4000, "ha_ew": float(ew_ha), "oii_ew": oii_ew, "galaxy_type": kind}
    return Galaxy(model=model, lines=lines, truth=truth)
