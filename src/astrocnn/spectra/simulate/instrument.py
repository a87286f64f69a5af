"""The observation: line-spread function, sky, throughput and noise, calibration errors and pixel masks.

Two spectrographs share the model grid (BOSS native sampling, see ``common``):

- BOSS (2009-2019): 3573-10399 A, 2" fibres; R ~ 1560 -> 2270 in the blue arm (3700-6000 A) and 1850 -> 2650
  in the red arm (6000-9000 A), i.e. a line-spread sigma of ~1.15 -> 0.72 pixel (Smee et al. 2013).
- SDSS-I/II ("legacy", 2000-2008): 3802-9204 A, 3" fibres (2.25x the sky of a BOSS fibre), bluer cut-off.

The noise model is calibrated on public BOSS and SDSS spec files: the variance per unit of (object + sky)
flux, ``k(lambda)``, is what their ``ivar`` and ``sky`` columns show: ~0.3 at 3600 A, 0.08 at 3900 A,
0.027 at 5000 A, a bump at the dichroic (~6000 A), 0.016 at 8000 A, rising again beyond 9300 A. This makes the
blue end far noisier than a flat-throughput simulation, as in real coadds.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from astrocnn.spectra.masks import SpPixMask
from astrocnn.spectra.simulate.common import MODEL_DLOG, MODEL_LOGLAM, MODEL_N, MODEL_WAVE, gaussian_lines
from astrocnn.spectra.simulate.sky import ATOMIC_SKY_LINES, STRONG_SKY_LINES, oh_lines, sky_continuum, telluric_depth

#: Resolution of a fibre relative to the instrument's nominal line-spread curve (plate focus, fibre position).
RESOLUTION_SCALES = (0.93, 1.0, 1.07)
#: Read noise, dark current and extraction noise, as an equivalent flux added to object + sky in the variance.
READ_NOISE_FLUX = 0.5
#: Fraction of the measured variance-per-flux curve left to photon noise once READ_NOISE_FLUX is added.
_K_PHOTON = 0.88


@dataclass(frozen=True)
class Instrument:
    """One spectrograph configuration on the model grid.

    ``offset``/``n``: the instrument's pixels are model-grid pixels ``offset .. offset + n - 1``.
    ``wdisp_blue``/``wdisp_red``: (wavelength A, line-spread sigma in pixels) knots of the two arms.
    ``variance_knots``: (wavelength A, variance per unit flux) of the coadd, the inverse of throughput x
    exposure. ``sky_scale``: sky flux relative to a 2" BOSS fibre.
    """

    name: str
    run2d: str
    offset: int
    n: int
    wdisp_blue: tuple[tuple[float, float], ...]
    wdisp_red: tuple[tuple[float, float], ...]
    variance_knots: tuple[tuple[float, float], ...]
    sky_scale: float
    fibre_flag_probability: float
    mjd_range: tuple[int, int]
    dichroic: float = 6000.0

    @property
    def loglam(self) -> np.ndarray:
        return MODEL_LOGLAM[self.offset:self.offset + self.n]

    @property
    def wave(self) -> np.ndarray:
        return MODEL_WAVE[self.offset:self.offset + self.n]


BOSS = Instrument(
    name="BOSS",
    run2d="v5_13_0",
    offset=0,
    n=MODEL_N,
    wdisp_blue=((3560.0, 1.17), (3600.0, 1.16), (4100.0, 1.07), (5000.0, 0.92), (6000.0, 0.84)),
    wdisp_red=((6000.0, 0.95), (7500.0, 0.86), (8800.0, 0.74), (10400.0, 0.72)),
    variance_knots=(
        (3560, 0.9), (3600, 0.30), (3700, 0.16), (3800, 0.11), (3900, 0.08), (4000, 0.065), (4200, 0.046),
        (4500, 0.035), (4800, 0.029), (5100, 0.027), (5500, 0.026), (5800, 0.028), (5950, 0.034),
        (6050, 0.031), (6300, 0.021), (6600, 0.019), (7000, 0.017), (8000, 0.016), (8800, 0.017),
        (9000, 0.019), (9300, 0.030), (9600, 0.031), (9900, 0.06), (10100, 0.12), (10200, 0.35), (10400, 0.7),
    ),
    sky_scale=1.0,
    fibre_flag_probability=0.12,
    mjd_range=(55170, 58550),
)

LEGACY = Instrument(
    name="SDSS",
    run2d="26",
    offset=270,  # 10**3.5800 = 3801.9 A
    n=3841,      # to 10**3.9640 = 9204.5 A
    wdisp_blue=((3800.0, 1.24), (4100.0, 1.17), (5000.0, 0.98), (6000.0, 0.90)),
    wdisp_red=((6000.0, 0.93), (7500.0, 0.86), (9210.0, 0.80)),
    variance_knots=(
        (3800, 0.70), (3900, 0.36), (4000, 0.25), (4150, 0.17), (4300, 0.11), (4600, 0.065), (5000, 0.052),
        (5500, 0.043), (5900, 0.046), (6100, 0.041), (6500, 0.033), (7000, 0.027), (7700, 0.025),
        (8300, 0.030), (8700, 0.045), (9000, 0.065), (9210, 0.10),
    ),
    sky_scale=2.25,  # 3" fibre
    fibre_flag_probability=0.45,
    mjd_range=(51600, 54650),
)

INSTRUMENTS = {"BOSS": BOSS, "SDSS": LEGACY}


# ---------------------------------------------------------------------------------------------------------------
# per-instrument tables, computed once per process


def _interp_knots(wave: np.ndarray, knots) -> np.ndarray:
    k = np.asarray(knots, dtype=np.float64)
    return np.interp(wave, k[:, 0], k[:, 1])


@lru_cache(maxsize=None)
def nominal_wdisp(name: str) -> np.ndarray:
    """Line-spread sigma (pixels) of instrument ``name`` at scale 1, shape (n,)."""
    inst = INSTRUMENTS[name]
    w = inst.wave
    blue = _interp_knots(w, inst.wdisp_blue)
    red = _interp_knots(w, inst.wdisp_red)
    # the coadd mixes both arms over ~100 A around the dichroic
    t = 1.0 / (1.0 + np.exp(-(w - inst.dichroic) / 25.0))
    out = (1.0 - t) * blue + t * red
    out.setflags(write=False)
    return out


@lru_cache(maxsize=None)
def lsf_matrix(name: str, res: int) -> sp.csr_matrix:
    """Sparse (n_instrument, n_model) matrix applying the line-spread function of resolution index ``res``."""
    inst = INSTRUMENTS[name]
    sigma = nominal_wdisp(name) * RESOLUTION_SCALES[res]
    half = 6
    k = np.arange(-half, half + 1)
    rows = np.repeat(np.arange(inst.n), k.size).reshape(inst.n, k.size)
    cols = (inst.offset + np.arange(inst.n))[:, None] + k[None, :]
    w = np.exp(-0.5 * (k[None, :] / sigma[:, None]) ** 2)
    ok = (cols >= 0) & (cols < MODEL_N)
    w = np.where(ok, w, 0.0)
    w /= w.sum(axis=1, keepdims=True)
    m = sp.csr_matrix((w[ok], (rows[ok], cols[ok])), shape=(inst.n, MODEL_N))
    m.sort_indices()
    return m


@dataclass(frozen=True)
class _SkyTables:
    continuum: np.ndarray      # (n,) smooth continuum
    atomic: np.ndarray         # (n,) atomic lines through the LSF
    oh: np.ndarray             # (n,) OH forest through the LSF
    strong: np.ndarray         # (n,) bool: within 2 pixels of the strongest atomic lines
    variance_per_flux: np.ndarray  # (n,) k(lambda)
    telluric: np.ndarray       # (n,) uncorrected telluric depth


@lru_cache(maxsize=None)
def sky_tables(name: str, res: int) -> _SkyTables:
    inst = INSTRUMENTS[name]
    wave = inst.wave
    wdisp = nominal_wdisp(name) * RESOLUTION_SCALES[res]

    def lines(wl: np.ndarray, fl: np.ndarray) -> np.ndarray:
        ll = np.log10(wl)
        sig = np.interp(ll, inst.loglam, wdisp) * MODEL_DLOG
        return gaussian_lines(ll, sig, fl, loglam0=float(inst.loglam[0]), n=inst.n, integrate=True) * inst.sky_scale

    atomic = np.array(ATOMIC_SKY_LINES)
    strong = np.zeros(inst.n, dtype=bool)
    for w0 in STRONG_SKY_LINES:
        strong |= np.abs(np.log10(wave / w0)) < 2.5 * MODEL_DLOG
    t = _SkyTables(
        continuum=sky_continuum(wave) * inst.sky_scale,
        atomic=lines(atomic[:, 0], atomic[:, 1]),
        oh=lines(*oh_lines()),
        strong=strong,
        variance_per_flux=_K_PHOTON * np.exp(np.interp(wave, np.asarray(inst.variance_knots)[:, 0],
                                                       np.log(np.asarray(inst.variance_knots)[:, 1]))),
        telluric=telluric_depth(wave),
    )
    for a in (t.continuum, t.atomic, t.oh, t.strong, t.variance_per_flux, t.telluric):
        a.setflags(write=False)
    return t


# ---------------------------------------------------------------------------------------------------------------
# one observation


@dataclass
class Observation:
    """What the spectrograph and pipeline return for one object, on the instrument's pixels (n,)."""

    flux: np.ndarray       # float32, 1e-17 erg/s/cm^2/A
    ivar: np.ndarray       # float32
    mask: np.ndarray       # int32 and_mask (SpPixMask bits)
    sky: np.ndarray        # float32 sky flux that was subtracted
    wdisp: np.ndarray      # float32 line-spread sigma, pixels
    model: np.ndarray      # float64 noiseless object flux (after LSF and calibration errors)
    continuum: np.ndarray | None  # float64 noiseless flux without intervening absorption (quasars), if asked
    resolution_scale: float


@lru_cache(maxsize=None)
def _calibration_basis(name: str) -> np.ndarray:
    """(7, n) smooth shapes whose weighted sum is the log of the calibration error (see calibration_error)."""
    inst = INSTRUMENTS[name]
    wave, ll = inst.wave, inst.loglam
    x = (ll - 0.5 * (ll[0] + ll[-1])) / (0.5 * (ll[-1] - ll[0]))
    blue = np.exp(-(wave - wave[0]) / 220.0)
    fade = np.exp(-(wave - wave[0]) / 350.0)
    arg = 2 * np.pi * (wave - wave[0]) / 180.0
    basis = np.stack([x, 0.5 * (3 * x**2 - 1), 0.5 * (5 * x**3 - 3 * x), blue, np.sin(arg) * fade,
                      np.cos(arg) * fade, np.tanh((wave - inst.dichroic) / 30.0)])
    basis.setflags(write=False)
    return basis


def calibration_error(rng: np.random.Generator, inst: Instrument) -> np.ndarray:
    """Multiplicative spectrophotometric error (n,): a few per cent, worst at the blue end and the dichroic.

    Legendre terms (degree 1-3, sigma 3, 2, 1.5%) across the spectrum; flux-calibration structure at the blue
    end where the throughput collapses (an 8% decaying offset and a 2.5% wiggle); a 1% blue/red arm mismatch
    at the dichroic.
    """
    a1, a2, a3, b, wig = rng.normal(0.0, (0.03, 0.02, 0.015, 0.08, 0.025))
    phase = rng.uniform(0, 2 * np.pi)
    d = rng.normal(0.0, 0.01)
    coef = np.array([a1, a2, a3, b, wig * np.cos(phase), wig * np.sin(phase), d])
    return np.exp(coef @ _calibration_basis(inst.name))


_FIBRE_BITS = (
    SpPixMask.MANYBADCOLUMNS, SpPixMask.BADFLAT, SpPixMask.NEARWHOPPER, SpPixMask.MANYREJECTED,
    SpPixMask.LARGESHIFT, SpPixMask.SMEARIMAGE | SpPixMask.SMEARHIGHSN, SpPixMask.SMEARIMAGE | SpPixMask.SMEARMEDSN,
)


def observe(
    inst: Instrument,
    model_flux: np.ndarray,
    rng: np.random.Generator,
    *,
    narrow_lines: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    continuum: np.ndarray | None = None,
) -> Observation:
    """Observe a noiseless model-grid spectrum with instrument ``inst``.

    Parameters
    ----------
    model_flux : (MODEL_N,) f_lambda in 1e-17 erg/s/cm^2/A before the line-spread function.
    narrow_lines : (centres log10 A, intrinsic sigma dex, integrated fluxes) of lines narrower than a few
        pixels; they are added analytically with the local line-spread sigma (a sampled profile would lose
        flux).
    continuum : optional second model (e.g. a quasar without its intervening absorbers) that receives the
        same line-spread function, narrow lines and calibration errors; returned in ``Observation.continuum``.
    """
    # Long because an observation is one physical sequence (resolution, sky, throughput, noise, calibration
    # errors, masks) drawing from one random stream in a fixed order: the order fixes the simulated bytes.
    res = int(rng.integers(len(RESOLUTION_SCALES)))
    scale = RESOLUTION_SCALES[res]
    lsf = lsf_matrix(inst.name, res)
    tab = sky_tables(inst.name, res)
    wdisp = nominal_wdisp(inst.name) * scale
    n = inst.n

    model = lsf @ model_flux
    cont = None if continuum is None else lsf @ continuum
    if narrow_lines is not None and len(narrow_lines[0]):
        centres, sig_int, fl = narrow_lines
        sig_lsf = np.interp(centres, inst.loglam, wdisp) * MODEL_DLOG
        nl = gaussian_lines(centres, np.sqrt(sig_int**2 + sig_lsf**2), fl, loglam0=float(inst.loglam[0]), n=n,
                            integrate=True)
        model += nl
        if cont is not None:
            cont += nl

    # calibration: smooth spectrophotometric error and telluric-correction residuals
    g = calibration_error(rng, inst) * (1.0 + rng.normal(0.0, 0.04) * tab.telluric)
    model *= g
    if cont is not None:
        cont *= g

    # sky: continuum (moon, zodiacal) and line scales vary from night to night
    s_cont, s_atomic, s_oh = np.exp(rng.normal(0.0, (0.15, 0.3, 0.25)))
    sky_lines = s_atomic * tab.atomic + s_oh * tab.oh
    sky = s_cont * tab.continuum + sky_lines

    # noise: photon noise of object + sky through the throughput, plus read noise; exposure depth varies
    depth = np.exp(rng.normal(0.0, 0.25))
    var = tab.variance_per_flux * depth * (np.maximum(model, 0.0) + sky + READ_NOISE_FLUX)
    sigma = np.sqrt(var)

    # sky-subtraction residuals: a scale error and a sub-pixel wavelength shift (dipoles at strong lines),
    # largest at [OI] 5577 and across the OH forest
    eps, shift = rng.normal(0.0, (0.006, 0.02))
    resid = sky_lines * (eps + 0.004 * rng.standard_normal(n)) + shift * np.gradient(sky_lines)
    flux = model + resid + sigma * rng.standard_normal(n)

    mask = np.zeros(n, dtype=np.int64)
    good = np.ones(n, dtype=bool)
    # pipeline's BRIGHTSKY: sky above flux + 10 sigma and 25% above the local sky level
    bright = (sky > model + 10.0 * sigma) & (sky > 1.25 * s_cont * tab.continuum)
    mask[bright] |= SpPixMask.BRIGHTSKY
    badchi = bright & (np.abs(resid) > 2.0 * sigma)
    mask[badchi] |= SpPixMask.BADSKYCHI
    mask[tab.strong & (rng.random(n) < 0.15)] |= SpPixMask.BADSKYCHI

    # fibre-level flags: set along a whole arm or fibre whose data are usable
    if rng.random() < inst.fibre_flag_probability:
        bit = _FIBRE_BITS[int(rng.integers(len(_FIBRE_BITS)))]
        span = rng.random()
        w = inst.wave
        where = np.ones(n, bool) if span < 0.4 else (w < inst.dichroic) if span < 0.7 else (w >= inst.dichroic)
        mask[where] |= int(bit)

    # pixel-level flags on usable pixels
    for _ in range(rng.poisson(0.5)):
        i0 = int(rng.integers(n))
        mask[i0:i0 + int(rng.integers(3, 8))] |= SpPixMask.NEARBADPIXEL
    mask[rng.integers(0, n, rng.poisson(1.0))] |= SpPixMask.PARTIALREJECT
    if rng.random() < 0.2:
        mask[:int(rng.integers(5, 30))] |= SpPixMask.LOWFLAT

    # pixels without data: the ends of the CCDs, rejected runs in the combination, rare bad-column blocks
    if rng.random() < 0.7:
        n0, n1 = int(rng.integers(0, 13)), int(rng.integers(0, 26))
        mask[:n0] |= SpPixMask.NODATA
        good[:n0] = False
        if n1:
            mask[-n1:] |= SpPixMask.NODATA
            good[-n1:] = False
    for _ in range(rng.poisson(0.4)):
        i0, ln = int(rng.integers(n)), int(rng.integers(1, 5))
        mask[i0:i0 + ln] |= SpPixMask.COMBINEREJ
        good[i0:i0 + ln] = False
    if rng.random() < 0.02:
        ln = int(rng.integers(20, 150))
        i0 = int(rng.integers(0, n - ln))
        mask[i0:i0 + ln] |= SpPixMask.NODATA | SpPixMask.FULLREJECT
        good[i0:i0 + ln] = False

    ivar = np.where(good, 1.0 / var, 0.0)
    flux = np.where(good, flux, 0.0)
    return Observation(
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        mask=mask.astype(np.int32),
        sky=sky.astype(np.float32),
        wdisp=wdisp.astype(np.float32),
        model=model,
        continuum=cont,
        resolution_scale=scale,
    )
