"""Command-line round trip: simulate -> train -> evaluate -> predict (files, folders, prepared sets, bad files)."""
import csv
import json

import numpy as np
import pytest

from astrocnn.apps.cli import main
from astrocnn.spectra.dataset import SpectraSet

TINY = """\
model: {kernels: [50, 20, 5], channels: [4, 8, 8], pools: [4, 4, 2], dense: [32]}
data: {num_workers: 0}
train: {progress_bar: false, threads: 2}
"""


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    d = tmp_path_factory.mktemp("survey")
    assert main(["-q", "simulate", "spectra", "--n", "160", "--seed", "5", "--out", str(d / "s.h5"),
                 "--classes", "qso,galaxy", "--sdss-dir", str(d / "sdss")]) == 0
    (d / "tiny.yaml").write_text(TINY)
    return d


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_classify_round_trip(survey, tmp_path, test_data, capsys):
    run = tmp_path / "run"
    assert main(["-q", "train", "classify", "--data", str(survey / "s.h5"), "--out", str(run), "--config",
                 str(survey / "tiny.yaml"), "--max-epochs", "2", "--seed", "3"]) == 0
    for name in ("config.yaml", "history.csv", "metrics.json", "best.safetensors", "last.safetensors", "loss.png",
                 "confusion.png"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())["test"]
    assert metrics["n"] == 16 and [*metrics["confusion"]["classes"]] == ["qso", "galaxy"]
    assert "accuracy" in capsys.readouterr().out

    # evaluate writes the metrics where asked, and not over the run's own metrics.json
    before = (run / "metrics.json").read_text()
    assert main(["-q", "evaluate", str(run), "--data", str(survey / "s.h5"), "--out", str(run / "eval.json")]) == 0
    assert (run / "metrics.json").read_text() == before
    assert json.loads((run / "eval.json").read_text())["metrics"]["n"] == 160

    # predict from the FITS files (read and preprocessed like training), the prepared set, and bad inputs
    out = tmp_path / "pred.csv"
    fits = sorted((survey / "sdss").glob("spec-*.fits"))[:5]
    bad = test_data / "sdss-bad" / "bad-truncated.fits"
    assert main(["-q", "predict", str(run), *map(str, fits), str(bad), str(survey / "s.h5"), "--out", str(out)]) == 0
    rows = read_csv(out)
    assert list(rows[0]) == ["id", "source", "class", "p_qso", "p_galaxy", "error"]
    assert len(rows) == 5 + 1 + 160
    assert rows[5]["error"].startswith("truncated") and rows[5]["class"] == ""
    good = [r for r in rows if not r["error"]]
    assert all(abs(float(r["p_qso"]) + float(r["p_galaxy"]) - 1) < 2e-4 for r in good)
    # the same spectrum predicted from its FITS file and from the prepared set agrees
    by_set = {r["id"]: r for r in rows[6:]}
    for r in rows[:5]:
        assert abs(float(r["p_qso"]) - float(by_set[r["id"]]["p_qso"])) < 1e-3


def test_train_refuses_bad_config_in_one_line(survey, tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model: {kernelz: [3]}\n")
    assert main(["train", "redshift", "--data", str(survey / "s.h5"), "--out", str(tmp_path / "r"),
                 "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("astrocnn: error: ") and "bad.yaml" in err[-1] and "kernelz" in err[-1]


def test_redshift_predict_on_real_spectra(survey, tmp_path, shared_data):
    run = tmp_path / "z"
    assert main(["-q", "train", "redshift", "--data", str(survey / "s.h5"), "--out", str(run), "--config",
                 str(survey / "tiny.yaml"), "--max-epochs", "1"]) == 0
    out = tmp_path / "real.csv"
    assert main(["-q", "predict", str(run), str(shared_data / "sdss"), "--out", str(out)]) == 0
    rows = read_csv(out)
    assert len(rows) == 10 and all(not r["error"] for r in rows)
    assert all(0 <= float(r["z_pred"]) <= 6 for r in rows)
