"""Robustness: properties of resampling/normalisation, fuzzing every reader, and the catalogue of bad inputs.

Everything here is deterministic (hypothesis with ``derandomize=True``, numpy generators with fixed seeds)
and small enough to run in a few seconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from astrocnn.apps.cli import main
from astrocnn.core.errors import InputError, OutputError, RejectedSpectrum
from astrocnn.gw.readers import load_g2net_sample, read_gwosc
from astrocnn.core.io import atomic_path
from astrocnn.spectra.catalog import join_catalog, read_catalog, write_catalog
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.preprocess import PreprocessConfig, pixel_edges, preprocess, rebin
from astrocnn.spectra.sdss import read_spectrum
from astrocnn.spectra.spectrum import Spectrum
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter

TEST_DATA = Path(__file__).resolve().parent / "data"
FIXTURES = TEST_DATA / "sdss"
SPEC_LITE = FIXTURES / "spec-7001-57001-0102.fits"
IMAGE = FIXTURES / "SDSSJ120000.00+300000.0.fits"
CATALOG = FIXTURES / "dr16q-mini.fits"

PROPS = settings(max_examples=40, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL_GRID = LogLambdaGrid(4000.0, 4400.0, 60)


def _native(seed: int, n: int, lo: float, hi: float) -> np.ndarray:
    """Strictly increasing, irregular log-lambda sampling of ``n`` pixels between ``lo`` and ``hi``."""
    rng = np.random.default_rng(seed)
    steps = rng.uniform(0.2, 1.0, n)
    x = np.cumsum(steps)
    return lo + (hi - lo) * (x - x[0]) / (x[-1] - x[0])


# ------------------------------------------------------------------------------------------------
# 1. Properties of resampling and normalisation
# ------------------------------------------------------------------------------------------------

@PROPS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 300), frac_zero=st.floats(0.0, 0.9),
       junk=st.floats(-1e6, 1e6))
def test_resample_zero_ivar_pixels_never_matter(seed, n, frac_zero, junk):
    rng = np.random.default_rng(seed)
    loglam = _native(seed, n, np.log10(3950), np.log10(4450))
    flux = rng.normal(size=n)
    ivar = rng.uniform(0.1, 3.0, n) * (rng.random(n) >= frac_zero)
    changed = flux.copy()
    changed[ivar == 0] = junk
    a_flux, a_ivar, a_frac = rebin(loglam, flux, ivar, SMALL_GRID)
    b_flux, b_ivar, b_frac = rebin(loglam, changed, ivar, SMALL_GRID)
    np.testing.assert_allclose(b_flux, a_flux, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(b_ivar, a_ivar)
    np.testing.assert_array_equal(b_frac, a_frac)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 300), scale=st.floats(1e-3, 1e3))
def test_resample_scaling_ivar_scales_grid_ivar_and_keeps_flux(seed, n, scale):
    rng = np.random.default_rng(seed)
    loglam = _native(seed, n, np.log10(3950), np.log10(4450))
    flux = rng.normal(size=n) * 10
    ivar = rng.uniform(0.0, 3.0, n)
    f1, iv1, fr1 = rebin(loglam, flux, ivar, SMALL_GRID)
    f2, iv2, fr2 = rebin(loglam, flux, 2 * ivar, SMALL_GRID)
    np.testing.assert_allclose(iv2, 2 * iv1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(f2, f1, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(fr2, fr1)
    f3, iv3, _ = rebin(loglam, flux, scale * ivar, SMALL_GRID)
    np.testing.assert_allclose(iv3, scale * iv1, rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(f3, f1, rtol=1e-9, atol=1e-9)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(20, 600), margin=st.floats(0.0, 0.3))
def test_resample_conserves_total_inverse_variance_on_a_coarser_covering_grid(seed, n, margin):
    rng = np.random.default_rng(seed)
    g = SMALL_GRID
    lo_edge, hi_edge = g.edges[0], g.edges[-1]
    span = hi_edge - lo_edge
    # native pixels well inside the grid (their mirrored end edges too) and finer than the grid
    lo, hi = lo_edge + (0.01 + margin / 3) * span, hi_edge - (0.01 + margin / 3) * span
    n = max(n, int(3 * (hi - lo) / g.step))
    loglam = _native(seed, n, lo, hi)
    edges = pixel_edges(loglam)
    assert edges[0] > lo_edge and edges[-1] < hi_edge
    ivar = rng.uniform(0.0, 5.0, n) * (rng.random(n) > 0.2)
    _, g_ivar, _ = rebin(loglam, rng.normal(size=n), ivar, g)
    total_native = float(np.sum(ivar * np.diff(edges)))
    total_grid = float(np.sum(g_ivar) * g.step)
    assert total_grid == pytest.approx(total_native, rel=1e-9, abs=1e-15)


_ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)


@PROPS
@given(data=st.data(), n=st.integers(2, 120), min_cov=st.sampled_from([0.0, 0.3, 0.5]))
def test_preprocess_never_lets_nan_or_inf_escape_for_physical_ranges(data, n, min_cov):
    # arbitrary mixes of NaN, inf and finite values, with finite values in a physical range
    flux_el = st.one_of(st.floats(-1e8, 1e8), st.sampled_from([np.nan, np.inf, -np.inf]))
    ivar_el = st.one_of(st.floats(-1.0, 1e8), st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))
    flux = data.draw(hnp.arrays(np.float64, n, elements=flux_el))
    ivar = data.draw(hnp.arrays(np.float64, n, elements=ivar_el))
    loglam = _native(n, n, np.log10(3990), np.log10(4410))
    _check_preprocess_finite(Spectrum(loglam, flux, ivar, id="fuzz"), min_cov)


def _check_preprocess_finite(spectrum, min_cov):
    try:
        p = preprocess(spectrum, SMALL_GRID, PreprocessConfig(min_coverage=min_cov))
    except RejectedSpectrum as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz: ")
        return
    assert np.isfinite(p.flux).all() and np.isfinite(p.ivar).all()
    assert np.isfinite([p.coverage, p.snr, p.mean, p.std]).all()
    assert np.all(p.ivar >= 0) and np.all(p.flux[p.ivar == 0] == 0)


@settings(max_examples=40, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(data=st.data(), n=st.integers(2, 60))
def test_preprocess_never_lets_nan_or_inf_escape_for_any_floats(data, n):
    flux = data.draw(hnp.arrays(np.float64, n, elements=_ANY_FLOAT))
    ivar = data.draw(hnp.arrays(np.float64, n, elements=_ANY_FLOAT))
    loglam = _native(n, n, np.log10(3990), np.log10(4410))
    _check_preprocess_finite(Spectrum(loglam, flux, ivar, id="fuzz"), 0.0)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), log_k=st.floats(-6, 6))
def test_normalised_flux_is_invariant_to_flux_scale(seed, log_k):
    rng = np.random.default_rng(seed)
    n = 400
    loglam = _native(seed, n, np.log10(3990), np.log10(4410))
    flux = 5 + np.sin(loglam * 300) + rng.normal(size=n)
    ivar = rng.uniform(0.5, 2.0, n) * (rng.random(n) > 0.1)
    k = 10.0 ** log_k
    p = preprocess(Spectrum(loglam, flux, ivar, id="a"), SMALL_GRID)
    q = preprocess(Spectrum(loglam, flux * k, ivar / k**2, id="a"), SMALL_GRID)
    # tolerance: float32 output of O(1) values
    np.testing.assert_allclose(q.flux, p.flux, atol=1e-5)
    np.testing.assert_allclose(q.ivar, p.ivar, rtol=1e-4, atol=1e-6)
    assert q.coverage == p.coverage
    assert q.mean == pytest.approx(k * p.mean, rel=1e-9) and q.std == pytest.approx(k * p.std, rel=1e-9)
    assert q.snr == pytest.approx(p.snr, rel=1e-6)


# ------------------------------------------------------------------------------------------------
# 2. Fuzz every reader with random and mutated bytes of real-format files
# ------------------------------------------------------------------------------------------------

def _mutations(good: bytes, seed: int, header_span: int, n_each: int):
    """Deterministic damaged variants of ``good``: truncations, flipped header/data bytes, zeroed blocks,
    random bytes (with and without the real file's first bytes)."""
    rng = np.random.default_rng(seed)
    size = len(good)
    header_span = max(1, min(header_span, size))
    for cut in np.unique(np.concatenate([[0, 1, 8, 16, size // 2, size - 1],
                                         rng.integers(0, size, n_each)])):
        yield f"truncate@{cut}", good[:cut]
    for area, lo, hi in (("header", 0, header_span), ("data", header_span, size)):
        if hi <= lo:
            continue
        for i in range(n_each):
            data = bytearray(good)
            for where in rng.integers(lo, hi, int(rng.integers(1, 9))):
                data[where] ^= int(rng.integers(1, 256))
            yield f"flip-{area}#{i}", bytes(data)
    for i in range(n_each):
        data = bytearray(good)
        start = int(rng.integers(0, size))
        length = int(rng.choice([8, 64, 512, 4096]))
        data[start:start + length] = bytes(len(data[start:start + length]))
        yield f"zero#{i}@{start}+{length}", bytes(data)
    for i in range(max(2, n_each // 2)):
        noise = rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
        yield f"random#{i}", noise
        yield f"prefix+random#{i}", good[:header_span] + noise


def _fuzz(reader, good: bytes, path, seed: int, header_span: int, n_each: int = 12) -> tuple[int, int]:
    """Run ``reader`` on every mutation; returns (cases, how many raised InputError). Anything else fails."""
    cases = rejected = 0
    escaped = []
    for label, data in _mutations(good, seed, header_span, n_each):
        path.write_bytes(data)
        cases += 1
        try:
            reader(path)
        except InputError as exc:
            rejected += 1
            if "\n" in str(exc) or path.name not in str(exc):
                escaped.append(f"{label}: InputError not one line naming the file: {str(exc)!r}")
        except Exception as exc:  # noqa: BLE001 - the point of the test
            escaped.append(f"{label}: {type(exc).__name__}: {exc}")
    print(f"{path.name}: {cases} cases, {rejected} InputError, {len(escaped)} escaped")
    assert not escaped, f"{len(escaped)} of {cases} damaged files raised something else or a bad message:\n" + "\n".join(escaped)
    return cases, rejected


def test_fuzz_read_spectrum_spec_lite_and_image(tmp_path):
    a = _fuzz(read_spectrum, SPEC_LITE.read_bytes(), tmp_path / "spec.fits", seed=1, header_span=4 * 2880)
    b = _fuzz(read_spectrum, IMAGE.read_bytes(), tmp_path / "image.fits", seed=2, header_span=2 * 2880)
    assert a[0] >= 60 and b[0] >= 60 and a[1] > 0 and b[1] > 0


def test_fuzz_read_catalog(tmp_path):
    cases, rejected = _fuzz(read_catalog, CATALOG.read_bytes(), tmp_path / "cat.fits", seed=3,
                            header_span=2 * 2880)
    assert cases >= 60 and rejected > 0


def test_fuzz_load_g2net_sample(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(4).standard_normal((3, 4096)))
    assert load_g2net_sample(good).shape == (3, 4096)
    cases, rejected = _fuzz(load_g2net_sample, good.read_bytes(), tmp_path / "sample.npy", seed=4,
                            header_span=128, n_each=30)
    assert cases >= 60 and rejected > 0


def _write_gwosc(path, n=4 * 512, fs=512):
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("strain/Strain", data=np.random.default_rng(5).standard_normal(n))
        ds.attrs["Xspacing"] = 1.0 / fs
        ds.attrs["Xstart"] = 1000000000
        h5["meta/GPSstart"] = 1000000000
        h5["meta/Detector"] = b"H1"
        h5["quality/simple/DQmask"] = np.full(n // fs, 127)
        h5["quality/simple/DQShortnames"] = [b"DATA", b"CBC_CAT1", b"CBC_CAT2", b"CBC_CAT3",
                                             b"BURST_CAT1", b"BURST_CAT2", b"BURST_CAT3"]


def test_fuzz_read_gwosc(tmp_path):
    good = tmp_path / "H-H1_GOOD-1000000000-4.hdf5"
    _write_gwosc(good)
    assert read_gwosc(good).strain.shape == (2048,)
    cases, rejected = _fuzz(read_gwosc, good.read_bytes(), tmp_path / "H-H1_FUZZ-1000000000-4.hdf5", seed=5,
                            header_span=2048)
    assert cases >= 60 and rejected > 0


def _write_prepared(path):
    grid = LogLambdaGrid(4000.0, 4400.0, 32)
    rng = np.random.default_rng(6)
    from astrocnn.spectra.preprocess import Prepared

    with SpectraWriter(path, grid, source="fuzz", seed=1, chunk_rows=4) as w:
        for i in range(6):
            p = Prepared(flux=rng.normal(size=32).astype(np.float32), ivar=np.ones(32, np.float32),
                         coverage=1.0, snr=3.0, mean=1.0, std=2.0)
            w.append(p, id=f"obj{i}", z=0.1 * i, cls="qso")


def test_fuzz_prepared_set(tmp_path):
    good = tmp_path / "good.h5"
    _write_prepared(good)
    assert len(SpectraSet(good)) == 6
    cases, rejected = _fuzz(SpectraSet, good.read_bytes(), tmp_path / "set.h5", seed=6, header_span=2048,
                            n_each=30)
    assert cases >= 60 and rejected > 0


# ------------------------------------------------------------------------------------------------
# 3. Bad inputs not covered by test_sdss_readers.py / test_gw.py: one-line messages naming the file
# ------------------------------------------------------------------------------------------------

def _one_line_naming(exc: BaseException, name: str) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert name in text, text


def test_image_format_bad_inputs(tmp_path):
    """The image-format reader's own damage: cut mid-data, non-FITS text, flux all NaN, ivar all zero."""
    from astrocnn.spectra.sdss import write_image_spectrum

    good = IMAGE.read_bytes()
    cases = {
        "cut.fits": good[: len(good) - 3000],
        "text.fits": b"SIMPLE? no, this is a text file\n" * 10,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    base = read_spectrum(IMAGE)
    nan = Spectrum(base.loglam, np.full_like(base.flux, np.nan), base.ivar, id="x")
    zero = Spectrum(base.loglam, base.flux, np.zeros_like(base.ivar), id="x")
    write_image_spectrum(nan, tmp_path / "nanflux.fits")
    write_image_spectrum(zero, tmp_path / "zeroivar.fits")
    expect = {"cut.fits": "truncated", "text.fits": "not a FITS file", "nanflux.fits": "flux all NaN/inf",
              "zeroivar.fits": "ivar all zero"}
    for name, problem in expect.items():
        with pytest.raises(InputError) as info:
            read_spectrum(tmp_path / name)
        _one_line_naming(info.value, name)
        assert problem in str(info.value)


def test_spectrum_redward_of_the_grid_is_rejected_naming_the_file():
    loglam = np.arange(40150, 40400) * 1e-4  # 10351-10965 A, entirely beyond 10325 A
    s = Spectrum(loglam, np.random.default_rng(0).normal(size=loglam.size), np.ones(loglam.size),
                 meta={"path": "/data/spec-9999-59999-0001.fits"})
    with pytest.raises(RejectedSpectrum, match="0% of the grid has data") as info:
        preprocess(s)
    _one_line_naming(info.value, "spec-9999-59999-0001.fits")
    # likewise entirely blueward of 3600 A
    blue = Spectrum(loglam - 0.5, s.flux, s.ivar, meta={"path": "blue.fits"})
    with pytest.raises(RejectedSpectrum) as info:
        preprocess(blue)
    _one_line_naming(info.value, "blue.fits")


def test_catalogue_row_without_file_names_the_file(tmp_path):
    rows = [dict(PLATE=1234, MJD=56789, FIBERID=12, Z=1.0)]
    catalog = read_catalog(write_catalog(rows, tmp_path / "cat.fits"))
    matches, missing = join_catalog(catalog, [tmp_path])
    assert matches == [] and len(missing) == 1
    ident, reason = missing[0]
    assert ident == "1234-56789-0012" and "spec-1234-56789-0012.fits" in reason and "\n" not in reason


def test_catalogue_without_a_table_and_with_a_bad_column_type(tmp_path):
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((4, 4))).writeto(tmp_path / "image-only.fits")
    with pytest.raises(InputError, match="no binary table") as info:
        read_catalog(tmp_path / "image-only.fits")
    _one_line_naming(info.value, "image-only.fits")
    with pytest.raises(InputError) as info:
        read_catalog(CATALOG, class_column="Z")  # a float column is not a class column
    _one_line_naming(info.value, "dr16q-mini.fits")


def test_g2net_more_bad_arrays(tmp_path):
    cases = {
        "transposed.npy": np.zeros((4096, 3)),
        "scalar.npy": np.float64(1.0),
        "complex.npy": np.zeros((3, 4096), np.complex128),
        "bool.npy": np.zeros((3, 4096), bool),
        "inf.npy": np.where(np.arange(3 * 4096).reshape(3, 4096) % 100 == 0, -np.inf, 0.0),
    }
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
    with open(tmp_path / "archive.npy", "wb") as fh:  # an .npz archive under a .npy name
        np.savez(fh, a=np.zeros((3, 4096)))
    (tmp_path / "empty.npy").write_bytes(b"")
    for name in [*cases, "archive.npy", "empty.npy"]:
        with pytest.raises(InputError) as info:
            load_g2net_sample(tmp_path / name)
        _one_line_naming(info.value, name)


def test_gwosc_more_bad_files(tmp_path):
    def write(name, build):
        with h5py.File(tmp_path / name, "w") as h5:
            build(h5)
        return tmp_path / name

    def strain2d(h5):
        ds = h5.create_dataset("strain/Strain", data=np.zeros((4, 4)))
        ds.attrs["Xspacing"] = 1 / 4096
        ds.attrs["Xstart"] = 0

    def no_spacing(h5):
        h5.create_dataset("strain/Strain", data=np.zeros(16)).attrs["Xstart"] = 0

    def no_gps(h5):
        h5.create_dataset("strain/Strain", data=np.zeros(16)).attrs["Xspacing"] = 1 / 4096

    def empty(h5):
        ds = h5.create_dataset("strain/Strain", data=np.zeros(0))
        ds.attrs["Xspacing"] = 1 / 4096
        ds.attrs["Xstart"] = 0

    def group_only(h5):
        h5.create_group("strain")

    paths = [write("H-H1_2D-0-1.hdf5", strain2d), write("H-H1_NOSPACING-0-1.hdf5", no_spacing),
             write("H-H1_NOGPS-0-1.hdf5", no_gps), write("H-H1_EMPTY-0-1.hdf5", empty),
             write("H-H1_GROUP-0-1.hdf5", group_only)]
    (tmp_path / "notes.hdf5").write_text("not hdf5")
    paths += [tmp_path / "notes.hdf5", tmp_path / "missing.hdf5"]
    for p in paths:
        with pytest.raises(InputError) as info:
            read_gwosc(p)
        _one_line_naming(info.value, p.name)


def test_output_under_a_regular_file_is_an_output_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("I am a file")
    with pytest.raises(OutputError) as info:
        with atomic_path(blocker / "out.h5"):
            pass
    _one_line_naming(info.value, "out.h5")
    with pytest.raises(OutputError) as info:
        SpectraWriter(blocker / "sub" / "set.h5", LogLambdaGrid(4000.0, 4400.0, 8))
    _one_line_naming(info.value, "set.h5")
    assert blocker.read_text() == "I am a file"


def test_cli_prepare_to_unwritable_place_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code = main(["-q", "prepare", "sdss", str(FIXTURES), "--out", str(blocker / "out.h5")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and "out.h5" in err[-1] and "Traceback" not in "\n".join(err)


def test_cli_prepare_empty_inputs_exits_2_with_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out.h5"
    assert main(["prepare", "sdss", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("astrocnn: error: ") and "empty" in err[0]
    assert not out.exists()


def test_prepared_set_bad_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    with h5py.File(tmp_path / "future.h5", "w") as h5:
        h5.attrs["format"] = "astrocnn-prepared"
        h5.attrs["format_version"] = 99
    with h5py.File(tmp_path / "noid.h5", "w") as h5:
        h5.attrs["format"] = "astrocnn-prepared"
        h5.attrs["format_version"] = 1
        h5.attrs["grid"] = json.dumps(dict(lam_min=4000.0, lam_max=4400.0, n=8))
    (tmp_path / "text.h5").write_text("hello")
    (tmp_path / "empty.h5").write_bytes(b"")
    for name in ("other.h5", "future.h5", "noid.h5", "text.h5", "empty.h5", "missing.h5"):
        with pytest.raises(InputError) as info:
            SpectraSet(tmp_path / name)
        _one_line_naming(info.value, name)

