"""The grid, resampling and normalisation: known answers and a brute-force reference."""
import numpy as np
import pytest

from astrocnn.core.errors import RejectedSpectrum
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.masks import DEFAULT_BAD_PIXEL_BITS, SpPixMask
from astrocnn.spectra.preprocess import PreprocessConfig, pixel_edges, preprocess, rebin
from astrocnn.spectra.spectrum import Spectrum

BOSS_LOGLAM = np.arange(35530, 40170) * 1e-4  # BOSS native sampling, 1e-4 dex


def test_paper_grid_numbers():
    g = PAPER_GRID
    assert g.n == 4618 and g.loglam.size == 4618
    assert g.wave[0] == pytest.approx(3600.0, rel=1e-12) and g.wave[-1] == pytest.approx(10325.0, rel=1e-12)
    assert g.step == pytest.approx(9.911e-5, rel=1e-3)  # the docs' "~9.91e-5 dex"
    assert g.dv_per_pixel_kms == pytest.approx(68.4, abs=0.1)
    assert LogLambdaGrid.from_json(g.to_json()) == g
    with pytest.raises(ValueError, match="lam_min"):
        LogLambdaGrid(5000, 4000, 10)


def brute_force_resample(loglam, flux, ivar, grid):
    """Reference: explicit overlap matrix a_ij = |native_i ∩ grid_j| / |grid_j|."""
    e, ge = pixel_edges(loglam), grid.edges
    lo = np.maximum(e[:-1, None], ge[None, :-1])
    hi = np.minimum(e[1:, None], ge[None, 1:])
    a = np.clip(hi - lo, 0, None) / grid.step
    w = (a * ivar[:, None]).sum(0)
    wf = (a * (ivar * flux)[:, None]).sum(0)
    return np.where(w > 0, wf / np.where(w > 0, w, 1), 0), w


def test_resample_matches_brute_force_on_irregular_sampling():
    rng = np.random.default_rng(1)
    grid = LogLambdaGrid(4000, 4400, 120)
    loglam = np.sort(rng.uniform(np.log10(3990), np.log10(4300), 300))
    flux = rng.normal(size=300)
    ivar = rng.uniform(0, 2, size=300) * (rng.random(300) > 0.1)
    f, iv, _ = rebin(loglam, flux, ivar, grid)
    f_ref, iv_ref = brute_force_resample(loglam, flux, ivar, grid)
    np.testing.assert_allclose(iv, iv_ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(f, f_ref, rtol=1e-8, atol=1e-9)
    # beyond the data (4300-4400 A) nothing is invented
    assert np.all(iv[grid.wave > 4310] == 0) and np.all(f[grid.wave > 4310] == 0)


def test_resample_is_identity_on_the_same_grid_and_conserves_flux_density():
    g = PAPER_GRID
    rng = np.random.default_rng(2)
    flux, ivar = rng.normal(size=g.n), rng.uniform(0.5, 2, size=g.n)
    f, iv, frac = rebin(g.loglam, flux, ivar, g)
    np.testing.assert_allclose(f, flux, atol=1e-9)
    np.testing.assert_allclose(iv, ivar, rtol=1e-9)
    assert frac.min() == pytest.approx(1.0)
    # a smooth spectrum sampled at the BOSS step keeps its shape (flux density, not counts)
    smooth = 3 + np.sin(BOSS_LOGLAM * 200)
    f2, _, _ = rebin(BOSS_LOGLAM, smooth, np.ones_like(smooth), g)
    np.testing.assert_allclose(f2[10:-10], 3 + np.sin(g.loglam[10:-10] * 200), atol=2e-3)


def test_inverse_variance_weighting_of_two_pixels():
    # two native pixels exactly filling one grid pixel: the result is their ivar-weighted mean
    grid = LogLambdaGrid(10 ** 3.6, 10 ** 3.6002, 2)  # step 2e-4
    loglam = np.array([3.6 - 0.5e-4, 3.6 + 0.5e-4, 3.6002 - 0.5e-4, 3.6002 + 0.5e-4])
    flux = np.array([1.0, 4.0, 2.0, 2.0])
    ivar = np.array([3.0, 1.0, 1.0, 0.0])
    f, iv, frac = rebin(loglam, flux, ivar, grid)
    assert f[0] == pytest.approx((3 * 1 + 1 * 4) / 4)
    assert iv[0] == pytest.approx(0.5 * 3 + 0.5 * 1)
    assert f[1] == pytest.approx(2.0) and frac[1] == pytest.approx(0.5)


def make_spectrum(flux_scale=1.0, seed=0, loglam=BOSS_LOGLAM, mask=None):
    rng = np.random.default_rng(seed)
    wave = 10 ** loglam
    flux = flux_scale * (10 * (wave / 5000) ** -1.5 + 30 * np.exp(-0.5 * ((wave - 1549.06 * 3.2) / 15) ** 2))
    flux = flux + flux_scale * rng.normal(size=wave.size)
    ivar = np.full(wave.size, 1 / flux_scale**2)
    return Spectrum(loglam, flux, ivar, mask=mask, id="test-spectrum")


def test_normalisation_zero_mean_unit_std_and_scale_invariant():
    p = preprocess(make_spectrum())
    valid = p.ivar > 0
    assert p.coverage == pytest.approx(1.0)
    assert abs(p.flux[valid].mean()) < 1e-5 and p.flux[valid].std() == pytest.approx(1, abs=1e-5)
    assert np.isfinite(p.flux).all() and np.isfinite(p.ivar).all()
    q = preprocess(make_spectrum(flux_scale=1e-3))
    np.testing.assert_allclose(p.flux, q.flux, atol=2e-5)
    np.testing.assert_allclose(p.ivar, q.ivar, rtol=1e-4)
    # the normalisation can be undone
    assert p.snr > 1 and (p.flux * p.std + p.mean)[valid].mean() == pytest.approx(p.mean, rel=1e-5)


def test_legacy_coverage_leaves_the_edges_empty():
    legacy = np.arange(35800, 39640) * 1e-4  # SDSS-I/II 3802-9204 A
    p = preprocess(make_spectrum(loglam=legacy))
    w = PAPER_GRID.wave
    assert np.all(p.ivar[w < 3795] == 0) and np.all(p.flux[w < 3795] == 0)
    assert np.all(p.ivar[w > 9210] == 0)
    assert 0.8 < p.coverage < 0.9


def test_mask_bits_fibre_flags_keep_pixels_pixel_flags_drop_them():
    n = BOSS_LOGLAM.size
    fibre = np.full(n, int(SpPixMask.BADFLAT | SpPixMask.MANYBADCOLUMNS))
    p = preprocess(make_spectrum(mask=fibre))
    assert p.coverage == pytest.approx(1.0)
    pixel = np.zeros(n, np.int64)
    pixel[1000:1500] = SpPixMask.COMBINEREJ
    p = preprocess(make_spectrum(mask=pixel))
    dropped = (PAPER_GRID.loglam > BOSS_LOGLAM[1001]) & (PAPER_GRID.loglam < BOSS_LOGLAM[1498])
    assert np.all(p.ivar[dropped] == 0) and np.all(p.flux[dropped] == 0)
    assert int(DEFAULT_BAD_PIXEL_BITS) & int(SpPixMask.BADFLAT) == 0


def test_rejections_have_reasons_and_never_nan():
    short = np.arange(35530, 37000) * 1e-4
    with pytest.raises(RejectedSpectrum, match="of the grid has data"):
        preprocess(make_spectrum(loglam=short))
    # the threshold is configurable
    p = preprocess(make_spectrum(loglam=short), config=PreprocessConfig(min_coverage=0.2))
    assert p.coverage < 0.5
    flat = Spectrum(BOSS_LOGLAM, np.full(BOSS_LOGLAM.size, 7.0), np.ones(BOSS_LOGLAM.size), id="flat")
    with pytest.raises(RejectedSpectrum, match="zero variance"):
        preprocess(flat)
    dead = Spectrum(BOSS_LOGLAM, np.full(BOSS_LOGLAM.size, np.nan), np.ones(BOSS_LOGLAM.size), meta={"path": "x.fits"})
    with pytest.raises(RejectedSpectrum, match=r"^x\.fits: no valid pixels"):
        preprocess(dead)
