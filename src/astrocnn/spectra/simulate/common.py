"""Numbers and small numerical tools shared by the simulator's physics modules.

Everything is computed on one *model grid*: the BOSS native sampling, log10(lambda / Angstrom) from 3.5530
to 4.0170 in steps of 1e-4 dex (4641 pixels, 3573-10399 A, 69 km/s per pixel). Objects are built on it in
the observed frame (their rest wavelengths are ``wave / (1 + z)``); the SDSS-I/II legacy grid is a slice of
it, so one model serves both instruments.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import erf

C_KMS = 299792.458
#: c in Angstrom per second, for f_nu <-> f_lambda.
C_AA_S = 2.99792458e18
LN10 = float(np.log(10.0))

#: Model grid (BOSS native sampling), pixel centres in log10(Angstrom).
MODEL_LOGLAM_MIN = 3.5530
MODEL_DLOG = 1e-4
MODEL_N = 4641
MODEL_LOGLAM = MODEL_LOGLAM_MIN + MODEL_DLOG * np.arange(MODEL_N)
MODEL_LOGLAM.setflags(write=False)
MODEL_WAVE = 10.0 ** MODEL_LOGLAM
MODEL_WAVE.setflags(write=False)
#: Pixel widths in Angstrom, shape (MODEL_N,): converts a line's integrated flux to a flux density.
MODEL_PIXEL_AA = MODEL_WAVE * LN10 * MODEL_DLOG
MODEL_PIXEL_AA.setflags(write=False)


def gaussian_lines(
    centers_loglam: np.ndarray,
    sigmas_log: np.ndarray,
    fluxes: np.ndarray,
    *,
    loglam0: float = MODEL_LOGLAM_MIN,
    dlog: float = MODEL_DLOG,
    n: int = MODEL_N,
    integrate: bool = False,
    nsig: float = 5.0,
) -> np.ndarray:
    """Sum of Gaussian lines (Gaussian in log-lambda) as a flux density on a uniform log-lambda grid.

    Parameters
    ----------
    centers_loglam, sigmas_log, fluxes : (L,) arrays: line centres (log10 Angstrom), Gaussian sigma in dex,
        integrated line fluxes (flux-density units x Angstrom).
    loglam0, dlog, n : the grid (first pixel centre, step in dex, number of pixels).
    integrate : average each line over the pixel (needed when sigma is below ~1 pixel); otherwise the
        profile is sampled at pixel centres.

    Returns
    -------
    (n,) float64 flux density, whose sum times the pixel widths returns ``fluxes.sum()`` for lines inside.
    All lines are evaluated in one vectorised gather/scatter, not a Python loop.
    """
    centers_loglam = np.atleast_1d(np.asarray(centers_loglam, dtype=np.float64))
    fluxes = np.atleast_1d(np.asarray(fluxes, dtype=np.float64))
    sig = np.broadcast_to(np.asarray(sigmas_log, dtype=np.float64), centers_loglam.shape) / dlog
    out = np.zeros(n)
    if centers_loglam.size == 0:
        return out
    if sig.max() > 3.0 * sig.min() and centers_loglam.size > 4:
        # very different widths: evaluate narrow and broad lines separately so the narrow ones do not pay
        # for the broad ones' windows
        split = sig > np.sqrt(sig.max() * sig.min())
        for part in (split, ~split):
            out += gaussian_lines(centers_loglam[part], sig[part] * dlog, fluxes[part], loglam0=loglam0, dlog=dlog,
                                  n=n, integrate=integrate, nsig=nsig)
        return out
    uc = (centers_loglam - loglam0) / dlog
    half = int(np.ceil(nsig * sig.max())) + 1
    keep = (uc > -half) & (uc < n - 1 + half) & (fluxes != 0)
    if not keep.any():
        return out
    uc, sig, fl = uc[keep], sig[keep], fluxes[keep]
    offs = np.arange(-half, half + 1)
    idx = np.rint(uc).astype(np.int64)[:, None] + offs[None, :]
    d = idx - uc[:, None]
    s = sig[:, None]
    valid = (idx >= 0) & (idx < n) & (np.abs(d) <= nsig * s + 1.0)
    if integrate:
        r = 1.0 / (np.sqrt(2.0) * s)
        prof = 0.5 * (erf((d + 0.5) * r) - erf((d - 0.5) * r))
    else:
        prof = np.exp(-0.5 * (d / s) ** 2) / (np.sqrt(2.0 * np.pi) * s)
    ii = idx[valid]
    pix_aa = 10.0 ** (loglam0 + dlog * ii) * LN10 * dlog
    w = (fl[:, None] * prof)[valid] / pix_aa
    out += np.bincount(ii, weights=w, minlength=n)
    return out


def shift_resample(rest_loglam0: float, rest_dlog: float, values: np.ndarray, loglam: np.ndarray,
                   shift_dex: float) -> np.ndarray:
    """Sample a rest-frame template tabulated on a uniform log grid at ``loglam - shift_dex``.

    ``values`` may be (n_rest,) or (k, n_rest); linear interpolation, zero outside the table.
    """
    x = (loglam - shift_dex - rest_loglam0) / rest_dlog
    i0 = np.floor(x).astype(np.int64)
    t = x - i0
    nr = values.shape[-1]
    ok = (i0 >= 0) & (i0 < nr - 1)
    i0c = np.clip(i0, 0, nr - 2)
    out = values[..., i0c] * (1.0 - t) + values[..., i0c + 1] * t
    return np.where(ok, out, 0.0)


def gaussian_smooth_log(values: np.ndarray, sigma_pix: float) -> np.ndarray:
    """Gaussian smoothing along the last axis by ``sigma_pix`` pixels (edges reflected)."""
    if sigma_pix <= 0.05:
        return np.array(values, dtype=np.float64, copy=True)
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(np.asarray(values, dtype=np.float64), sigma_pix, axis=-1, mode="nearest",
                             truncate=5.0)


def truncated_power_mag(rng: np.random.Generator, lo: float, hi: float, slope: float) -> float:
    """A magnitude drawn from number counts dN/dm proportional to 10**(slope*m) on [lo, hi]."""
    a = slope * LN10
    u = rng.random()
    if abs(a) < 1e-9:
        return lo + u * (hi - lo)
    return float(lo + np.log1p(u * np.expm1(a * (hi - lo))) / a)


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def truncated_normal(rng: np.random.Generator, mean: float, sigma: float, lo: float, hi: float) -> float:
    """Normal(mean, sigma) restricted to [lo, hi] by inverse-CDF sampling (one uniform per draw)."""
    from scipy.special import ndtr, ndtri

    a, b = ndtr((lo - mean) / sigma), ndtr((hi - mean) / sigma)
    return float(np.clip(mean + sigma * ndtri(a + rng.random() * (b - a)), lo, hi))


# i-band-like response: a flat-topped bandpass over ~6950-8250 A, the half-power range of SDSS i.
_I_CENTER, _I_HALF = 7600.0, 650.0
I_BAND = np.exp(-0.5 * ((MODEL_WAVE - _I_CENTER) / _I_HALF) ** 6)
I_BAND.setflags(write=False)
_I_WEIGHT = I_BAND * MODEL_WAVE ** 2 / C_AA_S * 1e-17  # f_lambda (1e-17 units) -> f_nu (cgs), per log pixel


def i_band_mag(flux: np.ndarray) -> float:
    """AB magnitude through the i-like band of a model-grid f_lambda in 1e-17 erg/s/cm^2/A.

    On a log-lambda grid d(lambda)/lambda is constant, so the photon-weighted AB mean of f_nu is a plain
    weighted sum. Returns +inf for a spectrum without positive flux in the band.
    """
    fnu = float(np.dot(_I_WEIGHT, flux)) / float(I_BAND.sum())
    return float(-2.5 * np.log10(fnu) - 48.6) if fnu > 0 else float("inf")


@lru_cache(maxsize=1)
def _distance_modulus_table() -> tuple[np.ndarray, np.ndarray]:
    from astropy.cosmology import Planck18

    z = np.linspace(0.005, 7.0, 1400)
    return z, np.asarray(Planck18.distmod(z).value)


def distance_modulus(z: float) -> float:
    """Planck 2018 distance modulus (mag), tabulated once per process."""
    zt, dm = _distance_modulus_table()
    return float(np.interp(max(z, 0.005), zt, dm))


def planck_lambda(wave_aa: np.ndarray, temperature: float) -> np.ndarray:
    """Blackbody B_lambda shape (arbitrary units, peak-safe) at ``wave_aa`` Angstrom for ``temperature`` K."""
    x = 1.43877735e8 / (np.asarray(wave_aa, dtype=np.float64) * temperature)
    with np.errstate(over="ignore"):
        return (wave_aa / 5000.0) ** -5 / np.expm1(np.minimum(x, 700.0))


def gaussian_peaks(
    centers_loglam: np.ndarray,
    sigmas_log: np.ndarray,
    peaks: np.ndarray,
    *,
    loglam0: float = MODEL_LOGLAM_MIN,
    dlog: float = MODEL_DLOG,
    n: int = MODEL_N,
    nsig: float = 4.0,
) -> np.ndarray:
    """Sum of Gaussians of given peak heights (e.g. optical depths) on a uniform log-lambda grid, shape (n,)."""
    centers_loglam = np.atleast_1d(np.asarray(centers_loglam, dtype=np.float64))
    out = np.zeros(n)
    if centers_loglam.size == 0:
        return out
    peaks = np.broadcast_to(np.asarray(peaks, dtype=np.float64), centers_loglam.shape)
    sig = np.broadcast_to(np.asarray(sigmas_log, dtype=np.float64), centers_loglam.shape) / dlog
    uc = (centers_loglam - loglam0) / dlog
    half = int(np.ceil(nsig * sig.max())) + 1
    keep = (uc > -half) & (uc < n - 1 + half) & (peaks != 0)
    if not keep.any():
        return out
    uc, sig, pk = uc[keep], sig[keep], peaks[keep]
    idx = np.rint(uc).astype(np.int64)[:, None] + np.arange(-half, half + 1)[None, :]
    d = (idx - uc[:, None]) / sig[:, None]
    valid = (idx >= 0) & (idx < n) & (np.abs(d) <= nsig)
    w = (pk[:, None] * np.exp(-0.5 * d * d))[valid]
    out += np.bincount(idx[valid], weights=w, minlength=n)
    return out
