"""Template-fitting redshifts (astrocnn.spectra.templatefit): FFT chi2 = direct chi2, masking, persistence,
and recovery of known redshifts. Runs on a coarse 800-pixel grid so that the whole file takes a few seconds."""
from __future__ import annotations

import numpy as np
import pytest

from astrocnn.core.metrics import dv_kms
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.templatefit import (
    ZW_NODATA,
    ZW_Z_FITLIMIT,
    QuasarTemplates,
    build_templates,
    direct_chi2,
    evaluate_templatefit,
    fit_redshift,
    model_spectrum,
)

GRID = LogLambdaGrid(3600.0, 10325.0, 800)
LINES = (1033.8, 1215.7, 1240.8, 1549.1, 1908.7, 2798.8, 4862.7, 5008.2, 6564.6)


def _toy_quasar(rng: np.random.Generator, z: float) -> np.ndarray:
    """A quasar-like spectrum on GRID: power law + broad Gaussian lines of random strength and width,
    and a mean Lyman-alpha forest depression."""
    rest = GRID.wave / (1.0 + z)
    flux = (rest / 2000.0) ** rng.normal(-1.5, 0.3)
    width = rng.uniform(2500.0, 5000.0) / 299792.458
    for lam in LINES:
        flux += rng.lognormal(np.log(0.8), 0.3) * np.exp(-0.5 * ((rest - lam) / (width * lam)) ** 2)
    flux *= np.where(rest < 1216.0, 0.75, 1.0)
    return flux


def _observe(rng: np.random.Generator, flux: np.ndarray, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """Add noise and normalise like a prepared set (zero mean, unit std; ivar scaled to match)."""
    sigma = np.abs(flux).mean() / snr
    noisy = flux + rng.normal(0.0, sigma, flux.size)
    m, s = noisy.mean(), noisy.std()
    return ((noisy - m) / s).astype(np.float32), np.full(flux.size, s**2 / sigma**2, np.float32)


@pytest.fixture(scope="module")
def toy_set():
    rng = np.random.default_rng(1)
    z = rng.uniform(0.05, 3.5, 400)
    fl, iv = zip(*(_observe(rng, _toy_quasar(rng, zi), 20.0) for zi in z))
    return np.stack(fl), np.stack(iv), z


@pytest.fixture(scope="module")
def templates(toy_set):
    flux, ivar, z = toy_set
    return build_templates((flux[:300], ivar[:300]), z[:300], grid=GRID, n_components=4, n_iter=15, z_max=4.0)


def test_templates_shape_and_grid(templates):
    t = templates
    assert t.templates.shape == (4, t.n_rest)
    assert t.z_max >= 4.0 and t.z_max < 4.0 * (1 + 1e-2)
    # the rest grid has the observed step and ends on the observed grid's last pixel
    assert np.allclose(np.diff(t.loglam), GRID.step)
    assert np.isclose(t.loglam[-1], GRID.loglam[-1])
    assert np.isclose(t.z_of_shift(t.n_blue), 0.0) and np.isclose(t.shift_of_z(t.z_of_shift(17.25)), 17.25)
    # orthonormal eigenspectra
    assert np.allclose(t.templates @ t.templates.T, np.eye(4), atol=1e-8)
    assert t.info["chi2_history"][-1] <= t.info["chi2_history"][0]


def test_spectrum_from_templates_is_fitted_back(templates):
    rng = np.random.default_rng(2)
    for z_true in (0.37, 1.234, 2.71):
        coef = np.concatenate([[0.1], templates.coeff_mean])
        clean = model_spectrum(templates, z_true, coef)
        sigma = 0.02 * clean.std()
        flux = clean + rng.normal(0.0, sigma, clean.size)
        ivar = np.full(clean.size, 1.0 / sigma**2)
        fit = fit_redshift(flux, ivar, templates, 0.0, 3.9)
        # within a tenth of a pixel (GRID's pixel is ~390 km/s)
        assert abs(templates.shift_of_z(fit.z) - templates.shift_of_z(z_true)) < 0.1, (z_true, fit.z)
        # chi2 at the integer-shift grid's parabola minimum: close to the noise level (the data were made with
        # sub-pixel-interpolated templates, which no integer shift reproduces exactly at S/N 50 per pixel)
        assert fit.chi2 < 1.5 * clean.size
        assert direct_chi2(flux, ivar, templates, templates.shift_of_z(z_true))[0] < 1.2 * clean.size
        assert fit.deltachi2 > 100 and np.isfinite(fit.z_err) and fit.z_err > 0


def test_held_out_toy_quasars(templates, toy_set):
    flux, ivar, z = toy_set
    fit = fit_redshift(flux[300:], ivar[300:], templates, 0.0, 3.9, grid=GRID)
    dv = np.abs(dv_kms(fit.z, z[300:]))
    assert np.mean(dv < 6000.0) >= 0.95
    assert np.median(dv) < 300.0


@pytest.mark.parametrize("poly_order", [0, 2])
def test_fft_chi2_equals_direct(templates, toy_set, poly_order):
    flux, ivar, _ = toy_set
    ivar = ivar[300:303].copy()
    ivar[:, 100:140] = 0.0            # a gap, so the weights are not uniform
    fit = fit_redshift(flux[300:303], ivar, templates, 0.2, 3.0, poly_order=poly_order, return_chi2=True)
    k_of = np.rint(templates.shift_of_z(fit.z_grid)).astype(int)
    for i in range(3):
        for s in (0, 7, len(k_of) // 2, len(k_of) - 1):
            chi2_direct, _ = direct_chi2(flux[300 + i], ivar[i], templates, k_of[s], poly_order=poly_order)
            # FFT correlations in float64: agreement to ~1e-9 of the chi2 scale (sum w f^2 ~ 1e5 here)
            assert fit.chi2_curve[i, s] == pytest.approx(chi2_direct, rel=1e-8, abs=1e-6)


def test_masked_pixels_are_ignored(templates, toy_set):
    flux, ivar, _ = toy_set
    f = flux[300:304].astype(np.float64).copy()
    w = ivar[300:304].astype(np.float64).copy()
    w[:, 50:120] = 0.0
    w[:, 400:410] = 0.0
    ref = fit_redshift(np.where(w > 0, f, 0.0), w, templates, return_chi2=True)
    garbage = f.copy()
    garbage[:, 50:120] = 1e6
    garbage[:, 400:405] = np.nan
    garbage[:, 405:410] = -np.inf
    got = fit_redshift(garbage, w, templates, return_chi2=True)
    np.testing.assert_allclose(got.chi2_curve, ref.chi2_curve, rtol=1e-12)
    np.testing.assert_array_equal(got.z, ref.z)
    assert np.all(got.npix == (w > 0).sum(axis=1))


def test_saved_templates_give_identical_fits(templates, toy_set, tmp_path):
    flux, ivar, _ = toy_set
    path = templates.save(tmp_path / "qso_templates.npz")
    loaded = QuasarTemplates.load(path)
    assert loaded.grid == templates.grid and loaded.n_blue == templates.n_blue
    np.testing.assert_array_equal(loaded.templates, templates.templates)
    a = fit_redshift(flux[300:310], ivar[300:310], templates)
    b = fit_redshift(flux[300:310], ivar[300:310], loaded)
    for name in ("z", "z_err", "chi2", "deltachi2", "zwarn"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # plain arrays only: the file loads without pickle
    with np.load(path, allow_pickle=False) as npz:
        assert "templates" in npz.files


def test_edges_and_errors(templates, toy_set):
    flux, ivar, z = toy_set
    far = z[300:340] > 0.3
    fit = fit_redshift(flux[300:340][far], ivar[300:340][far], templates, 0.0, 0.06)  # the true z lie outside
    assert np.all((fit.z >= 0.0) & (fit.z <= 0.06 + 1e-9))
    assert np.mean((fit.zwarn & ZW_Z_FITLIMIT) != 0) >= 0.5
    with pytest.raises(ValueError):
        fit_redshift(flux[:2, :-1], ivar[:2, :-1], templates)
    with pytest.raises(ValueError):
        fit_redshift(flux[:2], ivar[:2], templates, 1.0, 1.0001)


def test_single_precision_and_empty_spectra(templates, toy_set):
    flux, ivar, _ = toy_set
    f, w = flux[300:320].copy(), ivar[300:320].copy()
    w[3] = 0.0                                   # a spectrum without data
    d = fit_redshift(f, w, templates, 0.0, 3.9)
    s = fit_redshift(f, w, templates, 0.0, 3.9, precision="single")
    ok = np.arange(20) != 3
    assert np.all(np.abs(templates.shift_of_z(s.z[ok]) - templates.shift_of_z(d.z[ok])) < 0.1)
    assert np.isnan(d.z[3]) and d.npix[3] == 0 and d.zwarn[3] & ZW_NODATA
    assert np.all(np.isfinite(d.z[ok]))


def test_prepared_set_round_trip(toy_set, tmp_path):
    """build_templates and evaluate_templatefit read prepared sets (labels, class filter, grid)."""
    from astrocnn.spectra.preprocess import Prepared
    from astrocnn.spectra.dataset import SpectraWriter

    flux, ivar, z = toy_set
    path = tmp_path / "toy.h5"
    with SpectraWriter(path, GRID, source="test") as wr:
        for i in range(len(z)):
            cls = "star" if i % 50 == 7 else "qso"   # non-quasars are left out of both
            wr.append(Prepared(flux=flux[i], ivar=ivar[i], coverage=1.0, snr=20.0, mean=0.0, std=1.0),
                      id=f"toy{i}", z=float(z[i]), cls=cls)
    tpl = build_templates(path, n_components=3, n_iter=8, max_spectra=250)
    assert tpl.grid == GRID and tpl.info["n_train"] == 250
    res = evaluate_templatefit(path, tpl, n=60, z_max=3.9)
    assert res["n"] == 60
    assert res["frac_dv_lt_6000"] >= 0.9 and res["cpu_seconds_per_spectrum"] > 0
    assert set(res) >= {"median_abs_dv_kms", "frac_catastrophic", "spectra_per_second_per_core", "metrics"}


def test_cli_baseline_redshift(toy_set, tmp_path, capsys):
    """`astrocnn baseline redshift`: learns templates from --train and saves them, reuses them when the file
    exists, and without either says so in one line."""
    import json

    from astrocnn.apps.cli import main
    from astrocnn.spectra.preprocess import Prepared
    from astrocnn.spectra.dataset import SpectraWriter

    flux, ivar, z = toy_set
    path = tmp_path / "toy.h5"
    with SpectraWriter(path, GRID, source="test") as wr:
        for i in range(len(z)):
            wr.append(Prepared(flux=flux[i], ivar=ivar[i], coverage=1.0, snr=20.0, mean=0.0, std=1.0),
                      id=f"toy{i}", z=float(z[i]), cls="qso")
    tpl, out = tmp_path / "tpl.npz", tmp_path / "m.json"
    args = ["baseline", "redshift", "--data", str(path), "--templates", str(tpl), "--n", "40", "--out", str(out)]
    assert main(args + ["--train", str(path), "--n-components", "3", "--max-spectra", "200"]) == 0
    first = json.loads(out.read_text())
    assert tpl.exists() and first["n"] == 40 and first["n_templates"] == 3 and first["frac_dv_lt_6000"] >= 0.9
    assert main(args) == 0  # the saved templates, no training set needed: the same fits
    assert json.loads(out.read_text())["metrics"] == first["metrics"]
    capsys.readouterr()
    assert main(["baseline", "redshift", "--data", str(path), "--templates", str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.npz" in err[0] and "--train" in err[0]
