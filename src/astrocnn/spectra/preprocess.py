"""The paper's preprocessing: rebin onto the grid, then zero-mean normalise.

A spectrum on its own sampling becomes ``flux`` and ``ivar`` on a :class:`LogLambdaGrid`:

1. pixels with ``ivar <= 0``, non-finite values or a bad mask bit are dropped;
2. the rest are rebinned onto the grid with inverse-variance weights, each native pixel contributing
   in proportion to its overlap with a grid pixel (flux density is conserved, an identical grid is
   the identity);
3. grid pixels without data get ``ivar = 0`` and are counted in ``coverage``;
4. ``flux`` becomes ``(flux - mean) / std`` over the valid grid pixels, invalid pixels are set to 0 (the
   new mean), and ``ivar`` is scaled by ``std**2`` so it still describes the normalised flux.

A spectrum with too little coverage or zero variance is rejected with a reason, never normalised
into NaNs.

Spectra domain, on the core.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from astrocnn.core.errors import RejectedSpectrum
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.masks import DEFAULT_BAD_PIXEL_BITS
from astrocnn.spectra.spectrum import Spectrum

#: Default minimum fraction of grid pixels with data for a spectrum to be kept.
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class PreprocessConfig:
    """How spectra become network inputs. Stored with every prepared set."""

    min_coverage: float = DEFAULT_MIN_COVERAGE
    bad_pixel_bits: int = int(DEFAULT_BAD_PIXEL_BITS)

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ValueError(f"min_coverage must lie in [0, 1], got {self.min_coverage}")


@dataclass
class Prepared:
    """A spectrum on the grid, ready for a network.

    flux : (n_grid,) float32, zero-mean unit-variance over valid pixels, 0 elsewhere.
    ivar : (n_grid,) float32, inverse variance of the normalised flux; 0 where there are no data.
    coverage : fraction of grid pixels with data.
    snr : median per-pixel S/N of the resampled (un-normalised) spectrum over valid pixels.
    mean, std : the normalisation, so ``flux * std + mean`` gives back 1e-17 erg/s/cm^2/A.
    """

    flux: np.ndarray
    ivar: np.ndarray
    coverage: float
    snr: float
    mean: float
    std: float


def pixel_edges(loglam: np.ndarray) -> np.ndarray:
    """Pixel edges of a sampling given by its centres (midpoints; end pixels mirrored)."""
    mid = 0.5 * (loglam[1:] + loglam[:-1])
    return np.concatenate([[loglam[0] - (mid[0] - loglam[0])], mid, [loglam[-1] + (loglam[-1] - mid[-1])]])


def rebin(
    loglam: np.ndarray, flux: np.ndarray, ivar: np.ndarray, grid: LogLambdaGrid = PAPER_GRID
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance weighted rebinning onto ``grid``.

    Pixels with ``ivar == 0`` contribute nothing. Works on the cumulative integrals of the
    piecewise-constant densities ``ivar`` and ``ivar * flux``, so each native pixel contributes exactly
    its overlap with each grid pixel, in O(n) time.

    Returns ``(flux, ivar, frac)`` on the grid, where ``frac`` is the fraction of each grid pixel covered
    by valid native pixels. Grid ``ivar_j = sum_i a_ij ivar_i`` with ``a_ij`` the fraction of grid pixel
    ``j`` covered by native pixel ``i``: on an identical grid ``ivar`` is unchanged.
    """
    loglam = np.asarray(loglam, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    edges = pixel_edges(loglam)
    width = np.diff(edges)
    valid = (ivar > 0).astype(np.float64)
    # cumulative integrals at native edges of the piecewise-constant densities
    cum = np.zeros((3, edges.size))
    cum[0, 1:] = np.cumsum(ivar * width)
    cum[1, 1:] = np.cumsum(ivar * flux * width)
    cum[2, 1:] = np.cumsum(valid * width)
    g_edges = grid.edges
    at = np.stack([np.interp(g_edges, edges, c) for c in cum])
    sums = np.diff(at, axis=1) / grid.step
    w, wf, frac = sums
    out_ivar = np.where(frac > 0, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out_flux = np.where(w > 0, wf / np.where(w > 0, w, 1.0), 0.0)
    return out_flux, out_ivar, np.clip(frac, 0.0, 1.0)


def good_pixels(spectrum: Spectrum, bad_pixel_bits: int = int(DEFAULT_BAD_PIXEL_BITS)) -> np.ndarray:
    """Boolean mask of native pixels that carry a usable measurement."""
    ok = (spectrum.ivar > 0) & np.isfinite(spectrum.flux) & np.isfinite(spectrum.ivar)
    if bad_pixel_bits:
        ok &= (np.asarray(spectrum.mask).astype(np.int64) & int(bad_pixel_bits)) == 0
    return ok


def preprocess(
    spectrum: Spectrum, grid: LogLambdaGrid = PAPER_GRID, config: PreprocessConfig = PreprocessConfig()
) -> Prepared:
    """Resample ``spectrum`` onto ``grid`` and normalise it.

    Raises :class:`RejectedSpectrum` (naming the spectrum's source) when fewer than
    ``config.min_coverage`` of the grid pixels have data, or when the valid flux has zero variance.
    """
    source = spectrum.meta.get("path") or spectrum.id or None
    ok = good_pixels(spectrum, config.bad_pixel_bits)
    if not ok.any():
        raise RejectedSpectrum(source, "no valid pixels (ivar <= 0, non-finite flux or bad mask bits everywhere)")
    ivar = np.where(ok, spectrum.ivar, 0.0)
    flux = np.where(ok, spectrum.flux, 0.0)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        # values near float64's limits overflow here; the checks below reject what did not survive
        g_flux, g_ivar, frac = rebin(spectrum.loglam, flux, ivar, grid)
    # a grid pixel counts as covered when valid native pixels fill at least half of it
    valid = (g_ivar > 0) & (frac >= 0.5)
    coverage = float(valid.mean())
    if coverage < config.min_coverage:
        raise RejectedSpectrum(
            source, f"only {coverage:.0%} of the grid has data (minimum {config.min_coverage:.0%})"
        )
    values = g_flux[valid]
    with np.errstate(over="ignore", invalid="ignore"):
        mean = float(values.mean())
        std = float(values.std())
    if not (np.isfinite(mean) and np.isfinite(std) and np.isfinite(g_ivar[valid]).all()):
        raise RejectedSpectrum(source, "flux or ivar values too large for the arithmetic (overflow)")
    if not np.isfinite(std) or std <= 0 or std < 1e-12 * max(abs(mean), 1e-30):
        raise RejectedSpectrum(source, "flux has zero variance over the valid pixels")
    snr = float(np.median(np.abs(values) * np.sqrt(g_ivar[valid])))
    out_flux = np.where(valid, (g_flux - mean) / std, 0.0).astype(np.float32)
    # clipped into float32's range: an absurd ivar must neither overflow to inf nor underflow to 0, since
    # ivar == 0 means "no data" to everything downstream
    f32 = np.finfo(np.float32)
    with np.errstate(over="ignore"):
        out_ivar = np.where(valid, np.clip(g_ivar * std**2, float(f32.tiny), float(f32.max)), 0.0).astype(np.float32)
    return Prepared(flux=out_flux, ivar=out_ivar, coverage=coverage, snr=snr, mean=mean, std=std)


#: Key of a stored preprocessing record (a prepared set's ``preprocess`` attribute, a run's
#: ``input["preprocess"]``) describing a flux that astrocnn did not make from spectrum files but took from
#: arrays already on the grid (:mod:`astrocnn.spectra.arrays`): which array, from which files, and whether
#: astrocnn normalised it (``"normalisation": "astrocnn"``) or kept it as the files give it (``"given"``).
#: Sets made from spectrum files or simulated have no such key.
ARRAYS_KEY = "arrays"


def config_from_record(record: Mapping[str, Any]) -> PreprocessConfig:
    """The :class:`PreprocessConfig` of a stored preprocessing record (its other keys describe provenance)."""
    return PreprocessConfig(**{k: v for k, v in record.items() if k != ARRAYS_KEY})


def normalisation_of(record: Mapping[str, Any]) -> str:
    """What the flux of a set (or the inputs of a run) with this preprocessing record is, in words:
    ``"astrocnn's normalisation"`` or e.g. ``"flux_norm as given in dr16q-log-zvi-quasar.h5"`` (whether two
    records agree is :func:`same_normalisation`'s to say: the file names do not count)."""
    arrays = record.get(ARRAYS_KEY) or {}
    if arrays.get("normalisation", "astrocnn") == "astrocnn":
        return "astrocnn's normalisation"
    return f"{arrays.get('flux', 'flux')} as given in {_files_text(arrays.get('files') or [])}"


def _files_text(files: Sequence[str]) -> str:
    names = [Path(f).name for f in files]
    if len(names) > 2:
        return f"{names[0]} and {len(names) - 1} other files"
    return " and ".join(names) or "its files"


def same_normalisation(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when two preprocessing records give inputs normalised the same way (the files may differ)."""
    def key(record):
        arrays = record.get(ARRAYS_KEY) or {}
        norm = arrays.get("normalisation", "astrocnn")
        return norm if norm == "astrocnn" else (norm, arrays.get("layout"), arrays.get("flux"))

    return key(a) == key(b)


def files_problem(record: Mapping[str, Any]) -> str:
    """Why spectrum files cannot be made into inputs the way this record's set was made, or "" when they can.

    A flux normalised by astrocnn can be made again from a file (read, rebinned onto the grid, normalised);
    a flux kept as its files give it (the paper's ``flux_norm``) cannot: astrocnn does not know how it was
    made."""
    if same_normalisation(record, {}):
        return ""
    return (f"the model was trained on {normalisation_of(record)}, which astrocnn cannot reproduce from a "
            "FITS file: give it spectra prepared the same way ('astrocnn prepare arrays')")


@dataclass(frozen=True)
class Preprocessing:
    """A grid and the preprocessing settings: how a spectrum file becomes a network input. A run keeps its
    own, so new files are treated exactly as its training set was (see :func:`preprocess`)."""

    grid: LogLambdaGrid = PAPER_GRID
    config: PreprocessConfig = PreprocessConfig()

    def __call__(self, spectrum: Spectrum) -> Prepared:
        return preprocess(spectrum, self.grid, self.config)

    @classmethod
    def from_run_input(cls, run_input: dict) -> "Preprocessing":
        """The preprocessing a run was trained with, from its configuration's ``input`` section (``grid`` and
        ``preprocess``; the paper's grid and the defaults where absent)."""
        grid = LogLambdaGrid(**run_input["grid"]) if run_input.get("grid") else PAPER_GRID
        return cls(grid, config_from_record(run_input.get("preprocess") or {}))
