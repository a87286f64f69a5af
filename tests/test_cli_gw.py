"""The GW command line: simulate -> prepare -> matched-filter baseline, as a user runs them."""
import json

import numpy as np
import pytest

from astrocnn.apps.cli import main
from astrocnn.gw.readers import read_g2net
from astrocnn.gw.dataset import StrainSet

pytest.importorskip("lalsimulation", reason="simulating strain needs lalsuite (pip install 'astrocnn[gw]')")


def test_simulate_prepare_baseline(tmp_path, capsys):
    train, test = tmp_path / "train", tmp_path / "test"
    assert main(["-q", "simulate", "gw", "--n", "24", "--seed", "1", "--out", str(train), "--noise", "varied"]) == 0
    settings = json.loads((train / "simulation.json").read_text())
    assert settings["noise"] == "varied" and settings["noise_variation"]["tilt_max"] == 0.5
    # loud signals, so the reference must separate them well
    assert main(["-q", "simulate", "gw", "--n", "12", "--seed", "2", "--out", str(test), "--snr-median", "40",
                 "--snr-sigma", "0.1"]) == 0
    index = read_g2net(test)
    assert len(index.ids) == 12 and set(np.unique(index.target)) <= {0, 1}
    assert main(["-q", "prepare", "g2net", str(train), "--out", str(tmp_path / "train.h5")]) == 0
    ds = StrainSet(tmp_path / "train.h5")
    assert len(ds) == 24 and ds.read([0])["strain"].shape == (1, 3, 4096)
    out = tmp_path / "mf.json"
    assert main(["-q", "baseline", "gw", "--data", str(test), "--psd-from", str(tmp_path / "train.h5"),
                 "--out", str(out)]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 12 and m["roc_auc"] > 0.95
    # an evaluation set is whitened with the training set's noise spectrum (its own would leak labels)
    assert main(["-q", "prepare", "g2net", str(test), "--out", str(tmp_path / "test.h5"),
                 "--whitener", str(tmp_path / "train.h5")]) == 0
    np.testing.assert_allclose(StrainSet(tmp_path / "test.h5").whitener().psd, ds.whitener().psd)


def test_train_detect_and_predict_everything(tmp_path, shared_data):
    """train detect -> predict a prepared set, a raw G2Net folder and a GWOSC pair in one call."""
    sim = tmp_path / "sim"
    assert main(["-q", "simulate", "gw", "--n", "60", "--seed", "4", "--out", str(sim), "--snr-median", "50"]) == 0
    assert main(["-q", "prepare", "g2net", str(sim), "--out", str(tmp_path / "t.h5")]) == 0
    cfg = tmp_path / "small.yaml"
    cfg.write_text("model: {kernels: [32, 16, 8], channels: [8, 8, 16], pools: [4, 4, 4], dense: [16], norm: group}\n"
                   "data: {num_workers: 0}\ntrain: {progress_bar: false}\n")
    run = tmp_path / "run"
    assert main(["-q", "train", "detect", "--data", str(tmp_path / "t.h5"), "--out", str(run), "--config", str(cfg),
                 "--max-epochs", "1"]) == 0
    assert {"roc.png", "efficiency_vs_snr.png", "best.safetensors"} <= {p.name for p in run.iterdir()}
    gwosc = sorted((shared_data / "gwosc").glob("*1167559920*.hdf5"))
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run), str(tmp_path / "t.h5"), str(sim), *map(str, gwosc),
                 str(tmp_path / "missing.npy"), "--out", str(out)]) == 0
    import csv

    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["id", "source", "gps_centre", "score", "logit", "valid", "error"]
    from_set = {r["id"]: float(r["score"]) for r in rows if r["source"].endswith("t.h5")}
    from_raw = {r["id"]: float(r["score"]) for r in rows if r["source"] == str(sim)}
    assert len(from_set) == 60 and from_set.keys() == from_raw.keys()
    # the raw folder goes through the run's stored whitener: the same scores as the prepared set
    assert max(abs(from_set[k] - from_raw[k]) for k in from_set) < 1e-3
    windows = [r for r in rows if r["gps_centre"]]
    assert windows and all(1167559920 < float(r["gps_centre"]) < 1167559952 for r in windows)
    assert any(r["error"] and "missing.npy" in r["source"] for r in rows)
