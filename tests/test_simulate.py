"""The simulated SDSS/BOSS survey: reproducibility, physics with known answers, and the designed distributions.

Two session fixtures (a quasar-only survey and a default-mix survey, ~4000 objects in all, ~10 s) feed most
tests. Statistical tolerances are stated next to each assertion.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from astrocnn.spectra.masks import DEFAULT_BAD_PIXEL_BITS, SpPixMask
from astrocnn.spectra.simulate import (
    DEFAULT_CLASS_FRACTIONS,
    QSO_Z_COMPONENTS,
    TRUTH_COLUMNS,
    simulate_object,
    simulate_survey,
)
from astrocnn.spectra.simulate.diagnostics import (
    measure_composite,
    measure_forest_transmission,
    rest_frame_stack,
)
from astrocnn.spectra.simulate.forest import mean_transmission_becker, tau_eff_becker
from astrocnn.spectra.spectrum import CLASS_NAMES

C_KMS = 299792.458


@pytest.fixture(scope="session")
def qso_survey():
    """2500 quasars with their noiseless model and unabsorbed continuum."""
    return list(simulate_survey(2500, 11, classes=("qso",), with_model=True))


@pytest.fixture(scope="session")
def mixed_survey():
    """1500 objects of the default class mix, with noiseless models."""
    return list(simulate_survey(1500, 3, with_model=True))


def _binomial_ok(k: int, n: int, p: float, nsig: float = 4.0) -> bool:
    return abs(k - n * p) <= nsig * np.sqrt(n * p * (1 - p)) + 1


# ------------------------------------------------------------------------------------------------------------
# reproducibility


def _same(a, b) -> bool:
    sa, ta = a
    sb, tb = b
    arrays = all(np.asarray(getattr(sa, k)).tobytes() == np.asarray(getattr(sb, k)).tobytes()
                 for k in ("loglam", "flux", "ivar", "mask"))
    meta = all(np.asarray(sa.meta[k]).tobytes() == np.asarray(sb.meta[k]).tobytes() for k in ("wdisp", "sky"))
    truth = all((ta[k] == tb[k]) or (isinstance(ta[k], float) and np.isnan(ta[k]) and np.isnan(tb[k])) for k in ta)
    return arrays and meta and truth and sa.id == sb.id and sa.cls == sb.cls


def test_same_seed_same_bytes():
    first = list(simulate_survey(25, 42))
    again = list(simulate_survey(25, 42))
    assert all(_same(a, b) for a, b in zip(first, again))
    assert {t["cls"] for _, t in first} == set(CLASS_NAMES)


def test_split_does_not_change_objects():
    whole = list(simulate_survey(20, 7))
    parts = list(simulate_survey(12, 7)) + list(simulate_survey(8, 7, start=12))
    assert all(_same(a, b) for a, b in zip(whole, parts))
    assert _same(whole[15], simulate_object(7, 15))


def test_different_seed_differs():
    a, _ = simulate_object(1, 0)
    b, _ = simulate_object(2, 0)
    assert a.flux.tobytes() != b.flux.tobytes()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31), index=st.integers(0, 10**6))
def test_any_object_is_reproducible_and_well_formed(seed, index):
    s, t = simulate_object(seed, index)
    s2, t2 = simulate_object(seed, index)
    assert _same((s, t), (s2, t2))
    assert list(t) == list(TRUTH_COLUMNS)
    assert s.flux.shape == s.ivar.shape == s.mask.shape == s.meta["wdisp"].shape == s.meta["sky"].shape
    assert np.all(np.isfinite(s.flux)) and np.all(s.ivar >= 0)
    assert t["plate"] == 10000 + index // 1000 and t["fiberid"] == 1 + index % 1000
    assert s.id == "%04d-%05d-%04d" % (t["plate"], t["mjd"], t["fiberid"])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="subset"):
        simulate_object(1, 0, classes=("qso", "planet"))
    with pytest.raises(ValueError, match="class_fractions"):
        simulate_object(1, 0, class_fractions={"qso": -1.0, "star": 0.5})
    with pytest.raises(ValueError, match="non-negative"):
        simulate_object(1, -3)
    with pytest.raises(ValueError):
        next(simulate_survey(5, 1, class_fractions={"galaxy": 0.0}, classes=("galaxy",)))


# ------------------------------------------------------------------------------------------------------------
# truth and metadata


def test_truth_has_fixed_columns_with_their_types(mixed_survey):
    kinds = {"i": (int, np.integer), "f": (float, np.floating), "U": (str,), "b": (bool, np.bool_)}
    for _, t in mixed_survey:
        assert list(t) == list(TRUTH_COLUMNS)
        for k, kind in TRUTH_COLUMNS.items():
            assert isinstance(t[k], kinds[kind]), (k, t[k])
    by_cls = {c: [t for _, t in mixed_survey if t["cls"] == c] for c in CLASS_NAMES}
    assert all(t["n_dla"] == -1 and np.isnan(t["alpha"]) for t in by_cls["galaxy"] + by_cls["star"])
    assert all(t["sample"] and 100 <= t["vdisp_kms"] <= 300 for t in by_cls["galaxy"])
    assert all(t["spectral_type"] and abs(t["rv_kms"]) <= 300 and t["teff"] > 2000 for t in by_cls["star"])
    assert all(abs(t["z"] - t["rv_kms"] / C_KMS) < 1e-9 for t in by_cls["star"])
    assert {t["subclass"] for t in by_cls["qso"]} <= {"BROADLINE", "BAL", "LOBAL"}


def test_class_fractions(mixed_survey):
    n = len(mixed_survey)
    for c, p in DEFAULT_CLASS_FRACTIONS.items():
        k = sum(t["cls"] == c for _, t in mixed_survey)
        assert _binomial_ok(k, n, p), (c, k, n * p)
    only_stars = [t["cls"] for _, t in simulate_survey(10, 5, class_fractions={"star": 1.0})]
    assert only_stars == ["star"] * 10


def test_meta_arrays_and_ids(mixed_survey):
    for s, t in mixed_survey[:200]:
        assert s.meta["instrument"] == t["instrument"] and s.meta["subclass"] == t["subclass"]
        assert (s.meta["plate"], s.meta["mjd"], s.meta["fiberid"]) == (t["plate"], t["mjd"], t["fiberid"])
        w = s.meta["wdisp"]
        assert 0.6 < w.min() and w.max() < 1.4  # BOSS/SDSS line-spread sigma in pixels
        assert np.all(s.meta["sky"] > 0)
    ids = [s.id for s, _ in mixed_survey]
    assert len(set(ids)) == len(ids)


# ------------------------------------------------------------------------------------------------------------
# instrument, noise and masks


def test_instruments_cover_their_ranges(mixed_survey):
    seen = set()
    for s, t in mixed_survey:
        seen.add(t["instrument"])
        if t["instrument"] == "SDSS":
            assert s.loglam[0] == pytest.approx(3.5800) and s.loglam[-1] == pytest.approx(3.9640)
            assert 3800 < s.wave[0] and s.wave[-1] < 9210
        else:
            assert s.loglam[0] == pytest.approx(3.5530) and s.loglam[-1] == pytest.approx(4.0170)
        assert np.allclose(np.diff(s.loglam), 1e-4)
    assert seen == {"BOSS", "SDSS"}
    legacy = np.mean([t["instrument"] == "SDSS" for _, t in mixed_survey])
    assert 0.10 < legacy < 0.20  # designed ~15%


def test_ivar_and_flux_are_consistent(mixed_survey):
    for s, _ in mixed_survey:
        good = s.ivar > 0
        assert np.all(np.isfinite(s.flux)) and np.all(np.isfinite(s.ivar)) and np.all(s.ivar >= 0)
        assert good.mean() > 0.9
        # pixels without information say why, with a named pixel-level bit
        assert np.all((s.mask[~good] & int(DEFAULT_BAD_PIXEL_BITS)) != 0)


def test_noise_matches_ivar(mixed_survey):
    """(flux - noiseless model) * sqrt(ivar) has unit variance away from sky lines (sky residuals are extra)."""
    sky_bits = int(SpPixMask.BRIGHTSKY | SpPixMask.BADSKYCHI)
    chi2 = []
    for s, _ in mixed_survey:
        use = (s.ivar > 0) & ((s.mask & sky_bits) == 0)
        r = (s.flux[use] - s.meta["model"][use]) * np.sqrt(s.ivar[use])
        chi2.append(np.mean(r.astype(np.float64) ** 2))
    assert np.median(chi2) == pytest.approx(1.0, abs=0.03)
    assert np.percentile(chi2, 95) < 1.2


def test_blue_end_is_noisier_than_the_middle(mixed_survey):
    """Throughput falls steeply below 4000 A: sigma relative to the sky-limited middle is several times larger."""
    ratios = []
    for s, t in mixed_survey:
        if t["instrument"] != "BOSS":
            continue
        sig = 1 / np.sqrt(np.where(s.ivar > 0, s.ivar, np.nan))
        blue = np.nanmedian(sig[(s.wave > 3620) & (s.wave < 3700)])
        mid = np.nanmedian(sig[(s.wave > 5000) & (s.wave < 5500)])
        ratios.append(blue / mid)
    assert np.median(ratios) > 2.5


def test_mask_bits(mixed_survey):
    masks = np.concatenate([s.mask for s, _ in mixed_survey[:300]])
    brightsky = np.mean((masks & SpPixMask.BRIGHTSKY) != 0)
    assert 0.02 < brightsky < 0.2
    # some spectra carry a fibre-level bit along most of their (usable) pixels
    fibre_bits = int(SpPixMask.MANYBADCOLUMNS | SpPixMask.BADFLAT | SpPixMask.NEARWHOPPER
                     | SpPixMask.MANYREJECTED | SpPixMask.LARGESHIFT | SpPixMask.SMEARIMAGE)
    flagged = [np.mean((s.mask & fibre_bits) != 0) for s, _ in mixed_survey[:300]]
    assert 0.05 < np.mean(np.array(flagged) > 0.3) < 0.35
    # bright-sky flags sit on strong sky lines: [OI] 5577 is flagged for faint objects
    faint = [s for s, t in mixed_survey if t["snr"] < 3 and t["instrument"] == "BOSS"][:30]
    at5577 = [s.mask[np.argmin(np.abs(s.wave - 5578.9))] & SpPixMask.BRIGHTSKY for s in faint]
    assert np.mean(np.array(at5577) != 0) > 0.8


# ------------------------------------------------------------------------------------------------------------
# quasars


def _line_peak_shift_kms(s, rest_line: float, z: float, half_kms: float = 6000.0) -> float:
    """Velocity of the maximum of the continuum-subtracted noiseless model within +-half_kms of the line."""
    wave, model = s.wave, np.asarray(s.meta["model"], dtype=np.float64)
    v = C_KMS * (wave / (rest_line * (1 + z)) - 1.0)
    win = np.abs(v) < half_kms
    side = (np.abs(v) > 1.2 * half_kms) & (np.abs(v) < 1.6 * half_kms)
    cont = np.polyval(np.polyfit(v[side], model[side], 1), v[win])
    return float(v[win][np.argmax(model[win] - cont)])


def test_emission_lines_at_redshifted_wavelengths(qso_survey):
    """MgII peaks at (1+z) 2798.75 A; CIV at (1+z) 1549.06 A shifted by its (true) blueshift."""
    mg, civ = [], []
    for s, t in qso_survey:
        z = t["z"]
        if t["bal"] or t["snr"] < 3:
            continue
        if 1.4 * 2798.75 * (1 + z) < s.wave[-1] and 0.7 * 2798.75 * (1 + z) > s.wave[0] and len(mg) < 30:
            mg.append(_line_peak_shift_kms(s, 2798.75, z))
        if 1.4 * 1549.06 * (1 + z) < s.wave[-1] and 0.7 * 1549.06 * (1 + z) > s.wave[0] and len(civ) < 30:
            civ.append(_line_peak_shift_kms(s, 1549.06, z) - t["civ_shift_kms"])
    assert len(mg) >= 20 and len(civ) >= 20
    # a core sigma is ~1500 km/s and Fe II and the wing shift the peak a little: 700 km/s is < 0.5 sigma
    assert np.median(np.abs(mg)) < 300 and np.max(np.abs(mg)) < 700
    assert np.median(np.abs(civ)) < 400 and np.percentile(np.abs(civ), 90) < 900


def test_forest_mean_transmission_follows_becker(qso_survey):
    """Mean F over ~200+ quasars at z_abs 2.3-3.1 within 0.02 of exp(-tau_eff) (Becker et al. 2013)."""
    r = measure_forest_transmission(qso_survey, [2.3, 2.7, 3.1])
    assert np.all(r["n_spectra"] >= 100)
    assert np.allclose(r["mean_transmission"], r["becker"], atol=0.02), r
    # the noisy flux gives the same answer (noise has zero mean)
    rn = measure_forest_transmission(qso_survey, [2.3, 2.7, 3.1], use_model=False)
    assert np.allclose(rn["mean_transmission"], r["becker"], atol=0.03)


def test_becker_formula_values():
    assert np.allclose(mean_transmission_becker([2.0, 2.5, 3.0, 3.5]), [0.905, 0.794, 0.669, 0.538], atol=2e-3)
    assert tau_eff_becker(3.5) == pytest.approx(0.751 - 0.132)


def test_forest_is_a_fluctuating_field(qso_survey):
    """The forest is not a smooth suppression: pixel transmissions scatter by ~0.2-0.45 at z ~ 2.5."""
    rms = []
    for s, t in qso_survey:
        if not (2.4 < t["z"] < 2.8) or t["n_dla"] > 0 or t["bal"]:
            continue
        rest = s.wave / (1 + t["z"])
        sel = (rest > 1041) & (rest < 1185) & (s.ivar > 0)
        f = s.meta["model"][sel] / s.meta["continuum"][sel]
        rms.append(np.std(f))
    assert 0.15 < np.median(rms) < 0.45


def test_bal_fraction(qso_survey):
    sel = [t for _, t in qso_survey if 1.7 < t["z"] < 3.5]
    k = sum(t["bal"] for t in sel)
    assert len(sel) > 600 and _binomial_ok(k, len(sel), 0.13)
    lobal = sum(t["lobal"] for t in sel)
    assert 0 < lobal < 0.3 * k


def test_bal_troughs_absorb_blueward_of_civ(qso_survey):
    """Blueward of CIV, BAL quasars hold less flux relative to their red side than non-BAL quasars."""
    ratio = {True: [], False: []}
    for s, t in qso_survey:
        if not 1.8 < t["z"] < 3.3:
            continue
        rest = s.wave / (1 + t["z"])
        model = s.meta["model"]
        trough = np.median(model[(rest > 1420) & (rest < 1520)])
        red = np.median(model[(rest > 1680) & (rest < 1780)])
        ratio[t["bal"]].append(trough / red)
    assert len(ratio[True]) > 30
    assert np.median(ratio[True]) < 0.85 * np.median(ratio[False])


def test_dlas_are_damped_and_black(qso_survey):
    found = 0
    for s, t in qso_survey:
        if t["n_dla"] < 1 or t["bal"]:
            continue
        assert t["max_log_nhi"] >= 20.3
        found += 1
    assert found > 5


def test_redshift_distribution_covers_the_design(qso_survey):
    z = np.array([t["z"] for _, t in qso_survey])
    assert z.min() < 0.3 and z.max() > 5.0 and z.max() < 5.5 and z.min() > 0
    comps = np.array(QSO_Z_COMPONENTS)
    w = comps[:, 2] / comps[:, 2].sum()

    def expected(a, b):
        lo, hi = comps[:, 0], comps[:, 1]
        return float(np.sum(w * np.clip(np.minimum(b, hi) - np.maximum(a, lo), 0, None) / (hi - lo)))

    for a, b in ((0.0, 0.3), (0.3, 0.9), (0.9, 2.15), (2.2, 3.5), (3.5, 5.0), (5.0, 5.5)):
        k = int(np.sum((z >= a) & (z < b)))
        assert _binomial_ok(k, z.size, expected(a, b)), (a, b, k, expected(a, b) * z.size)
    # the design's components: 20 / 45 / 30 / 5 per cent, scaled by 0.97 for the 2% + 1% tails
    assert np.allclose(w, [0.02, 0.194, 0.4365, 0.291, 0.0485, 0.01])


def test_quasar_snr_distribution(qso_survey):
    snr = np.array([t["snr"] for _, t in qso_survey])
    assert 2.5 < np.median(snr) < 5.0
    assert np.percentile(snr, 5) > 0.5 and 15 < np.percentile(snr, 95) < 40
    z = np.array([t["z"] for _, t in qso_survey])
    assert np.median(snr[z < 1]) > 2 * np.median(snr[(z > 2.15) & (z < 3.5)])  # bright low-z, faint high-z


def test_composite_resembles_vanden_berk(qso_survey):
    wave, stack = rest_frame_stack(qso_survey, 10 ** np.arange(np.log10(900), np.log10(8000), 2e-4))
    m = measure_composite(wave, stack)
    assert -0.7 < m["alpha_nu"] < -0.25  # Vanden Berk: -0.44
    assert 25 < m["ew_civ"] < 50 and 28 < m["ew_mgii"] < 52 and 15 < m["ew_ciii"] < 32


# ------------------------------------------------------------------------------------------------------------
# galaxies and stars


def test_galaxy_redshifts_per_sample(mixed_survey):
    gal = [t for _, t in mixed_survey if t["cls"] == "galaxy"]
    by = {}
    for t in gal:
        by.setdefault(t["sample"], []).append(t["z"])
    assert 0.07 < np.median(by["MAIN"]) < 0.13
    assert min(by["LRG"]) >= 0.15 and max(by["LRG"]) <= 0.45
    assert min(by["CMASS"]) >= 0.43 and max(by["CMASS"]) <= 0.70
    assert min(by["ELG"]) >= 0.6 and max(by["ELG"]) <= 1.1


def test_snr_by_galaxy_sample(mixed_survey):
    snr = {}
    for _, t in mixed_survey:
        if t["cls"] == "galaxy":
            snr.setdefault(t["sample"], []).append(t["snr"])
    assert 10 < np.median(snr["MAIN"]) < 30
    assert 3 < np.median(snr["LRG"] + snr["CMASS"]) < 6
    assert np.median(snr["ELG"]) < 2


def test_elgs_are_oii_dominated_and_passive_galaxies_have_a_strong_break(mixed_survey):
    elg = [t for _, t in mixed_survey if t["sample"] == "ELG"]
    passive = [t for _, t in mixed_survey if t["galaxy_type"] == "passive"]
    assert np.median([t["oii_ew"] for t in elg]) > 20
    assert 1.6 < np.median([t["d4000"] for t in passive]) < 2.1
    assert np.median([t["d4000"] for t in elg]) < 1.4


def test_galaxy_oii_line_at_redshifted_wavelength(mixed_survey):
    for s, t in mixed_survey:
        if t["sample"] != "ELG":
            continue
        model = np.asarray(s.meta["model"], dtype=np.float64)
        obs = 3728.6 * (1 + t["z"])  # flux-weighted centre of the doublet (3727.1 + 3729.9, ratio 1-1.45)
        win = np.abs(s.wave - obs) < 15
        side = (np.abs(s.wave - obs) > 20) & (np.abs(s.wave - obs) < 40)
        excess = model[win] - np.median(model[side])
        centroid = np.sum(s.wave[win] * excess) / np.sum(excess)
        assert abs(centroid - obs) < 1.5  # a pixel is ~1.7 A here


def test_star_lines_follow_radial_velocity(mixed_survey):
    checked = 0
    for s, t in mixed_survey:
        if t["cls"] != "star" or not t["spectral_type"][:1] in "AF" or t["snr"] < 5:
            continue
        model = np.asarray(s.meta["model"], dtype=np.float64)
        obs = 4862.68 * (1 + t["z"])
        win = np.abs(s.wave - obs) < 15
        assert abs(s.wave[win][np.argmin(model[win])] - obs) < 1.5  # H-beta absorption minimum, ~1 pixel
        checked += 1
    assert checked >= 3


# ------------------------------------------------------------------------------------------------------------
# diagnostics on known inputs


def test_measure_composite_recovers_known_slope_and_ew():
    wave = 10 ** np.arange(np.log10(1000), np.log10(7000), 1e-4)
    alpha = -0.5
    cont = (wave / 1450) ** (-alpha - 2)
    ew, sig = 30.0, 12.0
    gauss = np.exp(-0.5 * ((wave - 1549.06) / sig) ** 2) / (sig * np.sqrt(2 * np.pi))
    line = ew * (1549.06 / 1450) ** (-alpha - 2) * gauss
    m = measure_composite(wave, cont + line)
    assert m["alpha_nu"] == pytest.approx(alpha, abs=1e-6)
    assert m["ew_civ"] == pytest.approx(ew, rel=0.02)
    assert m["ew_mgii"] == pytest.approx(0.0, abs=0.05)


def test_forest_diagnostic_needs_the_continuum():
    s, t = simulate_object(1, 0, classes=("qso",))
    with pytest.raises(ValueError, match="with_model"):
        measure_forest_transmission([(s, t)], [2.0, 3.0])
