"""The spectra command line: prepare, show, errors, rejects. Calls main([...]) like a user would."""
import csv
import shutil

import numpy as np
import pytest

from astrocnn.apps.cli import main
from astrocnn.spectra.dataset import SpectraSet


def read_rejects(path):
    with open(path, newline="") as fh:
        return {row["input"]: row["reason"] for row in csv.DictReader(fh)}


def test_prepare_folder_with_bad_files_keeps_the_good_ones(test_data, tmp_path, capsys):
    out = tmp_path / "fx.h5"
    assert main(["-q", "prepare", "sdss", str(test_data / "sdss"), str(test_data / "sdss-bad"), "--out", str(out),
                 "--workers", "2"]) == 0
    ds = SpectraSet(out)
    # the two full-range fixtures survive; short ones and every bad file are listed with a reason
    assert sorted(ds.ids) == ["0500-51990-0201", "7001-57001-0101"]
    i = list(ds.ids).index("7001-57001-0101")
    assert ds.z[i] == pytest.approx(2.3) and ds.class_names[ds.cls[i]] == "qso"
    rejects = read_rejects(tmp_path / "fx.rejects.csv")
    assert len(rejects) == 12
    assert any("truncated" in r for r in rejects.values())
    assert any("of the grid has data" in r for r in rejects.values())
    assert "kept 2 spectra, rejected 12" in capsys.readouterr().out


def test_prepare_single_bad_file_is_one_line_and_exit_2(test_data, tmp_path, capsys):
    bad = test_data / "sdss-bad" / "bad-truncated.fits"
    assert main(["prepare", "sdss", str(bad), "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("astrocnn: error: ") and "bad-truncated.fits: truncated" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "x.h5").exists()


def test_prepare_on_error_fail_writes_nothing(test_data, tmp_path):
    out = tmp_path / "x.h5"
    assert main(["-q", "prepare", "sdss", str(test_data / "sdss-bad"), "--out", str(out), "--on-error", "fail"]) == 2
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_prepare_with_catalogue_labels_and_missing_rows(test_data, tmp_path):
    out = tmp_path / "cat.h5"
    cat = test_data / "sdss" / "dr16q-mini.fits"
    assert main(["-q", "prepare", "sdss", str(test_data / "sdss"), "--out", str(out), "--catalog", str(cat),
                 "--label-column", "Z_VI", "--class-column", "CLASS_PERSON"]) == 0
    ds = SpectraSet(out)
    by_id = dict(zip(ds.ids, zip(ds.z, ds.cls)))
    assert set(by_id) == {"7001-57001-0101", "0500-51990-0201"}
    assert by_id["0500-51990-0201"][0] == pytest.approx(0.1) and ds.class_names[by_id["0500-51990-0201"][1]] == "galaxy"
    rejects = read_rejects(tmp_path / "cat.rejects.csv")
    # the catalogue row without a file is reported, not fatal; the short-coverage fixture is rejected
    assert any("7001-57001-0999" in k for k in rejects)
    assert any("of the grid has data" in v for v in rejects.values())


def test_show_writes_a_png(test_data, tmp_path):
    out = tmp_path / "fx.h5"
    assert main(["-q", "prepare", "sdss", str(test_data / "sdss"), "--out", str(out)]) == 0
    png = tmp_path / "show.png"
    assert main(["-q", "show", str(out), "--index", "0", "1", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert main(["-q", "show", str(out), "--index", "7"]) == 2


@pytest.mark.real_data
def test_prepare_every_real_sdss_file(shared_data, tmp_path):
    out = tmp_path / "real.h5"
    assert main(["-q", "prepare", "sdss", str(shared_data / "sdss"), "--out", str(out)]) == 0
    ds = SpectraSet(out)
    assert len(ds) == 10 and not (tmp_path / "real.rejects.csv").exists()
    index = {}
    with open(shared_data / "sdss" / "index.csv") as fh:
        for row in csv.DictReader(fh):
            index[row["file"]] = row
    # BOSS spectra cover nearly the whole grid, legacy ones ~3800-9200 A only
    cov = dict(zip(ds.ids, ds.column("coverage")))
    assert cov["6001-56072-0702"] > 0.95 and 0.8 < cov["0266-51602-0013"] < 0.9
    z = dict(zip(ds.ids, ds.z))
    assert z["6001-56072-0702"] == pytest.approx(2.66551, abs=1e-4)
    b = ds.read(np.arange(len(ds)))
    assert np.isfinite(b["flux"]).all() and np.all(b["flux"][b["ivar"] == 0] == 0)


def test_simulate_same_seed_same_bytes_and_real_format_round_trip(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["-q", "simulate", "spectra", "--n", "40", "--seed", "7", "--out", str(a), "--workers", "2",
                 "--sdss-dir", str(tmp_path / "sdss")]) == 0
    assert main(["-q", "simulate", "spectra", "--n", "40", "--seed", "7", "--out", str(b), "--workers", "1"]) == 0
    assert a.read_bytes() == b.read_bytes()
    sim = SpectraSet(a)
    assert sim.attrs["seed"] == 7 and set(sim.truth()) >= {"z", "cls", "snr", "bal", "n_dla"}
    # the spec-lite files and catalogue written beside it go through the real-data path to the same inputs
    fits = tmp_path / "fits.h5"
    assert main(["-q", "prepare", "sdss", str(tmp_path / "sdss"), "--out", str(fits),
                 "--catalog", str(tmp_path / "sdss" / "catalog.fits"), "--class-column", "CLASS_PERSON"]) == 0
    real = SpectraSet(fits)
    assert len(real) == 40
    row = {k: i for i, k in enumerate(sim.ids)}
    idx = [row[k] for k in real.ids]
    # float32 storage in the FITS files is the only difference
    np.testing.assert_allclose(real.read(slice(None))["flux"], sim.read(idx)["flux"], atol=1e-4)
    np.testing.assert_allclose(real.z, sim.z[idx], rtol=1e-6)
    np.testing.assert_array_equal(real.cls, sim.cls[idx])


def test_simulate_class_subset(tmp_path):
    out = tmp_path / "g.h5"
    assert main(["-q", "simulate", "spectra", "--n", "20", "--out", str(out), "--classes", "galaxy,star"]) == 0
    ds = SpectraSet(out)
    assert set(ds.class_names[c] for c in ds.cls) <= {"galaxy", "star"}
    with pytest.raises(SystemExit) as exc:  # argparse rejects it before anything runs
        main(["simulate", "spectra", "--n", "5", "--out", str(tmp_path / "p.h5"), "--classes", "planet"])
    assert exc.value.code == 2 and not (tmp_path / "p.h5").exists()
