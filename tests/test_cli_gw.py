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
    # per-sample scores for a paired comparison; a detector against itself differs by exactly nothing
    from astrocnn.gw.baseline import paired_comparison, read_scores

    scores = tmp_path / "mf.csv"
    assert main(["-q", "baseline", "gw", "--data", str(test), "--psd-from", str(tmp_path / "train.h5"),
                 "--scores-out", str(scores)]) == 0
    sc = read_scores(scores)
    assert list(sc["id"]) == list(index.ids) and list(sc["target"]) == list(index.target)
    np.testing.assert_allclose(sc["snr"], index.snr, rtol=1e-5)
    p = paired_comparison(sc["id"][::-1], sc["score"][::-1], sc, n_boot=200)  # matched by id, not by order
    assert p["n"] == 12 and p["diff"] == p["low"] == p["high"] == 0.0 and p["auc_filter"] == pytest.approx(m["roc_auc"])
    # an evaluation set is whitened with the training set's noise spectrum (its own would leak labels)
    assert main(["-q", "prepare", "g2net", str(test), "--out", str(tmp_path / "test.h5"),
                 "--whitener", str(tmp_path / "train.h5")]) == 0
    np.testing.assert_allclose(StrainSet(tmp_path / "test.h5").whitener().psd, ds.whitener().psd)


def test_train_detect_and_predict_everything(tmp_path, shared_data):
    """train detect -> predict a prepared set, a raw G2Net folder and a GWOSC pair in one call; every row says
    which noise PSD whitened its input, and each choice gives the scores of the set prepared the same way."""
    import csv

    sim = tmp_path / "sim"
    # 80 samples: a PSD estimated from the data needs at least 64
    assert main(["-q", "simulate", "gw", "--n", "80", "--seed", "4", "--out", str(sim), "--snr-median", "50"]) == 0
    assert main(["-q", "prepare", "g2net", str(sim), "--out", str(tmp_path / "t.h5")]) == 0
    assert main(["-q", "prepare", "g2net", str(sim), "--out", str(tmp_path / "d.h5"), "--psd", "data"]) == 0
    cfg = tmp_path / "small.yaml"
    cfg.write_text("model: {kernels: [32, 16, 8], channels: [8, 8, 16], pools: [4, 4, 4], dense: [16], norm: group}\n"
                   "data: {num_workers: 0}\ntrain: {progress_bar: false}\n")
    run = tmp_path / "run"
    assert main(["-q", "train", "detect", "--data", str(tmp_path / "t.h5"), "--out", str(run), "--config", str(cfg),
                 "--max-epochs", "1"]) == 0
    assert {"roc.png", "efficiency_vs_snr.png", "best.safetensors"} <= {p.name for p in run.iterdir()}
    gwosc = sorted((shared_data / "gwosc").glob("*1167559920*.hdf5"))
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", str(run), str(tmp_path / "t.h5"), str(tmp_path / "d.h5"), str(sim), *map(str, gwosc),
                 str(tmp_path / "missing.npy"), "--out", str(out)]) == 0
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["id", "source", "gps_centre", "score", "logit", "valid", "psd", "error"]
    by = {}
    for r in rows:
        by.setdefault(r["source"], []).append(r)
    from_set = {r["id"]: float(r["score"]) for r in by[str(tmp_path / "t.h5")]}
    from_data_set = {r["id"]: float(r["score"]) for r in by[str(tmp_path / "d.h5")]}
    from_raw = {r["id"]: float(r["score"]) for r in by[str(sim)]}
    assert len(from_set) == 80 and from_set.keys() == from_raw.keys() == from_data_set.keys()
    # by default a raw folder is whitened with its own label-free PSD: the scores of the set prepared so
    assert max(abs(from_data_set[k] - from_raw[k]) for k in from_raw) < 1e-3
    assert {r["psd"] for r in by[str(sim)]} == {StrainSet(tmp_path / "d.h5").attrs["whitening_fit"]}
    assert rows[0]["psd"].startswith("prepared set: noise-only samples of ")
    assert by[str(tmp_path / "d.h5")][0]["psd"].startswith("prepared set: data: median of 80 samples of ")
    windows = [r for r in rows if r["gps_centre"]]
    assert windows and all(1167559920 < float(r["gps_centre"]) < 1167559952 for r in windows)
    assert {r["psd"] for r in windows} == {"segment: median Welch PSD (4-s FFTs) of the whole 32-s segment"}
    assert any(r["error"] and "missing.npy" in r["source"] for r in rows)
    # --psd training: the run's stored whitener, i.e. the scores of the set prepared with the training PSD
    assert main(["-q", "predict", str(run), str(sim), *map(str, gwosc), "--out", str(out), "--psd", "training"]) == 0
    rows = list(csv.DictReader(open(out)))
    raw_training = {r["id"]: float(r["score"]) for r in rows if r["source"] == str(sim)}
    assert max(abs(from_set[k] - raw_training[k]) for k in from_set) < 1e-3
    assert {r["psd"] for r in rows} == {"training: noise-only samples of " + str(sim / "train")}
    # a folder too small for a PSD of its own gets one error row naming it, or stops the command
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted(sim.rglob("*.npy"))[:10]:
        (few / p.name).write_bytes(p.read_bytes())
    assert main(["-q", "predict", str(run), str(few), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(open(out)))
    assert row["source"] == str(few) and "10 readable samples" in row["error"]
    assert main(["-q", "predict", str(run), str(few), "--out", str(out), "--psd", "data", "--on-error", "fail"]) == 2
