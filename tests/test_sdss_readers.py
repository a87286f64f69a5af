"""SDSS spectrum readers/writers and the DR16Q catalogue: real files, committed fixtures, round trips, bad input."""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astrocnn.core.errors import InputError
from astrocnn.spectra.catalog import join_catalog, read_catalog, write_catalog
from astrocnn.spectra.masks import DEFAULT_BAD_PIXEL_BITS, SpPixMask
from astrocnn.spectra.sdss import (
    FORMAT_IMAGE, FORMAT_SPEC, find_spec_files, parse_spec_filename, read_spectrum, spec_filename, spec_id,
    write_image_spectrum, write_spec_lite,
)
from astrocnn.spectra.spectrum import Spectrum, class_from_sdss

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"  # same place as conftest's shared_data fixture
FIXTURES = TEST_DATA / "sdss"
BAD = TEST_DATA / "sdss-bad"
#: Relative width of one native SDSS pixel (1e-4 dex).
PIXEL = 10 ** 1e-4 - 1
QSO_Z = 2.3  # the fixture quasar's redshift (scripts/make_fixtures.py)


def kept_fraction(s: Spectrum) -> float:
    """Fraction of pixels the default bad-pixel rule keeps: ivar > 0 and no pixel-level bad bit."""
    return float(np.mean((s.ivar > 0) & ((s.mask & int(DEFAULT_BAD_PIXEL_BITS)) == 0)))


# ------------------------------------------------------------------------------------------------
# Real SDSS files (../shared/data/sdss), checked against index.csv
# ------------------------------------------------------------------------------------------------

def _index_rows():
    index = SHARED_DATA / "sdss" / "index.csv"
    if not index.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{index} is absent"))]
    with open(index, newline="") as fh:
        return [pytest.param(row, id=row["file"]) for row in csv.DictReader(fh)]


@pytest.mark.real_data
@pytest.mark.parametrize("row", _index_rows())
def test_real_file_matches_index(row, shared_data):
    path = shared_data / "sdss" / row["file"]
    s = read_spectrum(path)
    assert s.meta["plate"] == int(row["plate"]) and s.meta["mjd"] == int(row["mjd"])
    assert s.meta["run2d"] == row["run2d"]
    if row["fiber"]:
        assert s.meta["fiberid"] == int(row["fiber"])
        assert s.id == spec_id(int(row["plate"]), int(row["mjd"]), int(row["fiber"]))
        assert path.name == spec_filename(int(row["plate"]), int(row["mjd"]), int(row["fiber"]))
        assert s.meta["format"] == FORMAT_SPEC
    else:
        assert s.meta["fiberid"] is None and s.id == path.stem
    if row["z"]:
        # index.csv rounds to 5 decimals; the file stores float32.
        assert s.z == pytest.approx(float(row["z"]), abs=1e-5)
        assert s.cls == class_from_sdss(row["cls"]) and s.cls is not None
        assert s.meta["zwarning"] == int(row["zwarning"])
        assert s.meta["subclass"] == row["subclass"]
    else:
        assert np.isnan(s.z) and s.cls is None
    # Wavelength range within one native pixel of the index's values.
    assert abs(s.wave[0] - float(row["lam_min_A"])) <= float(row["lam_min_A"]) * PIXEL
    assert abs(s.wave[-1] - float(row["lam_max_A"])) <= float(row["lam_max_A"]) * PIXEL
    # Native SDSS grid: the float32 loglam column is returned as the exact 1e-4 dex grid.
    np.testing.assert_allclose(np.diff(s.loglam), 1e-4, rtol=0, atol=1e-12)
    assert s.flux.dtype == np.float32 and s.ivar.dtype == np.float32 and s.mask.dtype == np.int32
    assert np.all(np.isfinite(s.flux[s.ivar > 0]))
    # These are good spectra: the default rule must keep almost all pixels, fibre-level bits or not.
    assert kept_fraction(s) > 0.8
    json.dumps(s.meta)  # meta holds scalars only, ready for any store


@pytest.mark.real_data
@pytest.mark.parametrize("row", _index_rows())
def test_real_file_same_arrays_as_astropy(row, shared_data):
    """The fast reader returns exactly astropy's arrays (loglam: the exact grid, within one float32 ulp)."""
    from astropy.io import fits

    path = shared_data / "sdss" / row["file"]
    s = read_spectrum(path)
    with fits.open(path) as hdul:
        if s.meta["format"] == FORMAT_IMAGE:
            flux, ivar, loglam = hdul[0].data, hdul[1].data, hdul[2].data
            mask = np.zeros(flux.shape, dtype=np.int32)
        else:
            coadd = hdul[1].data
            names = {n.lower(): n for n in coadd.columns.names}
            flux, ivar, loglam, mask = (coadd[names[n]] for n in ("flux", "ivar", "loglam", "and_mask"))
            labels = hdul[2].data[0]
            assert s.z == float(labels["Z"]) and s.meta["class_sdss"] == labels["CLASS"].strip()
        np.testing.assert_array_equal(s.flux, flux)
        np.testing.assert_array_equal(s.ivar, ivar)
        np.testing.assert_array_equal(s.mask, mask)
        ulp = np.spacing(np.asarray(loglam, dtype=np.float32)).astype(np.float64)
        assert np.all(np.abs(s.loglam - np.asarray(loglam, dtype=np.float64)) <= ulp)


@pytest.mark.real_data
def test_fibre_level_bits_do_not_drop_good_legacy_spectra(shared_data):
    """Design doc warning: a legacy galaxy has MANYBADCOLUMNS (a fibre-level bit) on ~46% of its pixels."""
    s = read_spectrum(shared_data / "sdss" / "legacy" / "spec-0266-51602-0013.fits")
    any_bit_kept = np.mean((s.ivar > 0) & (s.mask == 0))
    assert np.mean((s.mask & SpPixMask.MANYBADCOLUMNS) != 0) > 0.4
    assert any_bit_kept < 0.6 and kept_fraction(s) > 0.99


@pytest.mark.real_data
def test_rm017_epochs_are_one_object(shared_data):
    spectra = [read_spectrum(p) for p in find_spec_files(shared_data / "sdss" / "multi-epoch-RM017")]
    assert len(spectra) == 4 and len({s.id for s in spectra}) == 4
    assert {s.cls for s in spectra} == {"qso"}
    zs = np.array([s.z for s in spectra])
    assert zs.max() - zs.min() < 1e-3  # 0.456 in all four
    ra = np.array([s.meta["ra"] for s in spectra])
    dec = np.array([s.meta["dec"] for s in spectra])
    assert np.ptp(ra) * np.cos(np.radians(dec.mean())) * 3600 < 1.0 and np.ptp(dec) * 3600 < 1.0
    # [OIII] 5008 (observed ~7290 A) peaks at the same pixel to within 3 pixels in every epoch.
    peaks = []
    for s in spectra:
        sel = (s.wave > 7200) & (s.wave < 7400)
        smooth = np.convolve(s.flux[sel], np.ones(5) / 5, mode="same")
        peaks.append(s.loglam[sel][np.argmax(smooth)])
    assert np.ptp(peaks) <= 3e-4


@pytest.mark.real_data
def test_old_image_format_file(shared_data):
    s = read_spectrum(shared_data / "sdss" / "old-image-format" / "SDSSJ220248.31+123656.3.fits")
    assert s.meta["format"] == FORMAT_IMAGE and s.id == "SDSSJ220248.31+123656.3"
    assert (s.meta["plate"], s.meta["mjd"], s.meta["fiberid"]) == (5063, 55831, None)
    assert s.wave[0] == pytest.approx(3553.9, abs=0.1) and s.wave[-1] == pytest.approx(10356.2, abs=0.1)
    assert np.isnan(s.z) and s.cls is None
    # The file's own uint8 flag (1 = good) is 0 at bright sky lines and the empty ends: ~97% good.
    assert 0.95 < s.meta["good_pixel_fraction"] < 0.99
    assert 0.98 < np.mean(s.ivar > 0) < 1.0


# ------------------------------------------------------------------------------------------------
# Committed fixtures (tests/data, written by scripts/make_fixtures.py)
# ------------------------------------------------------------------------------------------------

def _line_peak(s: Spectrum, centre: float, half_width: float = 80.0) -> float:
    sel = (s.wave > centre - half_width) & (s.wave < centre + half_width) & (s.ivar > 0)
    smooth = np.convolve(s.flux[sel], np.ones(9) / 9, mode="same")
    return float(s.wave[sel][4:-4][np.argmax(smooth[4:-4])])


def test_fixture_boss_quasar_full_range():
    s = read_spectrum(FIXTURES / "spec-7001-57001-0101.fits")
    assert s.id == "7001-57001-0101" and s.cls == "qso" and s.z == pytest.approx(QSO_Z, abs=1e-6)
    assert s.meta["subclass"] == "BROADLINE" and s.meta["run2d"] == "v5_13_0"
    assert s.wave[0] == pytest.approx(3600, rel=PIXEL) and s.wave[-1] == pytest.approx(10400, rel=PIXEL)
    # Lines injected at (1 + z) x rest; the peak of the smoothed, noisy line lies within a few Angstrom.
    assert _line_peak(s, (1 + QSO_Z) * 1549.06) == pytest.approx((1 + QSO_Z) * 1549.06, abs=8.0)
    assert _line_peak(s, (1 + QSO_Z) * 2798.75) == pytest.approx((1 + QSO_Z) * 2798.75, abs=15.0)
    assert kept_fraction(s) > 0.95


def test_fixture_without_extname_reads_by_hdu_index():
    from astropy.io import fits

    path = FIXTURES / "spec-7001-57001-0102.fits"
    with fits.open(path) as hdul:
        assert all("EXTNAME" not in h.header for h in hdul)
        assert hdul[1].columns.names[:3] == ["FLUX", "LOGLAM", "IVAR"]  # upper case, as older BOSS files
    s = read_spectrum(path)
    assert s.id == "7001-57001-0102" and s.cls == "qso" and s.z == pytest.approx(QSO_Z, abs=1e-6)
    assert _line_peak(s, (1 + QSO_Z) * 1549.06) == pytest.approx((1 + QSO_Z) * 1549.06, abs=8.0)


def test_fixture_legacy_galaxy_gzipped():
    s = read_spectrum(FIXTURES / "spec-0500-51990-0201.fits.gz")
    assert s.id == "0500-51990-0201" and s.cls == "galaxy" and s.z == pytest.approx(0.1, abs=1e-6)
    assert s.meta["run2d"] == "26"
    assert s.wave[0] == pytest.approx(3800, rel=PIXEL) and s.wave[-1] == pytest.approx(9200, rel=PIXEL)
    # Every pixel carries the fibre-level MANYBADCOLUMNS bit, like real legacy files; none is dropped for it.
    assert np.all(s.mask & SpPixMask.MANYBADCOLUMNS) and kept_fraction(s) > 0.95


def test_fixture_image_format():
    s = read_spectrum(FIXTURES / "SDSSJ120000.00+300000.0.fits")
    assert s.meta["format"] == FORMAT_IMAGE and s.id == "SDSSJ120000.00+300000.0"
    assert (s.meta["plate"], s.meta["mjd"], s.meta["fiberid"]) == (7002, 57002, None)
    assert np.isnan(s.z) and s.cls is None
    np.testing.assert_allclose(np.diff(s.loglam), 1e-4, rtol=0, atol=1e-12)


BAD_FILES = [
    ("bad-truncated.fits", "truncated"),
    ("bad-not-fits.fits", "not a FITS file"),
    ("bad-empty.fits", "empty file"),
    ("bad-no-tables.fits", "no spectrum table"),
    ("bad-nan-flux.fits", "flux all NaN/inf"),
    ("bad-ivar-zero.fits", "ivar all zero"),
    ("bad-loglam-decreasing.fits", "loglam not increasing"),
    ("bad-no-flux-column.fits", "no flux column"),
    ("bad-lengths.fits", "lengths differ"),
]


@pytest.mark.parametrize("name, problem", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_fixture_raises_one_line_input_error(name, problem):
    with pytest.raises(InputError) as info:
        read_spectrum(BAD / name)
    message = str(info.value)
    assert message.startswith(str(BAD / name) + ": ") and problem in message and "\n" not in message


def test_catalogue_is_not_a_spectrum():
    with pytest.raises(InputError, match="no spectrum table.*looks like a catalogue: 4 rows"):
        read_spectrum(FIXTURES / "dr16q-mini.fits")


def test_every_bad_fixture_is_covered():
    assert sorted(p.name for p in BAD.iterdir()) == sorted(b[0] for b in BAD_FILES)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_spectrum(tmp_path / "nope.fits")
    with pytest.raises(InputError, match="folder"):
        read_spectrum(tmp_path)
    with pytest.raises(InputError, match="no such file or folder"):
        find_spec_files([tmp_path / "nope"])


def test_fixture_script_is_deterministic(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", REPO_ROOT / "scripts" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def digests(folder):
        return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert module.main([str(tmp_path / "a")]) == 0
    assert module.main([str(tmp_path / "b")]) == 0
    first = digests(tmp_path / "a")
    assert first == digests(tmp_path / "b")
    assert set(first) == {p.relative_to(TEST_DATA) for p in TEST_DATA.rglob("*") if p.is_file()
                          and p.parent.name in ("sdss", "sdss-bad")}
    assert sum((tmp_path / "a" / p).stat().st_size for p in first) < 400_000  # tiny fixtures


# ------------------------------------------------------------------------------------------------
# Round trips
# ------------------------------------------------------------------------------------------------

def random_spectrum(rng, loglam, **meta) -> Spectrum:
    n = loglam.size
    flux = rng.normal(3.0, 1.0, n).astype(np.float32)
    ivar = rng.uniform(0.5, 4.0, n).astype(np.float32)
    ivar[rng.random(n) < 0.05] = 0.0
    mask = np.where(rng.random(n) < 0.1, int(SpPixMask.BRIGHTSKY), 0)
    mask[:2] |= int(SpPixMask.NODATA | SpPixMask.BADFLAT)
    meta = dict(dict(plate=1234, mjd=56789, fiberid=42, subclass="BROADLINE", zwarning=4, run2d="v5_13_2",
                     sky=rng.uniform(0, 10, n).astype(np.float32), wdisp=np.full(n, 1.1, dtype=np.float32)), **meta)
    return Spectrum(loglam=loglam, flux=flux, ivar=ivar, mask=mask, id="1234-56789-0042", z=1.234567, cls="qso",
                    meta=meta)


SDSS_GRID = np.arange(35600, 35900) / 1e4  # pixel k at exactly k x 1e-4 dex


@pytest.mark.parametrize("extname", [True, False], ids=["extname", "no-extname"])
@pytest.mark.parametrize("suffix", [".fits", ".fits.gz"])
def test_spec_lite_round_trip(tmp_path, extname, suffix):
    from astropy.io import fits

    rng = np.random.default_rng(1)
    s = random_spectrum(rng, SDSS_GRID)
    path = write_spec_lite(s, tmp_path / ("spec-1234-56789-0042" + suffix), extname=extname)
    r = read_spectrum(path)
    # On the native grid, loglam (stored float32) comes back as the exact float64 grid.
    np.testing.assert_array_equal(r.loglam, s.loglam)
    # flux and ivar are float32 in the file and in memory: exact. and_mask is int32: exact.
    np.testing.assert_array_equal(r.flux, s.flux)
    np.testing.assert_array_equal(r.ivar, s.ivar)
    np.testing.assert_array_equal(r.mask, s.mask)
    # Z is float32 in SPALL: equal to within one float32 ulp.
    assert abs(r.z - s.z) <= np.spacing(np.float32(s.z))
    assert (r.id, r.cls) == (s.id, s.cls)
    for key in ("plate", "mjd", "fiberid", "subclass", "zwarning", "run2d"):
        assert r.meta[key] == s.meta[key], key
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "rb") as fh, fits.open(fh) as hdul:
        assert [h.name for h in hdul] == (["PRIMARY", "COADD", "SPALL"] if extname else ["PRIMARY", "", ""])
        coadd = hdul[1]
        assert coadd.columns.formats == ["E", "E", "E", "J", "J", "E", "E", "E"]
        names = [n.lower() for n in coadd.columns.names]
        assert names == ["flux", "loglam", "ivar", "and_mask", "or_mask", "wdisp", "sky", "model"]
        np.testing.assert_array_equal(coadd.data.field(5), s.meta["wdisp"])
        np.testing.assert_array_equal(coadd.data.field(6), s.meta["sky"])
        assert hdul[0].header["PLATEID"] == 1234 and hdul[0].header["FIBERID"] == 42
        assert hdul[2].data["CLASS"][0] == "QSO"


def test_spec_lite_round_trip_off_sdss_grid(tmp_path):
    """A grid that is not SDSS's (the paper's 9.91e-5 dex step) keeps float32 precision: 1 ulp ~ 2.4e-7 dex."""
    rng = np.random.default_rng(2)
    loglam = np.linspace(np.log10(3600.0), np.log10(10325.0), 4618)
    s = random_spectrum(rng, loglam)
    r = read_spectrum(write_spec_lite(s, tmp_path / "x.fits"))
    assert np.all(np.abs(r.loglam - loglam) <= np.spacing(loglam.astype(np.float32)))
    np.testing.assert_array_equal(r.flux, s.flux)


def test_spec_lite_without_labels_or_ids(tmp_path, caplog):
    s = Spectrum(loglam=SDSS_GRID, flux=np.ones(SDSS_GRID.size), ivar=np.ones(SDSS_GRID.size), id="sim-0001")
    with caplog.at_level(logging.WARNING):
        path = write_spec_lite(s, tmp_path / "sim-0001.fits")
    assert "plate/mjd/fiberid" in caplog.text
    r = read_spectrum(path)
    assert r.id == "sim-0001" and np.isnan(r.z) and r.cls is None and r.meta["plate"] is None


def test_image_format_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    s = random_spectrum(rng, SDSS_GRID)
    r = read_spectrum(write_image_spectrum(s, tmp_path / "img.fits"))
    assert r.meta["format"] == FORMAT_IMAGE
    np.testing.assert_allclose(r.loglam, s.loglam, rtol=0, atol=1e-12)  # COEFF0/COEFF1 in float64
    np.testing.assert_array_equal(r.flux, s.flux)
    np.testing.assert_array_equal(r.ivar, s.ivar)
    assert not r.mask.any()  # the image layout has no SDSS mask bits, only a good-pixel flag
    assert r.meta["good_pixel_fraction"] == pytest.approx(np.mean((s.ivar > 0) & (s.mask == 0)))
    assert r.id == "1234-56789-0042" and r.cls == "qso" and r.z == s.z
    with pytest.raises(ValueError, match="uniform"):
        write_image_spectrum(random_spectrum(rng, np.sort(rng.uniform(3.6, 3.7, 50))), tmp_path / "x.fits")


def test_image_format_without_ivar(tmp_path, caplog):
    s = random_spectrum(np.random.default_rng(4), SDSS_GRID)
    with caplog.at_level(logging.WARNING):
        r = read_spectrum(write_image_spectrum(s, tmp_path / "img.fits", with_ivar=False, with_good_pixel=False))
    assert "no inverse-variance" in caplog.text and np.all(r.ivar == 1)


def test_writes_are_atomic(tmp_path):
    s = random_spectrum(np.random.default_rng(5), SDSS_GRID)
    write_spec_lite(s, tmp_path / "a.fits")
    write_catalog([dict(PLATE=1, MJD=2, FIBERID=3)], tmp_path / "cat.fits")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.fits", "cat.fits"]  # no .partial left


# ------------------------------------------------------------------------------------------------
# File discovery
# ------------------------------------------------------------------------------------------------

def test_find_spec_files_sorted_recursive(tmp_path):
    (tmp_path / "0500").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ("0500/spec-0500-51990-0201.fits.gz", "spec-7001-57001-0101.fits", "b.FITS", ".x.fits.partial",
                ".hidden/spec-1-2-3.fits", "notes.txt"):
        (tmp_path / rel).write_bytes(b"")
    expected = [tmp_path / "0500" / "spec-0500-51990-0201.fits.gz", tmp_path / "b.FITS",
                tmp_path / "spec-7001-57001-0101.fits"]
    assert find_spec_files(tmp_path) == expected
    assert find_spec_files([str(tmp_path / "b.FITS"), tmp_path]) == expected  # order and duplicates don't matter
    assert find_spec_files([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]  # named files are kept


def test_spec_filenames():
    assert spec_filename(266, 51602, 13) == "spec-0266-51602-0013.fits"
    assert spec_id(6001, 56072, 702) == "6001-56072-0702"
    assert parse_spec_filename("x/spec-6001-56072-0702.fits.gz") == (6001, 56072, 702)
    assert parse_spec_filename("spec-10000-58000-1000.fits") == (10000, 58000, 1000)  # 5-digit eBOSS plates
    assert parse_spec_filename("SDSSJ220248.31+123656.3.fits") is None


# ------------------------------------------------------------------------------------------------
# DR16Q catalogue
# ------------------------------------------------------------------------------------------------

CATALOG = FIXTURES / "dr16q-mini.fits"


def test_catalog_label_columns():
    nan = np.nan
    np.testing.assert_array_equal(read_catalog(CATALOG).z, [2.3, 2.3, 0.1, 1.5])
    np.testing.assert_array_equal(read_catalog(CATALOG, "Z_VI").z, [2.3, nan, 0.1, 1.5])  # -1 = not inspected
    np.testing.assert_array_equal(read_catalog(CATALOG, "z_pca").z, [2.299, nan, nan, nan])  # any case
    assert read_catalog(CATALOG, class_column="CLASS_PERSON").cls == ["qso", None, "galaxy", "qso"]
    assert read_catalog(CATALOG, class_column="OBJ_CLASS").cls == ["qso", "qso", "galaxy", "qso"]
    assert read_catalog(CATALOG).cls == [None] * 4


def test_catalog_unknown_column_lists_available():
    with pytest.raises(InputError) as info:
        read_catalog(CATALOG, "Z_BEST")
    assert str(CATALOG) in str(info.value) and "Z_BEST" in str(info.value) and "Z_VI" in str(info.value)
    with pytest.raises(InputError, match="CLASS_PERSON"):
        read_catalog(CATALOG, class_column="ZWARNING")


@pytest.mark.parametrize("name", ["bad-not-fits.fits", "bad-no-tables.fits", "bad-truncated.fits", "bad-empty.fits"])
def test_catalog_bad_files(name):
    with pytest.raises(InputError) as info:
        read_catalog(BAD / name)
    assert str(BAD / name) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("cut", [0, 100, 2880 + 1000, 2 * 2880 + 100, -1000, -3000])
def test_catalog_truncated(tmp_path, cut):
    path = tmp_path / "cat.fits"
    path.write_bytes(CATALOG.read_bytes()[:cut])
    with pytest.raises(InputError) as info:
        read_catalog(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_join_finds_files_and_reports_missing():
    matches, missing = join_catalog(read_catalog(CATALOG, "Z_VI", "CLASS_PERSON"), FIXTURES)
    assert [(p.name, labels["id"]) for p, labels in matches] == [
        ("spec-7001-57001-0101.fits", "7001-57001-0101"),
        ("spec-7001-57001-0102.fits", "7001-57001-0102"),
        ("spec-0500-51990-0201.fits.gz", "0500-51990-0201"),
    ]
    assert missing == [("7001-57001-0999", "no file spec-7001-57001-0999.fits")]
    labels = matches[1][1]
    assert np.isnan(labels["z"]) and labels["cls"] is None  # Z_VI = -1, CLASS_PERSON = 0
    assert labels["z_vi"] == -1.0 and labels["catalog_z"] == pytest.approx(QSO_Z) and labels["obj_class"] == "QSO"
    # The joined labels agree with what the files say.
    for path, labels in matches:
        s = read_spectrum(path)
        assert s.id == labels["id"] and s.cls == read_catalog(CATALOG, class_column="OBJ_CLASS").cls[labels["row"]]


def test_join_plate_subfolders_and_duplicates(tmp_path, caplog):
    for name in ("spec-7001-57001-0101.fits", "spec-0500-51990-0201.fits.gz"):
        plate = name.split("-")[1]
        (tmp_path / plate).mkdir(exist_ok=True)
        shutil.copy(FIXTURES / name, tmp_path / plate / name)
    shutil.copy(FIXTURES / "spec-7001-57001-0101.fits", tmp_path / "spec-7001-57001-0101.fits")
    rows = [dict(PLATE=7001, MJD=57001, FIBERID=101, Z=2.3), dict(PLATE=500, MJD=51990, FIBERID=201, Z=0.1),
            dict(PLATE=7001, MJD=57001, FIBERID=101, Z=2.3)]
    catalog = read_catalog(write_catalog(rows, tmp_path / "cat.fits"))
    with caplog.at_level(logging.WARNING):
        matches, missing = join_catalog(catalog, [tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p, _ in matches] == [
        "7001/spec-7001-57001-0101.fits", "0500/spec-0500-51990-0201.fits.gz"]
    assert "same spectrum" in caplog.text
    assert missing == [("7001-57001-0101", "repeats catalogue row 0")]


def test_write_catalog_round_trip(tmp_path):
    rows = [dict(plate=7001, mjd=57001, fiberid=1, z=2.5, z_vi=2.49, class_person=3, obj_class="QSO", sim_id="a",
                 bal=True, n_dla=2),
            dict(plate=7001, mjd=57001, fiberid=2, z=0.3, z_vi=None, obj_class="GALAXY", sim_id="bb", bal=False,
                 n_dla=0),
            dict(plate=7001, mjd=57001, fiberid=3, z=-0.0004, z_vi=float("nan"), obj_class="STAR", sim_id="c",
                 bal=False, n_dla=0)]
    path = write_catalog(rows, tmp_path / "sim.fits")
    c = read_catalog(path, "Z_VI", class_column="OBJ_CLASS")
    np.testing.assert_array_equal(c.z, [2.49, np.nan, np.nan])  # None and NaN are written as DR16Q's -1
    assert c.cls == ["qso", "galaxy", "star"]
    assert read_catalog(path).z[2] == -0.0004  # a star's small blueshift is a value, not a sentinel
    from astropy.io import fits

    with fits.open(path) as hdul:
        data = hdul[1].data
        assert list(data["SIM_ID"]) == ["a", "bb", "c"] and list(data["BAL"]) == [True, False, False]
        assert list(data["N_DLA"]) == [2, 0, 0] and list(data["CLASS_PERSON"]) == [3, 0, 0]
        assert data.columns["PLATE"].format == "J" and data.columns["Z"].format == "D"
    # A dict of columns writes the same table.
    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    path2 = write_catalog(columns, tmp_path / "sim2.fits")
    with fits.open(path) as a, fits.open(path2) as b:
        for name in a[1].columns.names:
            np.testing.assert_array_equal(a[1].data[name], b[1].data[name])
    with pytest.raises(ValueError, match="FIBERID"):
        write_catalog([dict(PLATE=1, MJD=2)], tmp_path / "bad.fits")


# ------------------------------------------------------------------------------------------------
# Fuzz: damaged files either read or raise InputError, never anything else
# ------------------------------------------------------------------------------------------------

GOOD_SMALL = (FIXTURES / "spec-7001-57001-0102.fits").read_bytes()
GOOD_IMAGE = (FIXTURES / "SDSSJ120000.00+300000.0.fits").read_bytes()
FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _read_or_input_error(path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        s = read_spectrum(path)
    except InputError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc)
        return
    assert s.loglam.shape == s.flux.shape == s.ivar.shape == s.mask.shape
    assert np.all(np.diff(s.loglam) > 0) and np.any(s.ivar > 0)


@FUZZ
@given(source=st.sampled_from([GOOD_SMALL, GOOD_IMAGE]), cut=st.floats(0, 1), gz=st.booleans())
def test_fuzz_truncation(tmp_path, source, cut, gz):
    data = source[: int(cut * len(source))]
    _read_or_input_error(tmp_path / "f.fits", gzip.compress(data, mtime=0) if gz else data)


@FUZZ
@given(source=st.sampled_from([GOOD_SMALL, GOOD_IMAGE]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       header_only=st.booleans())
def test_fuzz_byte_edits(tmp_path, source, edits, header_only):
    data = bytearray(source)
    # Header edits reach the parser's keyword handling; edits anywhere hit data too.
    span = 4 * 2880 if header_only else len(data)
    for where, value in edits:
        data[int(where * span)] = value
    _read_or_input_error(tmp_path / "f.fits", bytes(data))


@FUZZ
@given(data=st.binary(max_size=4000), fits_start=st.booleans())
def test_fuzz_random_bytes(tmp_path, data, fits_start):
    if fits_start:
        data = GOOD_SMALL[:2880] + data
    _read_or_input_error(tmp_path / "f.fits", data)
