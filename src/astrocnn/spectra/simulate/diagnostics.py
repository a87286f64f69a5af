"""Measurements on simulated sets: a quasar composite, its slope and line strengths, the forest transmission.

They return numbers and arrays (no plotting) so a benchmark or a test can compare the simulation with the
literature: the Vanden Berk et al. (2001) composite and the Becker et al. (2013) mean Ly-alpha transmission.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from astrocnn.spectra.spectrum import Spectrum
from astrocnn.spectra.simulate.forest import LYA, mean_transmission_becker

#: Rest equivalent widths (A) and slope of the Vanden Berk et al. (2001) composite (the design table).
VANDEN_BERK_2001 = {"alpha_nu": -0.44, "ew_lya_nv": 107.0, "ew_siiv": 8.6, "ew_civ": 37.0, "ew_ciii": 23.0,
                    "ew_mgii": 40.0, "ew_hb": 51.0, "ew_oiii": 13.0, "ew_ha": 222.0}

#: Line-free windows (rest A) for the continuum slope; 1350-1365 and 4200-4230 are Vanden Berk's.
SLOPE_WINDOWS = ((1350.0, 1365.0), (1445.0, 1465.0), (1690.0, 1705.0), (2160.0, 2180.0), (4200.0, 4230.0))

#: Lines: name -> (integration window, continuum windows either side), rest A.
LINE_WINDOWS: dict[str, tuple[tuple[float, float], tuple[tuple[float, float], ...]]] = {
    "ew_lya_nv": ((1160.0, 1290.0), ((1345.0, 1365.0), (1440.0, 1465.0))),
    "ew_siiv": ((1360.0, 1440.0), ((1345.0, 1360.0), (1440.0, 1465.0))),
    "ew_civ": ((1470.0, 1610.0), ((1440.0, 1465.0), (1690.0, 1705.0))),
    "ew_ciii": ((1840.0, 1970.0), ((1800.0, 1820.0), (2040.0, 2060.0))),
    "ew_mgii": ((2700.0, 2900.0), ((2650.0, 2670.0), (2925.0, 2945.0))),
    "ew_hb": ((4760.0, 4940.0), ((4720.0, 4750.0), (5080.0, 5120.0))),
    "ew_oiii": ((4990.0, 5025.0), ((4975.0, 4988.0), (5030.0, 5045.0))),
    "ew_ha": ((6400.0, 6750.0), ((6200.0, 6260.0), (6800.0, 6860.0))),
}


def _rest_wave(rest_grid) -> np.ndarray:
    wave = getattr(rest_grid, "wave", rest_grid)
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size < 2 or np.any(np.diff(wave) <= 0):
        raise ValueError(f"rest_grid must give increasing wavelengths, got shape {wave.shape}")
    return wave


def _qsos(spectra_with_truth: Iterable[tuple[Spectrum, dict]]):
    for spectrum, truth in spectra_with_truth:
        if (truth.get("cls") if truth else spectrum.cls) == "qso":
            yield spectrum, truth


def rest_frame_stack(
    spectra_with_truth: Iterable[tuple[Spectrum, dict]],
    rest_grid,
    *,
    method: str = "median",
    min_snr: float = 0.0,
    iterations: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Composite of the quasars among ``spectra_with_truth`` on ``rest_grid`` (rest Angstrom).

    Each spectrum is moved to its rest frame with its true z and resampled (pixels with ivar > 0). As in
    Vanden Berk et al. (2001), spectra covering different rest ranges are tied together through their
    overlaps: each one is scaled to the current composite over its overlap (outside the Ly-alpha forest),
    starting from an alpha_nu = -0.44 power law, and the composite is recomputed, ``iterations`` times.

    ``method``: "median" (robust to noise; preserves line ratios) or "geometric" (mean of log flux over
    positive pixels; preserves power-law slopes, for high-S/N sets). Returns (rest_wave, stack), with NaN
    where no spectrum contributes.
    """
    if method not in ("median", "geometric"):
        raise ValueError(f"method must be 'median' or 'geometric', got {method!r}")
    wave = _rest_wave(rest_grid)
    lw = np.log10(wave)
    rows = []
    for spectrum, truth in _qsos(spectra_with_truth):
        if truth and float(truth.get("snr", np.inf)) < min_snr:
            continue
        z = float(truth["z"]) if truth else float(spectrum.z)
        good = np.asarray(spectrum.ivar) > 0
        if good.sum() < 10:
            continue
        rl = spectrum.loglam[good] - np.log10(1.0 + z)
        row = np.interp(lw, rl, np.asarray(spectrum.flux, dtype=np.float64)[good], left=np.nan, right=np.nan)
        rows.append(row.astype(np.float32))
    if not rows:
        raise ValueError("no quasar spectra to stack")
    m = np.vstack(rows)
    norm_pix = wave > 1230.0
    ref = (wave / 1450.0) ** (-2.0 + 0.44)
    stack = ref
    for _ in range(max(iterations, 1)):
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(norm_pix, m / ref, np.nan)
            scale = np.nanmedian(ratio, axis=1)
        ok = np.isfinite(scale) & (scale > 0)
        mm = m[ok] / scale[ok, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            if method == "median":
                stack = np.nanmedian(mm, axis=0)
            else:
                logs = np.where(mm > 0, np.log(mm), np.nan)
                stack = np.exp(np.nanmean(logs, axis=0))
        ref = np.where(np.isfinite(stack) & (stack > 0), stack, ref)
    return wave, stack


def _powerlaw_fit(wave: np.ndarray, flux: np.ndarray, windows) -> tuple[float, float] | None:
    sel = np.zeros(wave.size, dtype=bool)
    for lo, hi in windows:
        sel |= (wave >= lo) & (wave <= hi)
    sel &= np.isfinite(flux) & (flux > 0)
    used = {i for i, (lo, hi) in enumerate(windows) if np.any(sel & (wave >= lo) & (wave <= hi))}
    if len(used) < 2:
        return None
    b, a = np.polyfit(np.log10(wave[sel]), np.log10(flux[sel]), 1)
    return float(a), float(b)


def measure_composite(rest_wave: np.ndarray, stack: np.ndarray) -> dict[str, float]:
    """Continuum slope and line equivalent widths (rest A) of a composite.

    ``alpha_nu``: slope of f_nu ~ nu^alpha fitted through :data:`SLOPE_WINDOWS` (1300-5000 A); line EWs are
    measured against a power law through continuum windows either side of each line
    (:data:`LINE_WINDOWS`; Ly-alpha + NV uses the red side only, the blue side being the forest). Values the
    composite does not cover are NaN.
    """
    wave = np.asarray(rest_wave, dtype=np.float64)
    flux = np.asarray(stack, dtype=np.float64)
    out: dict[str, float] = {}
    fit = _powerlaw_fit(wave, flux, SLOPE_WINDOWS)
    out["alpha_nu"] = float("nan") if fit is None else -fit[1] - 2.0
    dl = np.gradient(wave)
    for name, (line, cont_windows) in LINE_WINDOWS.items():
        fit = _powerlaw_fit(wave, flux, cont_windows)
        sel = (wave >= line[0]) & (wave <= line[1])
        if fit is None or not sel.any() or not np.all(np.isfinite(flux[sel])):
            out[name] = float("nan")
            continue
        cont = 10 ** (fit[0] + fit[1] * np.log10(wave[sel]))
        out[name] = float(((flux[sel] / cont - 1.0) * dl[sel]).sum())
    return out


def measure_forest_transmission(
    spectra_with_truth: Iterable[tuple[Spectrum, dict]],
    z_abs_bins: Sequence[float],
    *,
    rest_range: tuple[float, float] = (1041.0, 1185.0),
    use_model: bool = True,
    exclude_bal: bool = True,
    exclude_dla: bool = True,
) -> dict[str, np.ndarray]:
    """Mean Ly-alpha forest transmission F(z_abs) of simulated quasars relative to their unabsorbed continuum.

    Needs spectra simulated with ``with_model=True`` (meta["continuum"]). Pixels at rest 1041-1185 A with
    ivar > 0 give F = model / continuum (or the noisy flux / continuum with ``use_model=False``), binned in
    z_abs = lambda / 1215.67 - 1. BAL quasars and sightlines with DLAs are left out by default (as in
    transmission measurements). The error is the scatter of per-spectrum bin means over sqrt(n_spectra).

    Returns a dict of arrays over bins: z (centres), mean_transmission, error, n_pixels, n_spectra and
    becker (Becker et al. 2013 at the bin centres).
    """
    edges = np.asarray(z_abs_bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"z_abs_bins must be increasing bin edges, got {z_abs_bins!r}")
    nb = edges.size - 1
    s1, s2, npix, nspec, fsum = (np.zeros(nb) for _ in range(5))
    any_qso = False
    for spectrum, truth in _qsos(spectra_with_truth):
        any_qso = True
        cont = spectrum.meta.get("continuum")
        if cont is None:
            raise ValueError(f"spectrum {spectrum.id!r} has no meta['continuum']: simulate with with_model=True")
        if exclude_bal and truth.get("bal"):
            continue
        if exclude_dla and int(truth.get("n_dla", 0)) > 0:
            continue
        z = float(truth["z"])
        wave = spectrum.wave
        rest = wave / (1.0 + z)
        flux = np.asarray(spectrum.meta["model"] if use_model else spectrum.flux, dtype=np.float64)
        cont = np.asarray(cont, dtype=np.float64)
        sel = (rest >= rest_range[0]) & (rest <= rest_range[1]) & (np.asarray(spectrum.ivar) > 0) & (cont > 0)
        if not sel.any():
            continue
        f = flux[sel] / cont[sel]
        k = np.searchsorted(edges, wave[sel] / LYA - 1.0, side="right") - 1
        inb = (k >= 0) & (k < nb)
        if not inb.any():
            continue
        cnt = np.bincount(k[inb], minlength=nb).astype(float)
        sm = np.bincount(k[inb], weights=f[inb], minlength=nb)
        has = cnt > 0
        mean_i = np.where(has, sm / np.maximum(cnt, 1), 0.0)
        npix += cnt
        fsum += sm
        nspec += has
        s1 += mean_i
        s2 += np.where(has, mean_i**2, 0.0)
    if not any_qso:
        raise ValueError("no quasar spectra given")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = fsum / npix
        var_spec = s2 / nspec - (s1 / nspec) ** 2
        err = np.sqrt(np.maximum(var_spec, 0.0) / np.maximum(nspec - 1, 1))
    centres = 0.5 * (edges[1:] + edges[:-1])
    return {"z": centres, "mean_transmission": mean, "error": np.where(nspec > 1, err, np.nan),
            "n_pixels": npix.astype(int), "n_spectra": nspec.astype(int),
            "becker": np.asarray(mean_transmission_becker(centres))}
