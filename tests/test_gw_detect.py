"""The "detect" task end to end: training on simulated strain, save/load, metrics, and scoring raw strain."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from astrocnn.core.config import RunConfig, default_config
from astrocnn.core.errors import InputError
from astrocnn.core.metrics import detection_metrics
from astrocnn.tasks import DetectTask, make_task

GWOSC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gwosc"

# a small network so the test trains in seconds on two CPU cores
SMALL_MODEL = {"kernels": [32, 16, 8], "channels": [16, 16, 32], "pools": [4, 4, 4], "dense": [32], "norm": "group"}


@pytest.fixture(scope="module")
def detect_run(tmp_path_factory):
    pytest.importorskip("lal")
    from astrocnn.gw.simulate import simulate_g2net
    from astrocnn.gw.prepare import prepare_g2net
    from astrocnn.train import train

    root = tmp_path_factory.mktemp("detect")
    simulate_g2net(200, 3, root / "sim", snr_median=50, workers=2)
    data = prepare_g2net(root / "sim", root / "train.h5")
    cfg = default_config("detect", model=SMALL_MODEL,
                         train={"max_epochs": 5, "batch_size": 32, "lr": 3e-3, "patience": 6, "progress_bar": False,
                                "seed": 1},
                         data={"num_workers": 0, "test_fraction": 0.25, "val_fraction": 0.15},
                         task={"n_boot": 200})
    result = train("detect", data, root / "run", cfg)
    return root, data, result


def test_detect_trains_and_beats_chance(detect_run):
    root, data, result = detect_run
    m = result.metrics
    assert m["n"] == 50 and m["n_signal"] + m["n_noise"] == 50
    assert m["roc_auc"] > 0.8, m
    assert m["roc_auc_low"] <= m["roc_auc"] <= m["roc_auc_high"]
    assert 0.0 <= m["tpr_at_fpr_0.01"] <= 1.0
    assert m["per_snr_bin"] and all(b["n_signal"] > 0 for b in m["per_snr_bin"])
    run = root / "run"
    for name in ("config.yaml", "best.safetensors", "metrics.json", "test_predictions.csv", "roc.png",
                 "efficiency_vs_snr.png", "history.csv"):
        assert (run / name).exists(), name
    cfg = RunConfig.load(run / "config.yaml")
    assert cfg.task.name == "detect" and cfg.input["kind"] == "strain" and cfg.data.inputs == ["strain"]
    assert cfg.model.in_channels == 3 and cfg.model.length == 4096
    header = (run / "test_predictions.csv").read_text().splitlines()[0]
    assert header == "row,id,target,snr,score,logit"


def test_save_load_evaluate_predict_identical(detect_run):
    from astrocnn.gw.dataset import StrainSet
    from astrocnn.train import evaluate, load_preprocess, load_run, predict_set as predict

    root, data, result = detect_run
    net, task, cfg = load_run(root / "run")
    assert isinstance(task, DetectTask)
    psd = load_preprocess(root / "run")["whitening_psd"]
    with StrainSet(data) as ds:
        np.testing.assert_array_equal(psd, ds.whitening_psd)
    m = evaluate(root / "run", data, split="test")
    assert m["roc_auc"] == pytest.approx(result.metrics["roc_auc"], abs=1e-12)
    p1 = predict(root / "run", data)
    p2 = predict(root / "run", data)
    np.testing.assert_array_equal(p1["score"], p2["score"])
    # the stored test predictions are the same numbers
    rows = np.loadtxt(root / "run" / "test_predictions.csv", delimiter=",", skiprows=1, usecols=(0, 4))
    np.testing.assert_allclose(p1["score"][rows[:, 0].astype(int)], rows[:, 1], rtol=1e-5, atol=1e-7)


def test_predict_g2net_dir_matches_prepared_set(detect_run):
    """A raw folder scored with the training PSD gives the scores of the training set as prepared; with its own
    label-free PSD (the default) those of the folder prepared with --psd data."""
    from astrocnn.apps.gwscan import predict_g2net_dir
    from astrocnn.gw.prepare import prepare_g2net
    from astrocnn.train import predict_set as predict

    root, data, _ = detect_run
    raw = predict_g2net_dir(root / "run", root / "sim", psd="training")
    prepped = predict(root / "run", data)
    assert list(raw["id"]) == list(prepped["id"])
    np.testing.assert_allclose(raw["score"], prepped["score"], rtol=1e-4, atol=1e-6)
    assert set(np.unique(raw["target"])) <= {0, 1} and raw["psd"][0].startswith("training: ")
    own = predict_g2net_dir(root / "run", root / "sim")
    own_set = prepare_g2net(root / "sim", root / "own.h5", psd="data")
    np.testing.assert_allclose(own["score"], predict(root / "run", own_set)["score"], rtol=1e-4, atol=1e-6)
    assert own["psd"][0].startswith("data: median of 200 samples of ")
    assert np.abs(own["score"] - raw["score"]).max() > 0  # another PSD, other scores


@pytest.mark.skipif(not GWOSC.is_dir(), reason="../shared/data/gwosc is not here")
def test_predict_gwosc_windows(detect_run):
    from astrocnn.apps.gwscan import predict_gwosc
    from astrocnn.gw.readers import read_gwosc

    root, _, _ = detect_run
    files = sorted(GWOSC.glob("*-1128678884-32.hdf5"))
    assert len(files) == 2
    out = predict_gwosc(root / "run", files, step_s=0.5)
    g = read_gwosc(files[0])
    lo, hi = g.gps_start, g.gps_start + g.duration
    assert out["score"].shape == out["gps_centre"].shape == out["valid"].shape
    assert len(out["score"]) == int((32 - 2) / 0.5) + 1
    assert np.all(np.isfinite(out["score"])) and np.all((out["score"] >= 0) & (out["score"] <= 1))
    assert np.all((out["gps_centre"] >= lo + 1.0) & (out["gps_centre"] <= hi - 1.0))
    assert np.all(np.diff(out["gps_centre"]) == pytest.approx(0.5))
    assert out["valid"].any() and not out["valid"][0]
    assert set(out["psd"]) == {"segment: median Welch PSD (4-s FFTs) of the whole 32-s segment"}
    trained = predict_gwosc(root / "run", files, step_s=0.5, psd="training")
    np.testing.assert_array_equal(trained["gps_centre"], out["gps_centre"])
    assert np.all(np.isfinite(trained["score"])) and trained["psd"][0].startswith("training: ")


def test_wrong_kind_of_set_is_refused(detect_run, tmp_path):
    from astrocnn.tasks import open_dataset
    from astrocnn.train import train

    root, data, _ = detect_run
    with pytest.raises(InputError, match="spectra set"):
        train("redshift", data, tmp_path / "r", default_config("redshift"))
    with pytest.raises(InputError, match="strain"):
        make_task(default_config("detect").task).usable_rows(type("S", (), {"path": "x", "z": None})())
    assert open_dataset(data).__class__.__name__ == "StrainSet"


def test_detection_metrics_by_hand():
    # 3 signals (SNR 5, 9, 25), 4 noise samples
    label = np.array([1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.2, 0.7, 0.9, 0.1, 0.3, 0.8, 0.4])
    snr = np.array([5.0, 9.0, 25.0, np.nan, np.nan, np.nan, np.nan])
    m = detection_metrics(label, score, snr, snr_bins=[0, 8, 20], n_boot=50)
    # pairs (signal > noise): 0.2 beats 0.1 -> 1; 0.7 beats 0.1, 0.3, 0.4 -> 3; 0.9 beats all 4 -> 4: 8 / 12
    assert m["roc_auc"] == pytest.approx(8 / 12)
    assert (m["n"], m["n_signal"], m["n_noise"]) == (7, 3, 4)
    # no threshold passes <= 1% of 4 noise samples but signals: only 0.9 is above every noise score -> 1/3
    assert m["tpr_at_fpr_0.01"] == pytest.approx(1 / 3)
    bins = {b["snr"]: b for b in m["per_snr_bin"]}
    assert bins["0-8"]["roc_auc"] == pytest.approx(1 / 4) and bins["0-8"]["n_signal"] == 1
    assert bins["8-20"]["roc_auc"] == pytest.approx(3 / 4)
    assert bins[">=20"]["roc_auc"] == pytest.approx(1.0) and bins[">=20"]["snr_hi"] is None
    assert m["roc_auc_low"] <= m["roc_auc"] <= m["roc_auc_high"]
    json.dumps(m)  # JSON-ready
    # one class only: NaN, not an exception (validation sets can be tiny)
    assert math.isnan(detection_metrics(np.ones(3), np.arange(3.0), n_boot=0)["roc_auc"])


def test_detect_task_loss_and_decode():
    import torch

    task = make_task(default_config("detect").task)
    logit = torch.tensor([0.0, 2.0, -1.0])
    target = torch.tensor([[1.0, 12.0], [0.0, float("nan")], [0.0, float("nan")]])
    loss = task.loss(logit, target)
    expected = [math.log(2.0), math.log1p(math.exp(2.0)), math.log1p(math.exp(-1.0))]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    out = task.decode(logit)
    np.testing.assert_allclose(out["score"].numpy(), 1 / (1 + np.exp(-logit.numpy())), rtol=1e-6)
    assert task.monitor == "roc_auc"


def test_default_detect_config():
    from astrocnn.core.config import DETECT_MODEL
    from astrocnn.models.cnn import CNN

    cfg = default_config("detect", model={"dense": [64]})
    assert cfg.model.kernels == DETECT_MODEL["kernels"] and cfg.model.dense == [64]
    assert cfg.model.in_channels == 3 and cfg.model.length == 4096 and cfg.data.inputs == ["strain"]
    assert cfg.task.classes is None
    # the augmentation the README's numbers were trained with is the default, so `astrocnn train detect` uses it
    assert (cfg.data.aug_flip, cfg.data.aug_swap, cfg.data.aug_delay) == (True, True, 8)
    assert default_config("detect", data={"aug_delay": 0}).data.aug_flip is True
    assert default_config("redshift").data.aug_flip is False
    assert CNN(cfg.model).features == 64
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        default_config("detect", data={"inputs": ["strain", "flux"]})


def test_strain_augmentation_is_seeded_and_physical(detect_run):
    """Sign flips, H1/L1 swaps and per-detector delays: each an exact transform of the stored sample, drawn
    from (seed, epoch, row) so that reruns and worker processes agree, and off outside training."""
    from astrocnn.core.config import DataConfig
    from astrocnn.tasks import open_dataset
    from astrocnn.train.loader import Batches

    _, data, _ = detect_run
    store = open_dataset(data)
    task = make_task(default_config("detect").task)
    rows = np.arange(40)
    plain = Batches(store, task, DataConfig(inputs=["strain"]), augment=True)
    assert not plain.augment  # nothing asked for: the batch is the stored data
    x0 = plain[rows]["x"].numpy()

    def batch(epoch, **aug):
        ds = Batches(store, task, DataConfig(inputs=["strain"], **aug), augment=True, seed=3)
        ds.epoch = epoch
        return ds[rows]["x"].numpy()

    flipped = batch(0, aug_flip=True)
    is_neg = np.all(flipped == -x0, axis=(1, 2))
    assert np.all(is_neg | np.all(flipped == x0, axis=(1, 2)))
    assert 8 <= is_neg.sum() <= 32  # about half of 40 (binomial: outside 8..32 has p < 1e-4)
    swapped = batch(0, aug_swap=True)
    is_swap = np.all(swapped[:, 0] == x0[:, 1], axis=1) & np.all(swapped[:, 1] == x0[:, 0], axis=1)
    assert np.all(is_swap | np.all(swapped == x0, axis=(1, 2)))
    assert 8 <= is_swap.sum() <= 32
    np.testing.assert_array_equal(swapped[:, 2], x0[:, 2])  # Virgo stays where it is
    delayed = batch(0, aug_delay=5)
    for i in range(len(rows)):
        for d in range(3):  # every detector is its own stored series rolled by at most 5 samples
            assert any(np.array_equal(delayed[i, d], np.roll(x0[i, d], s)) for s in range(-5, 6))
    assert not np.array_equal(delayed, x0)
    np.testing.assert_array_equal(batch(0, aug_flip=True), flipped)  # seeded: the same again
    assert not np.array_equal(batch(1, aug_flip=True), flipped)  # a new epoch draws anew
    evaluation = Batches(store, task, DataConfig(inputs=["strain"], aug_flip=True), augment=False)
    np.testing.assert_array_equal(evaluation[rows]["x"].numpy(), x0)


def test_real_data_report(detect_run):
    """The real G2Net samples and GWOSC event files, scored as `scripts/gw_real.py` and the demo do."""
    from astrocnn.apps.gwscan import real_data_report
    from astrocnn.gw.events import KNOWN_EVENTS

    g2net = GWOSC.parent / "g2net"
    if not (g2net.is_dir() and GWOSC.is_dir()):
        pytest.skip("real data not available")
    root, _, _ = detect_run
    rep = real_data_report(root / "run", g2net, GWOSC, n_boot=100)
    g = rep["g2net"]
    labels = (g2net / "training_labels.csv").read_text().split()[1:]
    n_signal = sum(int(r.split(",")[1]) for r in labels)
    assert (g["n"], g["n_signal"]) == (len(labels), n_signal)
    assert sum(t for t, _ in g["scores"].values()) == n_signal and g["roc_auc_low"] <= g["roc_auc"] <= g["roc_auc_high"]
    assert set(rep["gwosc"]) == {"GW151012", "GW170104"}
    for name, e in rep["gwosc"].items():
        assert e["gps_event"] == KNOWN_EVENTS[name] and len(e["files"]) == 2
        assert 1 <= e["event_rank"] <= e["n_windows"]
        assert e["event_in_top_window"] == (abs(e["top_minus_event_s"]) < 1.0)
        assert e["top_score"] >= e["event_score"]


def test_locate_event_by_hand():
    """A scan by hand: windows every 0.25 s, the highest at centre 101.0; a merger at 101.7 is where training
    samples had theirs (0.7 s after the centre), so the top window holds it; one 0.3 s later does not."""
    from astrocnn.apps.gwscan import locate_event

    centres = 100.0 + 0.25 * np.arange(12)
    score = np.array([0.1, 0.2, 0.3, 0.5, 0.9, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1])
    valid = np.ones(12, bool)
    valid[-1] = False
    scan = {"gps_centre": centres, "score": score, "valid": valid, "psd": np.array(["x"] * 12, dtype=object)}
    r = locate_event(scan, 101.7)
    assert r["top_window_gps"] == 101.0 and r["top_merger_gps"] == pytest.approx(101.7)
    assert r["holds_merger"] and r["event_rank"] == 1 and r["n_windows"] == 11 and r["event_in_top_window"]
    r = locate_event(scan, 102.0)  # its window (centre 101.3 -> 101.25) scores 0.6: second
    assert not r["holds_merger"] and r["event_rank"] == 2 and r["event_window_gps"] == 101.25
    with pytest.raises(ValueError, match="no valid window"):
        locate_event(dict(scan, valid=np.zeros(12, bool)), 101.7)


def test_simulated_events_are_found_where_they_are(detect_run):
    """Loud simulated mergers in 24-s segments (the test network was trained at SNR ~50): the top window of
    each scan is the one placing the merger where it is."""
    from astrocnn.apps.gwscan import scan_strain, simulated_events

    root, _, _ = detect_run
    out = simulated_events(root / "run", n_events=3, seed=1, snr_range=(40.0, 50.0), duration_s=24.0, step_s=0.25)
    assert out["n_events"] == 3 and len(out["events"]) == 3
    for e in out["events"]:
        assert 40.0 <= e["snr"] <= 50.0 and e["n_windows"] == int((24 - 2 - 2) / 0.25) + 1 - 0
        assert e["event_rank"] <= 2, e
    assert out["share_holding"] >= 2 / 3, out
    again = simulated_events(root / "run", n_events=1, seed=1, snr_range=(40.0, 50.0), duration_s=24.0)
    assert again["events"][0]["gps_merger"] == out["events"][0]["gps_merger"]
    with pytest.raises(ValueError, match="strain must be"):
        scan_strain(root / "run", np.zeros((2, 9000)), 0.0)
