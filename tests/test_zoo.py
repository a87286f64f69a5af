"""Ready-made models: identity and cards, the numpy decoding (the same answers as the trainer's), the warning
bits, and a model folder answering for files, folders and prepared sets."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from astrocnn.apps.cli import main
from astrocnn.core.config import TaskConfig, default_config
from astrocnn.core.errors import InputError
from astrocnn.spectra.zwarn import ZWarn, describe
from astrocnn.tasks.redshift import RedshiftBins
from astrocnn.train import predict_set, train
from astrocnn.zoo import load_model
from astrocnn.zoo.build import assemble
from astrocnn.zoo.decode import Bins, Thresholds, redshift, zwarn
from astrocnn.zoo.evaluate import flag_curves, plot_flag_curves
from astrocnn.zoo.registry import ModelCard, find_model, manifest_hash, read_model

from test_train import make_set, tiny_config

CLASSES = ["qso", "galaxy", "star"]


def test_numpy_decoding_gives_the_tasks_answers():
    """The zoo decodes in numpy (so ONNX Runtime needs no torch); z and z_conf must be the trainer's."""
    cfg = TaskConfig(name="redshift", n_bins=60, z_min=-0.005, z_max=3.0)
    rng = np.random.default_rng(0)
    log_prob = torch.log_softmax(torch.from_numpy(rng.normal(size=(50, 60)).astype(np.float32) * 3), dim=1)
    offset = torch.from_numpy(rng.normal(size=(50, 60)).astype(np.float32))
    ref = RedshiftBins(cfg).decode(log_prob, offset)
    got = redshift(log_prob.numpy(), offset.numpy(), Bins.from_task({"z_min": -0.005, "z_max": 3.0, "n_bins": 60}))
    np.testing.assert_array_equal(got["z"], ref["z"].numpy())
    np.testing.assert_allclose(got["z_conf"], ref["z_conf"].numpy(), atol=1e-6)


def test_second_solution_and_error_have_known_answers():
    bins = Bins(y_lo=0.0, width=0.01, n=100)  # 3000 km/s per bin
    lp = np.full((2, 100), -30.0, np.float32)
    lp[0, 40] = np.log(0.7)  # a clear answer with a far second solution (bin 10: 90,000 km/s away)
    lp[0, 10] = np.log(0.3)
    lp[1, 40] = np.log(0.5)  # two neighbouring bins: no second solution, a larger error
    lp[1, 41] = np.log(0.5)
    z = redshift(lp, np.zeros((2, 100), np.float32), bins, far_kms=6000.0)
    assert z["best_bin"].tolist() == [40, 40]
    assert z["p_second"][0] == pytest.approx(0.3, rel=1e-5) and z["p_second"][1] < 1e-6
    assert z["z_conf"][0] == pytest.approx(0.7, rel=1e-5)
    # bin 41's answer is 0.01 from the chosen bin 40's in log(1 + z), with equal weight: the RMS distance of
    # the answer from where the probability lies is 0.01 / sqrt(2)
    assert z["z_err"][1] == pytest.approx((1 + z["z"][1]) * 0.01 / np.sqrt(2), rel=1e-3)
    t = Thresholds(min_class_prob=0.9, min_z_conf=0.5, max_second_ratio=0.3, min_snr=1.0, min_coverage=0.6)
    bits = zwarn(np.array([0.95, 0.5]), z, snr=np.array([5.0, 0.5]), coverage=np.array([1.0, 0.5]),
                 bins_n=np.array([100, 100]), t=t)
    assert bits[0] == ZWarn.SMALL_DELTA_CHI2  # 0.3 / 0.7 > 0.3
    assert describe(bits[1]) == "LITTLE_COVERAGE|LOW_CLASS_PROB|LOW_SNR"
    z["best_bin"][0] = 99
    assert zwarn(np.array([0.95]), {k: v[:1] for k, v in z.items()}, np.array([5.0]), np.array([1.0]), np.array([100]),
                 Thresholds(max_second_ratio=1e9))[0] == ZWarn.Z_FITLIMIT


def test_flag_curves_have_known_purity_and_completeness(tmp_path):
    """Four quasars, two right (|dv| < 6000 km/s) and two wrong; z_conf ranks them so that a cut at 0.5 keeps
    the two right ones and a cut at 0.9 one of them; zwarn flags one wrong answer."""
    truth = {"class": np.array(["qso"] * 4, dtype=object), "z": np.array([2.0, 2.0, 2.0, 2.0])}
    raw = {"z": np.array([2.0, 2.01, 3.0, 1.0]), "z_conf": np.array([0.95, 0.6, 0.4, 0.45]),
           "zwarn": np.array([0, 0, 0, 1 << 16])}
    out = flag_curves(raw, truth)
    c = out["curves"]["qso"]
    at = {round(cut, 2): i for i, cut in enumerate(c["z_conf_cut"])}
    assert c["fraction_flagged"][at[0.0]] == 0 and c["purity"][at[0.0]] == 0.5 and c["completeness"][at[0.0]] == 0.5
    assert c["fraction_flagged"][at[0.5]] == 0.5 and c["purity"][at[0.5]] == 1.0 and c["completeness"][at[0.5]] == 0.5
    assert c["fraction_flagged"][at[0.9]] == 0.75 and c["completeness"][at[0.9]] == 0.25
    assert out["operating"]["qso"] == pytest.approx({"fraction_flagged": 0.25, "purity": 2 / 3, "completeness": 0.5})
    plot_flag_curves(out["curves"], out["operating"], tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 5000


@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A model folder from a tiny two-headed run on the toy set of test_train (512-pixel grid)."""
    root = tmp_path_factory.mktemp("zoo")
    data = make_set(root / "toy.h5", n=600)
    base = tiny_config("redshift", max_epochs=6)
    cfg = default_config("classify_redshift", model=base.model.to_dict(), data={"num_workers": 0},
                         train=dict(base.train.__dict__), task={"n_bins": 100, "z_max": 3.5})
    train("classify_redshift", data, root / "run", cfg)
    recipe = {"name": "toy", "version": "0.1", "class_output": {"component": "joint", "output": 0},
              "redshift_outputs": {c: {"component": "joint", "outputs": [1, 2]} for c in CLASSES}}
    model = assemble(root / "model", recipe, {"joint": root / "run"}, {"thresholds": {c: {"min_z_conf": 0.2} for c in CLASSES}})
    ModelCard({"name": "toy", "version": "0.1", "task": "class and redshift"}, "# toy\n").write(model / "card.md")
    return root, data, model


def test_model_identity_pins_and_refuses_tampering(toy_model, tmp_path):
    root, _, model = toy_model
    info = find_model(model)
    assert info.name == "toy" and info.hash == manifest_hash(json.loads((model / "model.json").read_text()))
    weights = info.component("joint")
    assert weights.name.startswith("joint-") and weights.name[6:18] in json.dumps(info.manifest)
    assert ModelCard.read(model / "card.md").meta["task"] == "class and redshift"
    copy = shutil.copytree(model, tmp_path / "copy")
    data = bytearray((copy / weights.name).read_bytes())
    data[-1] ^= 1
    (copy / weights.name).write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 differs"):
        read_model(copy)
    with pytest.raises(InputError, match="no model 'nonexistent'"):
        find_model("nonexistent")
    (copy / "card.md").unlink()
    with pytest.raises(InputError, match="card.md: the model has no card"):
        read_model(copy, verify=False).card()


def test_model_answers_files_folders_and_sets_in_order(toy_model, test_data, tmp_path):
    root, data, model = toy_model
    m = load_model(model)
    table = m.predict([data])
    ref = predict_set(root / "run", data)  # the same network through the trainer
    assert list(table["class"]) == list(ref["class"])
    np.testing.assert_allclose(np.asarray(table["z"], float), ref["z"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(table["z_conf"], float), ref["z_conf"], atol=1e-6)
    assert set(np.unique(table["zwarn"] & int(ZWarn.LOW_Z_CONF) > 0)) <= {True, False}
    assert ((table["z_conf"] < 0.2) == ((table["zwarn"] & int(ZWarn.LOW_Z_CONF)) > 0)).all()

    missing = tmp_path / "nope.fits"
    files = m.predict([test_data / "sdss", missing, test_data / "sdss" / "spec-7001-57001-0101.fits"], workers=1)
    assert list(files["source"])[-2:] == [str(missing), str(test_data / "sdss" / "spec-7001-57001-0101.fits")]
    assert files["error"][-2] == "no such file or folder" and files["zwarn"][-2] == int(ZWarn.NODATA)
    good = files["error"] == ""
    assert good.sum() >= 3 and np.all(np.isfinite(np.asarray(files["z"][good], float)))
    with pytest.raises(InputError, match="nope.fits: no such file"):
        m.predict([missing], on_error="fail")


def test_cli_predict_with_a_model(toy_model, test_data, tmp_path):
    _, data, model = toy_model
    out = tmp_path / "p.csv"
    assert main(["-q", "predict", "--model", str(model), str(test_data / "sdss"), str(data), "--out", str(out),
                 "--workers", "1"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "source", "class", "p_qso", "p_galaxy", "p_star", "z", "z_err", "z_conf", "zwarn",
                             "snr", "coverage", "error"]
    assert len(rows) > 600 and {r["class"] for r in rows if not r["error"]} <= set(CLASSES)
    assert main(["-q", "predict", str(test_data / "sdss"), "--out", str(tmp_path / "x.csv")]) == 2


@pytest.mark.slow
def test_a_shortened_recipe_reproduces_its_card(tmp_path, test_data, capsys):
    """`astrocnn zoo build sdss --scale 0.02`: the whole recipe (simulate, train, assemble, calibrate, score,
    card) at 2% of the data and one epoch, checked against the card three seeds of it made
    (tests/data/zoo/sdss-short-card.md, its tolerances from their spread). The numbers are a toy's; what is
    tested is that the recipe runs and reproduces itself."""
    card = test_data / "zoo" / "sdss-short-card.md"
    assert main(["-q", "zoo", "build", "sdss", "--out", str(tmp_path), "--scale", "0.02", "--seeds", "1",
                 "--workers", "1", "--real", str(test_data / "sdss"), "--check", str(card)]) == 0
    assert "reproduces" in capsys.readouterr().out
    built = ModelCard.read(tmp_path / "model" / "card.md")
    assert built.meta["name"] == "sdss" and built.meta["hash"] == find_model(tmp_path / "model").hash
    assert "Real spectra, as they come" in built.body and "spec-0500-51990-0201" in built.body
    table = load_model(tmp_path / "model").predict([test_data / "sdss"], workers=1)
    assert len(table) == 5 and set(table["class"][table["error"] == ""]) <= set(CLASSES)
    # the prose can be rewritten without retraining: the same card again from the build's record
    (tmp_path / "model" / "card.md").unlink()
    assert main(["-q", "zoo", "build", "sdss", "--out", str(tmp_path), "--card-only"]) == 0
    assert ModelCard.read(tmp_path / "model" / "card.md").text() == built.text()
    assert (tmp_path / "model" / "flag_curve.png").stat().st_size > 5000
