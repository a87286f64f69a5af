"""Quasar redshifts by template fitting: the classical reference for the networks.

This is the method of the SDSS/BOSS pipeline (``zfind``) and of DESI's redrock, rebuilt for our grid because
redrock's template files are not available offline: a few rest-frame PCA eigenspectra of quasars, and for every
trial redshift a weighted linear least-squares fit of those eigenspectra (plus a constant, optionally a
low-order polynomial in observed wavelength) to the spectrum; the redshift is the minimum of chi2(z).

Templates (:func:`build_templates`)
-----------------------------------
The rest-frame grid has the *same* log10-lambda step ``d`` as the observed grid and is the observed grid
extended ``n_blue`` pixels to the blue: rest pixel ``q`` has ``log10 lambda = L0 + (q - n_blue) d``. Observed
pixel ``p`` then sits on rest pixel ``p + k`` at the trial redshift ``z_k = 10**((n_blue - k) d) - 1``: a
redshift is an integer pixel shift ``k`` (``k = n_blue`` is z = 0, ``k = 0`` is ``z_max``) plus a sub-pixel part.

Each training spectrum (normalised flux and ivar as stored in a prepared set, with a known redshift) is moved to
the rest grid by linear interpolation at its sub-pixel offset (the variance of the interpolated pixel is
propagated; a rest pixel touching a masked observed pixel gets weight 0) and lands on ``n - 1`` consecutive rest
pixels. The weights get a model-error floor, ``w = 1 / (1/ivar + model_error**2)``, so a handful of very bright
spectra cannot dominate the eigenspectra (their residuals are set by quasar diversity, not by noise).

The eigenspectra come from "PCA with missing data" by weighted alternating least squares (the approach of
Bailey 2012's EMPCA and of low-rank weighted factorisation): model spectrum ``i`` on the pixels it covers as
``c_i + sum_j a_ij T_j(q)``, then alternate (1) per spectrum, the weighted least-squares ``c_i, a_i`` given the
templates, and (2) per rest pixel, the weighted least-squares ``T(q)`` given all the coefficients (a small ridge
keeps pixels that few spectra cover near zero). The free constant per spectrum makes the per-spectrum
zero-mean / unit-variance normalisation of prepared sets harmless: a normalised spectrum ``(F - m) / s`` lies
in the span of ``{1, T_j}`` whenever ``F`` does. Gaps (rest pixels a spectrum does not cover, masked pixels)
simply carry zero weight. The start is the weighted rest-frame stack plus random modes correlated over ~20
pixels; the basis is re-orthonormalised after every template step (which the next coefficient step undoes
exactly) to keep the scales, and so the ridge, stable. The total weighted chi2 falls at every step (the best
templates are kept should the ridge ever make it rise); iteration stops when it improves by less than ``tol``
(relative) or after ``n_iter`` rounds (25 rounds on 30,000 spectra: ~5 CPU minutes, ~1.5 GB of memory).
Finally the basis is rotated to orthonormal eigenspectra ordered by the variance of their coefficients (a
rotation of the basis changes no fit), so template 0 is the mean-like composite and the others are the
principal modes (line strengths and widths, continuum slope, Lyman-alpha forest depth ...). Rest pixels no
training spectrum covers stay 0.

Fitting (:func:`fit_redshift`)
------------------------------
For one spectrum with weights ``w_p`` (= ivar, 0 where masked) and flux ``f_p``, and basis functions: ``M``
Legendre polynomials ``P_m(p)`` in observed pixel (``M = poly_order + 1``; the constant is ``P_0``) and the
``K`` shifted templates ``T_j(p + k)``, the normal equations at shift ``k`` are

    b_j(k)  = sum_p w_p f_p T_j(p + k)               correlation of (w f) with T_j
    A_jl(k) = sum_p w_p T_j(p + k) T_l(p + k)         correlation of w with T_j T_l
    A_mj(k) = sum_p w_p P_m(p) T_j(p + k)             correlation of (w P_m) with T_j
    A_mn, b_m                                        independent of k

All the shift-dependent terms are cross-correlations, computed for all shifts at once with real FFTs of length
>= the rest grid (no wrap-around, since ``p + k`` never leaves the rest grid); the template side (``T_j`` and
``T_j T_l``) is transformed once and cached. Then ``chi2(k) = sum_p w_p f_p**2 - b^T A^-1 b``, evaluated for
every shift with a Cholesky factorisation vectorised over spectra and shifts (``chi2 = sum w f^2 - |L^-1 b|^2``);
a basis function that is degenerate at some shift (a template that is zero there, say) is dropped at that
shift. The integer-shift minimum is refined by a parabola through it and its two neighbours (as redrock's
``pickz`` does on its fine scan), which also gives ``z_err`` from the chi2 curvature (delta chi2 = 1).
``deltachi2`` is redrock's DELTACHI2: the chi2 of the best *other* local minimum of chi2(k), more than
``exclude_kms`` from the best one, minus the best chi2 (``inf`` when there is none). ``zwarn`` carries
redrock's bits: LITTLE_COVERAGE (2), SMALL_DELTA_CHI2 (4, deltachi2 < 9), Z_FITLIMIT (32, minimum at the edge
of the z range), NODATA (512).

Cost per spectrum: ``K + K(K+1)/2 + M K`` inverse FFTs of length ~ the rest grid (the bulk of the time) plus
``(M+K)^3/6`` vector operations over the shifts: with 10 templates and a constant over 0 <= z <= 5.5 (8,200
trial shifts), ~8.5 ms of one core (~120 spectra per second per core), ~5.8 ms with ``precision="single"``.
:func:`direct_chi2` is the brute-force version of one chi2 value, for checks.

On the simulated sets (templates from the 30k quasars, 10 components, fitted to the 5k held-out ones): 99.9%
within 6000 km/s, median |dv| 60 km/s. The failures are mostly low-ionisation BAL quasars, whose troughs no
linear combination of eigenspectra reproduces, plus the odd spectrum at S/N ~ 1 (flagged by SMALL_DELTA_CHI2).
``z_err`` is the statistical error only: the true errors are ~3x larger (template mismatch: CIV blueshifts...).

:func:`evaluate_templatefit` measures accuracy and single-core speed on a prepared set;
``scripts/bench_templatefit.py`` runs the whole comparison.

Spectra domain, on the core.
"""
from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import scipy.fft as sfft
from numpy.polynomial import legendre
from scipy.ndimage import gaussian_filter1d

from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path
from astrocnn.core.metrics import C_KMS, redshift_metrics
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.zwarn import ZWarn

log = logging.getLogger(__name__)

LN10 = float(np.log(10.0))
FORMAT = "astrocnn-quasar-templates"
FORMAT_VERSION = 1

#: redrock's ZWARN bits that this fitter can raise (see :class:`~astrocnn.spectra.zwarn.ZWarn`).
ZW_LITTLE_COVERAGE = int(ZWarn.LITTLE_COVERAGE)
ZW_SMALL_DELTA_CHI2 = int(ZWarn.SMALL_DELTA_CHI2)
ZW_Z_FITLIMIT = int(ZWarn.Z_FITLIMIT)
ZW_NODATA = int(ZWarn.NODATA)
#: redrock's threshold for SMALL_DELTA_CHI2.
DELTACHI2_WARN = 9.0


# --------------------------------------------------------------------------------------------------- templates
@dataclass(eq=False)
class QuasarTemplates:
    """Rest-frame eigenspectra on a log-lambda grid with the observed grid's step.

    grid : the observed grid the templates are made for (fits need spectra on exactly this grid).
    n_blue : the rest grid starts ``n_blue`` pixels blueward of ``grid``'s first pixel and ends at its last one,
        so it has ``n_blue + grid.n`` pixels and covers 0 <= z <= ``z_max`` = 10**(n_blue * step) - 1.
    templates : (K, n_rest) float64 eigenspectra, orthonormal, ordered by coefficient variance.
    weight : (n_rest,) total training weight per rest pixel; count : (n_rest,) training spectra covering it.
    coeff_mean, coeff_cov : mean and covariance of the training spectra's template coefficients.
    info : provenance (training set, settings, chi2 per iteration ...), JSON-serialisable.
    """

    grid: LogLambdaGrid
    n_blue: int
    templates: np.ndarray
    weight: np.ndarray
    count: np.ndarray
    coeff_mean: np.ndarray
    coeff_cov: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.templates = np.ascontiguousarray(np.atleast_2d(np.asarray(self.templates, dtype=np.float64)))
        if self.templates.shape[1] != self.n_rest:
            raise ValueError(f"templates have {self.templates.shape[1]} rest pixels, expected n_blue + grid.n = "
                             f"{self.n_rest}")
        self._fft_cache: dict[tuple[int, bool], tuple[np.ndarray, np.ndarray]] = {}

    # grid helpers
    @property
    def n_components(self) -> int:
        return int(self.templates.shape[0])

    @property
    def n_rest(self) -> int:
        return int(self.n_blue) + int(self.grid.n)

    @property
    def step(self) -> float:
        return float(self.grid.step)

    @property
    def loglam(self) -> np.ndarray:
        """Rest-frame pixel centres, log10(Angstrom)."""
        return float(np.log10(self.grid.lam_min)) + (np.arange(self.n_rest) - self.n_blue) * self.step

    @property
    def wave(self) -> np.ndarray:
        """Rest-frame pixel centres, Angstrom."""
        return 10.0 ** self.loglam

    @property
    def z_max(self) -> float:
        """Highest redshift the rest grid covers (shift 0)."""
        return float(10.0 ** (self.n_blue * self.step) - 1.0)

    def z_of_shift(self, k: np.ndarray | float) -> np.ndarray:
        """Redshift at which observed pixel ``p`` falls on rest pixel ``p + k`` (``k`` may be fractional)."""
        return 10.0 ** ((self.n_blue - np.asarray(k, dtype=np.float64)) * self.step) - 1.0

    def shift_of_z(self, z: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`z_of_shift` (fractional shifts)."""
        return self.n_blue - np.log10(1.0 + np.asarray(z, dtype=np.float64)) / self.step

    def redshifted(self, z: float) -> np.ndarray:
        """The templates at redshift ``z`` on the observed grid, (K, grid.n), linear interpolation (0 off grid)."""
        x = np.arange(self.grid.n) + float(self.shift_of_z(z))
        q = np.arange(self.n_rest)
        return np.stack([np.interp(x, q, t, left=0.0, right=0.0) for t in self.templates])

    # FFTs of the template side, cached per length
    def _ffts(self, length: int, single: bool = False) -> tuple[np.ndarray, np.ndarray]:
        key = (length, single)
        if key not in self._fft_cache:
            t = self.templates.astype(np.float32 if single else np.float64)
            iu, ju = np.triu_indices(self.n_components)
            self._fft_cache[key] = (sfft.rfft(t, n=length, axis=-1), sfft.rfft(t[iu] * t[ju], n=length, axis=-1))
        return self._fft_cache[key]

    # persistence: one .npz of plain arrays, metadata as a JSON string; never pickled
    def save(self, path: str | os.PathLike) -> Path:
        """Write the templates to ``path`` (an ``.npz`` of arrays plus a JSON header; loads without pickle)."""
        path = Path(path)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "grid": json.loads(self.grid.to_json()),
            "n_blue": int(self.n_blue),
            "info": self.info,
        }
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    meta=np.array(json.dumps(meta)),
                    templates=self.templates,
                    weight=np.asarray(self.weight, dtype=np.float64),
                    count=np.asarray(self.count, dtype=np.int64),
                    coeff_mean=np.asarray(self.coeff_mean, dtype=np.float64),
                    coeff_cov=np.asarray(self.coeff_cov, dtype=np.float64),
                )
        log.info("wrote %d quasar templates (%d rest pixels, z <= %.2f) to %s", self.n_components, self.n_rest,
                 self.z_max, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "QuasarTemplates":
        """Read templates written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                arrays = {k: npz[k] for k in ("templates", "weight", "count", "coeff_mean", "coeff_cov")}
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(path, f"not a readable template file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise InputError(path, "not an astrocnn quasar-template file")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(path, f"template format version {meta['format_version']} is newer than this astrocnn")
        grid = LogLambdaGrid.from_json(json.dumps(meta["grid"]))
        return cls(grid=grid, n_blue=int(meta["n_blue"]), info=meta.get("info", {}), **arrays)


_Chunks = Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]


def _iter_training(source: Any, z: np.ndarray | None, chunk: int, max_spectra: int | None,
                   classes: Sequence[str] | None, z_max: float | None, seed: int
                   ) -> tuple[LogLambdaGrid | None, np.ndarray, _Chunks]:
    """(grid, z of the rows used, iterator of (flux, ivar, z) chunks) for a SpectraSet, a path to one, or
    (flux, ivar) arrays. Rows with a non-finite or negative z, or above ``z_max``, are left out."""
    if isinstance(source, (str, os.PathLike)):
        source = SpectraSet(source)
    if isinstance(source, SpectraSet):
        ds = source
        zz = ds.z.astype(np.float64) if z is None else np.asarray(z, dtype=np.float64)
        keep = np.isfinite(zz) & (zz >= 0)
        if classes is not None and ds.cls is not None:
            wanted = [ds.class_names.index(c) for c in classes if c in ds.class_names]
            keep &= np.isin(ds.cls, wanted)

        def read(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            b = ds.read(sel)
            return b["flux"], b["ivar"]

        grid = ds.grid
    else:
        flux, ivar = (np.atleast_2d(np.asarray(a)) for a in source)
        zz = np.asarray(z, dtype=np.float64).ravel()
        keep = np.isfinite(zz) & (zz >= 0)

        def read(sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return flux[sel], ivar[sel]

        grid = None
    if z_max is not None:
        dropped = int((keep & (zz > z_max)).sum())
        if dropped:
            log.info("templates: %d training spectra above z_max = %.3f left out", dropped, z_max)
        keep &= zz <= z_max
    rows = np.flatnonzero(keep)
    if max_spectra is not None and rows.size > max_spectra:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_spectra, replace=False))

    def it() -> _Chunks:
        for lo in range(0, rows.size, chunk):
            sel = rows[lo:lo + chunk]
            yield (*read(sel), zz[sel])

    return grid, zz[rows], it()


def _clean(flux: np.ndarray, ivar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 copies with non-finite or masked pixels at flux 0, weight 0."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    ok = np.isfinite(flux) & np.isfinite(ivar) & (ivar > 0)
    return np.where(ok, flux, 0.0), np.where(ok, ivar, 0.0)


def _to_rest(flux: np.ndarray, ivar: np.ndarray, kf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move spectra to the rest grid: rest pixel ``start + j`` (j = 0 .. n-2) gets the observed flux at
    fractional pixel ``j + 1 - t`` (``kf = floor + t``), linearly interpolated, with propagated variance."""
    flux, ivar = _clean(flux, ivar)
    k_int = np.floor(kf).astype(np.int64)
    t = (kf - k_int)[:, None]
    fl, fr = flux[:, :-1], flux[:, 1:]
    il, ir = ivar[:, :-1], ivar[:, 1:]
    ok = (il > 0) & (ir > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = t**2 / np.where(ok, il, 1.0) + (1.0 - t) ** 2 / np.where(ok, ir, 1.0)
        w = np.where(ok, 1.0 / var, 0.0)
    f = t * fl + (1.0 - t) * fr
    return np.where(ok, f, 0.0), w, k_int + 1


def _solve_spd(a: np.ndarray, b: np.ndarray, ridge: float = 1e-10) -> np.ndarray:
    """Batched solve of symmetric positive semi-definite systems with a small relative ridge."""
    k = a.shape[-1]
    scale = np.trace(a, axis1=-2, axis2=-1)[..., None, None] / k
    reg = a + (ridge * scale + 1e-300) * np.eye(k)
    return np.linalg.solve(reg, b[..., None])[..., 0]


def _coeff_step(T: np.ndarray, seg_f: np.ndarray, seg_w: np.ndarray, start: np.ndarray, batch: int
                ) -> tuple[np.ndarray, float]:
    """Per spectrum, least-squares [c, a_1..a_K] on its rest segment. Returns (coeffs (N, K+1), total chi2)."""
    n_spec, n_seg = seg_f.shape
    K = T.shape[0]
    TT = np.ascontiguousarray(T.T)  # (Q, K)
    coef = np.zeros((n_spec, K + 1))
    chi2 = 0.0
    j = np.arange(n_seg)
    # work buffers reused across batches (fresh allocations of this size cost more in page faults than in maths)
    t_buf = np.empty((min(batch, n_spec), n_seg, K))
    tw_buf = np.empty_like(t_buf)
    A = np.empty((min(batch, n_spec), K + 1, K + 1))
    b = np.empty((min(batch, n_spec), K + 1))
    for lo in range(0, n_spec, batch):
        hi = min(lo + batch, n_spec)
        m = hi - lo
        w = seg_w[lo:hi].astype(np.float64)
        f = seg_f[lo:hi].astype(np.float64)
        Ts, Tw = t_buf[:m], tw_buf[:m]
        np.take(TT, start[lo:hi, None] + j, axis=0, out=Ts)
        np.multiply(Ts, w[:, :, None], out=Tw)
        Am, bm = A[:m], b[:m]
        Am[:, 0, 0] = w.sum(axis=1)
        Am[:, 0, 1:] = Am[:, 1:, 0] = Tw.sum(axis=1)
        np.matmul(Tw.transpose(0, 2, 1), Ts, out=Am[:, 1:, 1:])
        bm[:, 0] = np.einsum("bp,bp->b", w, f)
        bm[:, 1:] = np.matmul(Tw.transpose(0, 2, 1), f[:, :, None])[..., 0]
        c = _solve_spd(Am, bm)
        coef[lo:hi] = c
        chi2 += float(np.sum(w * f * f) - 2 * np.sum(c * bm) + np.einsum("bk,bkl,bl->", c, Am, c))
    return coef, chi2


def _orthonormal(T: np.ndarray) -> np.ndarray:
    """Rows of T made orthonormal (same span), by a QR factorisation."""
    q, r = np.linalg.qr(T.T)
    return np.ascontiguousarray((q * np.where(np.diag(r) < 0, -1.0, 1.0)).T)


def _template_step(coef: np.ndarray, seg_f: np.ndarray, seg_w: np.ndarray, start: np.ndarray, n_rest: int,
                   ridge: float, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Per rest pixel, least-squares T(q) given all coefficients. Returns (T (K, Q), trace of the normal matrix)."""
    n_spec, n_seg = seg_f.shape
    a = coef[:, 1:]
    K = a.shape[1]
    M = np.zeros((n_rest, K * K))
    v = np.zeros((n_rest, K))
    j = np.arange(n_seg)
    # segments are sorted by start, so a batch spans at most its own start range plus one segment
    widths = [int(start[min(lo + batch, n_spec) - 1] - start[lo]) + n_seg for lo in range(0, n_spec, batch)]
    W_buf = np.empty((min(batch, n_spec), max(widths)))
    R_buf = np.empty_like(W_buf)
    for lo in range(0, n_spec, batch):
        hi = min(lo + batch, n_spec)
        s_lo = int(start[lo:hi].min())
        width = int(start[lo:hi].max()) - s_lo + n_seg
        rows = np.arange(hi - lo)[:, None]
        cols = (start[lo:hi] - s_lo)[:, None] + j
        W = W_buf[:hi - lo, :width]
        R = R_buf[:hi - lo, :width]
        W.fill(0.0)
        R.fill(0.0)
        w = seg_w[lo:hi].astype(np.float64)
        W[rows, cols] = w
        R[rows, cols] = w * (seg_f[lo:hi] - coef[lo:hi, :1])
        ab = a[lo:hi]
        M[s_lo:s_lo + width] += W.T @ (ab[:, :, None] * ab[:, None, :]).reshape(hi - lo, K * K)
        v[s_lo:s_lo + width] += R.T @ ab
    M = M.reshape(n_rest, K, K)
    tr = np.trace(M, axis1=1, axis2=2)
    covered = tr > 0
    lam = ridge * float(np.median(tr[covered]) / K) if covered.any() else 1.0
    T = np.zeros((n_rest, K))
    T[covered] = np.linalg.solve(M[covered] + lam * np.eye(K), v[covered][..., None])[..., 0]
    return np.ascontiguousarray(T.T), tr


def build_templates(
    source: Any,
    z: np.ndarray | None = None,
    *,
    grid: LogLambdaGrid | None = None,
    n_components: int = 10,
    n_iter: int = 25,
    tol: float = 1e-4,
    z_max: float | None = None,
    max_spectra: int | None = None,
    model_error: float = 0.1,
    ridge: float = 1e-3,
    classes: Sequence[str] | None = ("qso",),
    seed: int = 0,
    batch: int = 256,
) -> QuasarTemplates:
    """Learn rest-frame quasar eigenspectra from spectra with known redshifts (see the module docstring).

    source : a :class:`~astrocnn.spectra.dataset.SpectraSet`, a path to one, or ``(flux, ivar)`` arrays (N, grid.n)
        with ``z`` given (then ``grid`` too, unless it is the paper's grid).
    z : redshifts; by default the set's labels. Rows with a non-finite or negative z are skipped.
    n_components : number of eigenspectra K (the fits add a constant, and optionally a polynomial, to them).
    n_iter, tol : at most ``n_iter`` alternating least-squares rounds, stopping when the weighted chi2 improves
        by less than ``tol`` (relative).
    z_max : highest redshift the rest grid must reach (default: the highest training redshift). Training
        spectra above it are left out.
    max_spectra : use a random subset of this many training spectra.
    model_error : floor on the per-pixel error (normalised-flux units) used for the training weights.
    ridge : regularisation of the per-pixel template solve, relative to the median pixel's normal matrix:
        pixels that few spectra cover are pulled towards 0.
    classes : class names to train on when the set has class labels (None: all rows).
    """
    # Long because the alternating fit (coefficients, then templates, then re-orthonormalised) is one
    # iteration whose steps share a dozen arrays; split up, they would travel through every call.
    t0 = time.perf_counter()
    src_grid, z_all, chunks = _iter_training(source, z, chunk=1024, max_spectra=max_spectra, classes=classes,
                                             z_max=z_max, seed=seed)
    grid = grid or src_grid or PAPER_GRID
    if z_all.size < n_components + 2:
        raise ValueError(f"need more than {n_components + 1} training spectra, got {z_all.size}")
    step = grid.step
    z_top = float(z_all.max()) if z_max is None else float(z_max)
    n_blue = int(np.ceil(np.log10(1.0 + z_top) / step - 1e-9))
    n_rest = n_blue + grid.n
    # move to the rest frame chunk by chunk: each spectrum becomes a segment of n - 1 rest pixels, stored in
    # order of decreasing z (neighbours in z share rest pixels, so the template step's dense blocks stay narrow)
    pos = np.empty(z_all.size, np.int64)
    pos[np.argsort(-z_all, kind="stable")] = np.arange(z_all.size)
    seg_f = np.empty((z_all.size, grid.n - 1), np.float32)
    seg_w = np.empty((z_all.size, grid.n - 1), np.float32)
    start = np.empty(z_all.size, np.int64)
    lo = 0
    for flux, ivar, zz in chunks:
        if flux.shape[1] != grid.n:
            raise ValueError(f"training flux has {flux.shape[1]} pixels, the grid has {grid.n}")
        kf = n_blue - np.log10(1.0 + zz) / step
        f, w, s = _to_rest(flux, ivar, np.clip(kf, 0.0, None))
        if model_error > 0:
            w = w / (1.0 + w * model_error**2)
        at = pos[lo:lo + len(zz)]
        seg_f[at], seg_w[at], start[at] = f, w, s
        lo += len(zz)
    z_all = np.sort(z_all)[::-1]
    n_spec = z_all.size
    log.info("templates: %d training spectra at %.3f <= z <= %.3f moved to a %d-pixel rest grid (%.0f-%.0f A) "
             "in %.1f s", n_spec, z_all.min(), z_all.max(), n_rest, 10 ** (np.log10(grid.lam_min) - n_blue * step),
             grid.lam_max, time.perf_counter() - t0)

    # coverage, and the initial templates: the weighted stack plus random modes correlated over ~20 pixels
    # (smooth enough to look like spectral features, not so smooth as to be degenerate with the constant)
    K = int(n_components)
    rng = np.random.default_rng(seed)
    w_tot = np.zeros(n_rest)
    cnt = np.zeros(n_rest, np.int64)
    wf = np.zeros(n_rest)
    for i in range(n_spec):
        sl = slice(start[i], start[i] + grid.n - 1)
        w_tot[sl] += seg_w[i]
        cnt[sl] += seg_w[i] > 0
        wf[sl] += seg_w[i] * seg_f[i]
    covered = w_tot > 0
    T = np.zeros((K, n_rest))
    T[0] = np.where(covered, wf / np.where(covered, w_tot, 1.0), 0.0)
    if K > 1:
        T[1:] = gaussian_filter1d(rng.normal(size=(K - 1, n_rest)), 20.0, axis=1)
    T[:, ~covered] = 0.0
    T = _orthonormal(T)

    # alternating least squares; the basis is re-orthonormalised after each template step (a change of basis
    # that the next coefficient step undoes exactly), which keeps the coefficients' scale and the ridge stable
    history: list[float] = []
    best = (np.inf, T)
    for it in range(n_iter + 1):
        coef, chi2 = _coeff_step(T, seg_f, seg_w, start, batch)
        history.append(chi2)
        log.info("templates: iteration %d, weighted chi2 %.6g (%.1f s)", it, chi2, time.perf_counter() - t0)
        if chi2 < best[0]:
            best = (chi2, T)
        elif chi2 > best[0] * (1 + 1e-6):
            log.warning("templates: chi2 rose at iteration %d (%.6g > %.6g); keeping the best templates", it, chi2,
                        best[0])
            break
        if it == n_iter or (it > 0 and history[-2] - chi2 < tol * abs(history[-2])):
            break
        T, _ = _template_step(coef, seg_f, seg_w, start, n_rest, ridge, batch=4 * batch)
        T = _orthonormal(T)
    if best[1] is not T:
        T = best[1]
        coef, _ = _coeff_step(T, seg_f, seg_w, start, batch)

    # rotate to orthonormal eigenspectra ordered by coefficient variance (the fitted model is unchanged)
    a = coef[:, 1:]
    gram = T @ T.T
    ev, U = np.linalg.eigh(gram)
    ev = np.clip(ev, 1e-300, None)
    Tn = (U / np.sqrt(ev)).T @ T            # orthonormal rows
    an = a @ (U * np.sqrt(ev))              # a @ T == an @ Tn
    _, V = np.linalg.eigh(an.T @ an / n_spec)
    V = V[:, ::-1]
    Tr = V.T @ Tn
    ar = an @ V
    sign = np.where(np.mean(ar, axis=0) < 0, -1.0, 1.0)
    Tr *= sign[:, None]
    ar *= sign[None, :]
    info = {
        "n_train": int(n_spec),
        "z_train_min": float(z_all.min()),
        "z_train_max": float(z_all.max()),
        "n_iter": len(history),
        "chi2_history": [float(c) for c in history],
        "chi2_per_pixel": float(best[0] / max(1.0, float((seg_w > 0).sum()))),
        "model_error": float(model_error),
        "ridge": float(ridge),
        "seed": int(seed),
        "source": str(getattr(source, "path", source if isinstance(source, (str, os.PathLike)) else "arrays")),
        "method": "weighted ALS PCA with per-spectrum constant (PCA with missing data)",
    }
    log.info("templates: %d eigenspectra from %d spectra in %.1f s (%d iterations, chi2/pixel %.3f)", K, n_spec,
             time.perf_counter() - t0, len(history), info["chi2_per_pixel"])
    return QuasarTemplates(grid=grid, n_blue=n_blue, templates=Tr, weight=w_tot, count=cnt,
                           coeff_mean=ar.mean(axis=0), coeff_cov=np.cov(ar, rowvar=False), info=info)


# ------------------------------------------------------------------------------------------------------ fitting
@dataclass
class RedshiftFit:
    """Per-spectrum results of :func:`fit_redshift` (arrays of length N).

    z : best redshift (parabola-refined); z_err : its 1-sigma error from the chi2 curvature (NaN if undefined);
    chi2 : chi2 at the minimum; deltachi2 : chi2 of the best other local minimum (> exclude_kms away) minus chi2
    (inf if there is none); z_second : that minimum's redshift (NaN if none); npix : pixels with ivar > 0;
    zwarn : redrock-style warning bits (a spectrum without data gets NODATA and NaN results).
    chi2_curve (N, S) and z_grid (S,) only with ``return_chi2=True`` (z_grid runs from high to low redshift,
    one entry per integer shift).
    """

    z: np.ndarray
    z_err: np.ndarray
    chi2: np.ndarray
    deltachi2: np.ndarray
    z_second: np.ndarray
    npix: np.ndarray
    zwarn: np.ndarray
    chi2_curve: np.ndarray | None = None
    z_grid: np.ndarray | None = None


def _legendre_basis(n: int, n_poly: int) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, n)
    return np.stack([legendre.legval(x, np.eye(n_poly)[m]) for m in range(n_poly)]) if n_poly else np.zeros((0, n))


def _cholesky_chi2(A: Callable[[int, int], np.ndarray], b: Callable[[int], np.ndarray], nb: int, shape: tuple,
                   rtol: float = 1e-9) -> np.ndarray:
    """``b^T A^-1 b`` for a symmetric (nb, nb) system at every point of ``shape`` (spectra x shifts) at once.

    ``A(i, j)`` (i >= j) and ``b(i)`` return arrays broadcastable to ``shape``. Cholesky with forward
    substitution, element-wise over ``shape``: ``b^T A^-1 b = |L^-1 b|^2``. A basis function whose pivot falls
    below ``rtol`` of its diagonal (degenerate with the earlier ones, or all zero) is dropped there.
    """
    L: list[list[np.ndarray]] = [[None] * nb for _ in range(nb)]  # type: ignore[list-item]
    y: list[np.ndarray] = []
    total = np.zeros(shape)
    tmp = np.empty(shape)
    for i in range(nb):
        aii = np.broadcast_to(A(i, i), shape)
        s = np.array(aii, dtype=np.float64)
        for k in range(i):
            np.multiply(L[i][k], L[i][k], out=tmp)
            s -= tmp
        ok = s > rtol * np.abs(aii)
        inv_d = np.sqrt(np.where(ok, s, 1.0))
        np.divide(1.0, inv_d, out=inv_d)
        inv_d[~ok] = 0.0
        for j in range(i + 1, nb):
            acc = np.array(np.broadcast_to(A(j, i), shape), dtype=np.float64)
            for k in range(i):
                np.multiply(L[j][k], L[i][k], out=tmp)
                acc -= tmp
            acc *= inv_d
            L[j][i] = acc
        yi = np.array(np.broadcast_to(b(i), shape), dtype=np.float64)
        for k in range(i):
            np.multiply(L[i][k], y[k], out=tmp)
            yi -= tmp
        yi *= inv_d
        y.append(yi)
        np.multiply(yi, yi, out=tmp)
        total += tmp
    return total


def _chi2_scan(flux: np.ndarray, ivar: np.ndarray, tpl: QuasarTemplates, k_lo: int, k_hi: int, n_poly: int,
               single: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """chi2 for shifts k_lo..k_hi (B, S) and sum w f^2 (B,) for a batch of cleaned spectra. ``single``: the
    FFT correlations in float32 (the rest in float64)."""
    B, n = flux.shape
    K = tpl.n_components
    length = sfft.next_fast_len(tpl.n_rest, real=True)
    TF, TTF = tpl._ffts(length, single)
    P = _legendre_basis(n, n_poly)                       # (M, n)
    wf = ivar * flux
    rdt = np.float32 if single else np.float64
    Gf = np.conj(sfft.rfft(wf.astype(rdt), n=length, axis=-1))       # (B, F)
    Gp = np.conj(sfft.rfft((ivar[:, None, :] * P[None]).astype(rdt), n=length, axis=-1))  # (B, M, F)
    n_tt = K * (K + 1) // 2
    off = K + n_tt
    prods = np.empty((off + n_poly * K, B, TF.shape[1]), dtype=TF.dtype)
    np.multiply(TF[:, None, :], Gf[None], out=prods[:K])
    np.multiply(TTF[:, None, :], Gp[None, :, 0], out=prods[K:off])
    for m in range(n_poly):
        np.multiply(TF[:, None, :], Gp[None, :, m], out=prods[off + m * K: off + (m + 1) * K])
    corr = sfft.irfft(prods, n=length, axis=-1, overwrite_x=True)[..., k_lo:k_hi + 1]  # (ncorr, B, S)
    del prods
    S = k_hi - k_lo + 1
    # polynomial block (shift-independent), then correlations; basis order: polynomials, templates
    App = np.einsum("bp,mp,np->mnb", ivar, P, P)[..., None]   # (M, M, B, 1)
    bp = (P @ wf.T)[..., None]                                # (M, B, 1)
    pair = {}
    for idx, (j, l) in enumerate(zip(*np.triu_indices(K))):
        pair[(j, l)] = pair[(l, j)] = K + idx

    def A(i: int, j: int) -> np.ndarray:
        if i < n_poly:
            return App[i, j]
        if j < n_poly:
            return corr[off + j * K + (i - n_poly)]
        return corr[pair[(i - n_poly, j - n_poly)]]

    def b(i: int) -> np.ndarray:
        return bp[i] if i < n_poly else corr[i - n_poly]

    swff = np.einsum("bp,bp->b", wf, flux)
    chi2 = swff[:, None] - _cholesky_chi2(A, b, n_poly + K, (B, S))
    return chi2, swff


def _shift_range(tpl: QuasarTemplates, z_min: float, z_max: float | None) -> tuple[int, int]:
    z_max = tpl.z_max if z_max is None else min(float(z_max), tpl.z_max)
    k_lo = max(0, int(np.ceil(float(tpl.shift_of_z(z_max)) - 1e-9)))
    k_hi = min(tpl.n_blue, int(np.floor(float(tpl.shift_of_z(max(z_min, 0.0))) + 1e-9)))
    if k_hi - k_lo < 2:
        raise ValueError(f"redshift range [{z_min}, {z_max}] spans fewer than 3 trial shifts")
    return k_lo, k_hi


def _check_grid(flux: np.ndarray, tpl: QuasarTemplates, grid: LogLambdaGrid | None) -> None:
    if grid is not None and grid != tpl.grid:
        raise ValueError(f"spectra are on {grid}, the templates were made for {tpl.grid}")
    if flux.shape[-1] != tpl.grid.n:
        raise ValueError(f"spectra have {flux.shape[-1]} pixels, the templates' grid has {tpl.grid.n}")


def fit_redshift(
    flux: np.ndarray,
    ivar: np.ndarray,
    templates: QuasarTemplates,
    z_min: float = 0.0,
    z_max: float | None = None,
    *,
    poly_order: int = 0,
    exclude_kms: float = 1000.0,
    batch_size: int | None = None,
    return_chi2: bool = False,
    grid: LogLambdaGrid | None = None,
    precision: str = "double",
) -> RedshiftFit:
    """Best-fit redshifts of spectra (N, n) or (n,) on the templates' grid (see the module docstring).

    z_min, z_max : the redshift range scanned (``z_max`` defaults to, and is capped at, ``templates.z_max``).
    poly_order : Legendre polynomial order added in the observed frame (0: a constant only).
    exclude_kms : minima closer than this to the best one do not count for ``deltachi2``.
    batch_size : spectra per FFT batch (default: ~64 MB of work arrays).
    grid : the spectra's grid, if known, checked against the templates'.
    precision : ``"double"`` (float64 FFTs) or ``"single"`` (float32 FFTs: ~4x faster FFTs, ~1.5x faster
        fits; chi2 then carries errors up to ~5e-4 of sum w f^2, which moved no redshift by more than 0.06
        pixel on 256 simulated quasars and changed no score on 5000).
    """
    # Long because the coarse scan, the refinement of the best minima and redrock's warning bits read
    # one chi2 surface in sequence; each step is commented where it begins.
    if precision not in ("double", "single"):
        raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")
    flux = np.asarray(flux)
    one = flux.ndim == 1
    flux = np.atleast_2d(flux)
    ivar = np.atleast_2d(np.asarray(ivar))
    if flux.shape != ivar.shape:
        raise ValueError(f"flux {flux.shape} and ivar {ivar.shape} differ in shape")
    _check_grid(flux, templates, grid)
    n_poly = int(poly_order) + 1
    K = templates.n_components
    k_lo, k_hi = _shift_range(templates, z_min, z_max)
    S = k_hi - k_lo + 1
    length = sfft.next_fast_len(templates.n_rest, real=True)
    n_corr = K + K * (K + 1) // 2 + n_poly * K
    if batch_size is None:
        batch_size = max(1, int(64e6 // (n_corr * length * 16 + (n_poly + K) ** 2 * S * 4)))
    N = flux.shape[0]
    z_of = templates.z_of_shift
    out = {k: np.full(N, np.nan) for k in ("z", "z_err", "chi2", "deltachi2", "z_second")}
    npix = np.zeros(N, np.int64)
    zwarn = np.zeros(N, np.int64)
    curves = np.empty((N, S)) if return_chi2 else None
    excl = exclude_kms / (C_KMS * LN10 * templates.step)   # in pixels
    t0 = time.perf_counter()
    for lo in range(0, N, batch_size):
        hi = min(lo + batch_size, N)
        f, w = _clean(flux[lo:hi], ivar[lo:hi])
        npix[lo:hi] = (w > 0).sum(axis=1)
        chi2, _ = _chi2_scan(f, w, templates, k_lo, k_hi, n_poly, single=precision == "single")
        if curves is not None:
            curves[lo:hi] = chi2
        rows = np.arange(hi - lo)
        i0 = np.argmin(chi2, axis=1)
        c0 = chi2[rows, i0]
        interior = (i0 > 0) & (i0 < S - 1)
        cm = chi2[rows, np.clip(i0 - 1, 0, S - 1)]
        cp = chi2[rows, np.clip(i0 + 1, 0, S - 1)]
        curv = cm - 2 * c0 + cp
        good = interior & (curv > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            delta = np.where(good, 0.5 * (cm - cp) / np.where(good, curv, 1.0), 0.0)
            delta = np.clip(delta, -0.5, 0.5)
            cmin = np.where(good, c0 - 0.125 * (cm - cp) ** 2 / np.where(good, curv, 1.0), c0)
            sig_k = np.where(good, np.sqrt(2.0 / np.where(good, curv, 1.0)), np.nan)
        kbest = k_lo + i0 + delta
        zb = z_of(kbest)
        out["z"][lo:hi] = zb
        out["chi2"][lo:hi] = cmin
        out["z_err"][lo:hi] = sig_k * templates.step * LN10 * (1.0 + zb)
        # second-best distinct local minimum
        is_min = np.ones_like(chi2, dtype=bool)
        is_min[:, 1:] &= chi2[:, 1:] <= chi2[:, :-1]
        is_min[:, :-1] &= chi2[:, :-1] <= chi2[:, 1:]
        far = np.abs(np.arange(S)[None, :] - i0[:, None]) > excl
        cand = np.where(is_min & far, chi2, np.inf)
        i2 = np.argmin(cand, axis=1)
        c2 = cand[rows, i2]
        out["deltachi2"][lo:hi] = c2 - cmin
        out["z_second"][lo:hi] = np.where(np.isfinite(c2), z_of(k_lo + i2), np.nan)
        zw = np.zeros(hi - lo, np.int64)
        zw |= np.where(~interior, ZW_Z_FITLIMIT, 0)
        zw |= np.where(c2 - cmin < DELTACHI2_WARN, ZW_SMALL_DELTA_CHI2, 0)
        zw |= np.where(npix[lo:hi] < 10 * (n_poly + K), ZW_LITTLE_COVERAGE, 0)
        zw |= np.where(npix[lo:hi] == 0, ZW_NODATA, 0)
        zwarn[lo:hi] = zw
    log.debug("fit_redshift: %d spectra, %d shifts (%.3f <= z <= %.3f), %d templates + %d polynomial terms, "
              "%.3f s", N, S, float(z_of(k_hi)), float(z_of(k_lo)), K, n_poly, time.perf_counter() - t0)
    res = RedshiftFit(npix=npix, zwarn=zwarn, chi2_curve=curves,
                      z_grid=z_of(np.arange(k_lo, k_hi + 1)) if return_chi2 else None, **out)
    nodata = npix == 0
    if nodata.any():
        for name in ("z", "z_err", "chi2", "deltachi2", "z_second"):
            getattr(res, name)[nodata] = np.nan
    if one:
        for name in ("z", "z_err", "chi2", "deltachi2", "z_second", "npix", "zwarn"):
            setattr(res, name, getattr(res, name)[0])
        if curves is not None:
            res.chi2_curve = curves[0]
    return res


def direct_chi2(flux: np.ndarray, ivar: np.ndarray, templates: QuasarTemplates, shift: float, *, poly_order: int = 0
                ) -> tuple[float, np.ndarray]:
    """Brute-force chi2 of one spectrum at one (possibly fractional) shift: an explicit weighted least-squares
    fit of the polynomial + shifted templates. Returns (chi2, coefficients [poly..., templates...]).
    For checks and plots; :func:`fit_redshift` computes the same for all integer shifts at once."""
    f, w = _clean(np.ravel(flux), np.ravel(ivar))
    n = f.size
    x = np.arange(n) + float(shift)
    q = np.arange(templates.n_rest)
    T = np.stack([np.interp(x, q, t, left=0.0, right=0.0) for t in templates.templates])
    X = np.concatenate([_legendre_basis(n, poly_order + 1), T]).T   # (n, nb)
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(X * sw[:, None], f * sw, rcond=None)
    r = f - X @ coef
    return float(np.sum(w * r * r)), coef


def model_spectrum(templates: QuasarTemplates, z: float, coeffs: np.ndarray, *, poly_order: int = 0) -> np.ndarray:
    """The model ``sum_m c_m P_m + sum_j a_j T_j`` at redshift ``z`` on the observed grid; ``coeffs`` as
    returned by :func:`direct_chi2` (polynomial first, then templates)."""
    n = templates.grid.n
    X = np.concatenate([_legendre_basis(n, poly_order + 1), templates.redshifted(z)])
    return np.asarray(coeffs, dtype=np.float64) @ X


# --------------------------------------------------------------------------------------------------- evaluation
@contextmanager
def single_threaded() -> Iterator[bool]:
    """Limit BLAS/OpenMP (and torch) to one thread inside the block, if that can be done in-process
    (threadpoolctl); yields whether it could. Otherwise set OMP_NUM_THREADS=1 etc. before Python starts
    (``scripts/bench_templatefit.py`` does)."""
    import sys

    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits  # type: ignore
        except ImportError:
            env_ok = all(os.environ.get(v) == "1"
                         for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"))
            if not env_ok:
                log.warning("threadpoolctl is not installed and OMP/OPENBLAS/MKL_NUM_THREADS are not all 1: the "
                            "BLAS may use several threads (CPU time per spectrum is still per core)")
            yield env_ok
        else:
            with threadpool_limits(limits=1):
                yield True
    finally:
        if torch is not None and old_torch is not None:
            torch.set_num_threads(old_torch)


def evaluate_templatefit(
    store: Any,
    templates: QuasarTemplates,
    *,
    n: int | None = None,
    seed: int = 0,
    z_min: float = 0.0,
    z_max: float | None = None,
    poly_order: int = 0,
    classes: Sequence[str] | None = ("qso",),
    chunk: int = 512,
    precision: str = "double",
    return_fit: bool = False,
) -> dict | tuple[dict, RedshiftFit, np.ndarray]:
    """Fit (a random subset of ``n``) spectra of a prepared set and score them against their labels.

    Returns a JSON-ready dict: ``n``, ``frac_dv_lt_6000``, ``median_abs_dv_kms``, ``frac_catastrophic``
    (|dv| >= 6000 km/s, the QuasarNET definition, i.e. 1 - frac_dv_lt_6000), ``frac_dv_gt_30000`` (gross line
    confusions), ``frac_small_deltachi2`` (ZWARN SMALL_DELTA_CHI2) with the accuracy of the others, the full
    :func:`~astrocnn.core.metrics.redshift_metrics` under ``metrics``, and speed: ``seconds_per_spectrum`` (wall)
    and ``cpu_seconds_per_spectrum`` (process CPU time, i.e. per core), ``spectra_per_second_per_core``
    (reading the file excluded). Runs single-threaded (see :func:`single_threaded`).
    With ``return_fit`` also returns the :class:`RedshiftFit` and the true redshifts.
    """
    ds = store if isinstance(store, SpectraSet) else SpectraSet(store)
    if ds.grid != templates.grid:
        raise ValueError(f"{ds.path}: grid {ds.grid} differs from the templates' {templates.grid}")
    keep = np.isfinite(ds.z)
    if classes is not None and ds.cls is not None:
        keep &= np.isin(ds.cls, [ds.class_names.index(c) for c in classes if c in ds.class_names])
    rows = np.flatnonzero(keep)
    if n is not None and n < rows.size:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    fits = []
    wall = cpu = 0.0
    with single_threaded() as limited:
        # warm-up (template FFTs, allocator) outside the timing
        b = ds.read(rows[:1])
        fit_redshift(b["flux"], b["ivar"], templates, z_min, z_max, poly_order=poly_order, precision=precision)
        for lo in range(0, rows.size, chunk):
            b = ds.read(rows[lo:lo + chunk])
            t_w, t_c = time.perf_counter(), time.process_time()
            fits.append(fit_redshift(b["flux"], b["ivar"], templates, z_min, z_max, poly_order=poly_order,
                                     precision=precision))
            wall += time.perf_counter() - t_w
            cpu += time.process_time() - t_c
            log.info("templatefit: %d / %d spectra, %.1f ms each (CPU)", min(lo + chunk, rows.size), rows.size,
                     1e3 * cpu / min(lo + chunk, rows.size))
    fit = RedshiftFit(**{k: np.concatenate([getattr(f, k) for f in fits]) for k in
                         ("z", "z_err", "chi2", "deltachi2", "z_second", "npix", "zwarn")})
    z_true = ds.z[rows].astype(np.float64)
    met = redshift_metrics(fit.z, z_true)
    adv = np.abs(C_KMS * (fit.z - z_true) / (1.0 + z_true))
    small = (fit.zwarn & ZW_SMALL_DELTA_CHI2) != 0
    m = rows.size
    result = {
        "n": int(m),
        "frac_dv_lt_6000": met["frac_dv_lt_6000"],
        "median_abs_dv_kms": met["median_abs_dv_kms"],
        "frac_catastrophic": float(np.mean(adv >= 6000.0)),
        "frac_dv_gt_30000": float(np.mean(adv > 30000.0)),
        "frac_small_deltachi2": float(np.mean(small)),
        "frac_dv_lt_6000_confident": float(np.mean(adv[~small] < 6000.0)) if (~small).any() else float("nan"),
        "seconds_per_spectrum": wall / m,
        "cpu_seconds_per_spectrum": cpu / m,
        "spectra_per_second_per_core": m / cpu if cpu > 0 else float("nan"),
        "single_threaded": bool(limited),
        "n_templates": templates.n_components,
        "poly_order": int(poly_order),
        "precision": precision,
        "z_range": [float(z_min), float(templates.z_max if z_max is None else min(z_max, templates.z_max))],
        "metrics": met,
    }
    if return_fit:
        return result, fit, z_true
    return result
