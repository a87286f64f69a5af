"""Training engine: run folders, safe checkpoints, early stopping, DDP against one process, refusals."""
import json
import math

import numpy as np
import pytest
import torch
import yaml

from astrocnn.core.config import RunConfig, default_config
from astrocnn.train.loader import PAD, BatchSampler, split_rows
from astrocnn.core.errors import InputError
from astrocnn.spectra.grid import LogLambdaGrid
from astrocnn.spectra.preprocess import Prepared
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter
from astrocnn.tasks import make_task
from astrocnn.train import (
    build_network,
    evaluate,
    load_run,
    predict_set,
    predict_arrays,
    read_history,
    save_weights,
    train,
)

N_PIX = 512
QSO_LINES = ((1216.0, 4.0), (1549.0, 3.0), (2798.0, 2.0), (4861.0, 2.0))
GAL_LINES = ((3727.0, 3.0), (5007.0, 3.0), (6563.0, 3.0))


def make_set(path, n=900, n_pix=N_PIX, seed=0, noise=0.3):
    """A tiny prepared set: quasars (broad lines), galaxies (narrow lines) and stars (a slope), in turn."""
    grid = LogLambdaGrid(3600.0, 10325.0, n_pix)
    rng = np.random.default_rng(seed)
    loglam = grid.loglam
    with SpectraWriter(path, grid, source="test", seed=seed) as w:
        for i in range(n):
            cls = ("qso", "galaxy", "star")[i % 3]
            z = rng.uniform(0.05, 3.0) if cls != "star" else rng.normal(0.0, 1e-3)
            f = rng.normal(0.0, noise, n_pix)
            lines, width = (QSO_LINES, 0.004) if cls == "qso" else (GAL_LINES, 0.0015)
            if cls == "star":
                f += np.linspace(1, -1, n_pix)
            else:
                for lam, amp in lines:
                    f += amp * np.exp(-0.5 * ((loglam - np.log10(lam * (1 + z))) / width) ** 2)
            f = ((f - f.mean()) / f.std()).astype(np.float32)
            ivar = np.full(n_pix, 1 / noise**2, np.float32)
            w.append(Prepared(f, ivar, 1.0, 5.0, 0.0, 1.0), id=f"obj{i}", z=z, cls=cls)
    return path


def tiny_config(task, **train):
    return default_config(
        task,
        model=dict(kernels=[50, 20, 5], channels=[8, 16, 16], pools=[4, 2, 2], dense=[64]),
        task=dict(n_bins=100, z_max=3.5) if task == "redshift" else {},
        data=dict(num_workers=0, eval_batch_size=64),
        # one thread per process: tiny networks gain nothing from more, and it keeps a busy machine usable
        train=dict(dict(max_epochs=6, batch_size=32, lr=2e-3, progress_bar=False, threads=1), **train),
    )


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("data") / "tiny.h5")


@pytest.fixture(scope="module")
def redshift_run(tiny_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "z"
    return train("redshift", tiny_set, out, tiny_config("redshift")), out


# -- data handling -------------------------------------------------------------------------------------------


def test_split_is_seeded_disjoint_and_complete():
    rows = np.arange(10, 1010)
    a, b = split_rows(rows, 0.1, 0.1, seed=5), split_rows(rows, 0.1, 0.1, seed=5)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (a["test"].size, a["val"].size, a["train"].size) == (100, 90, 810)
    assert np.array_equal(np.sort(np.concatenate(list(a.values()))), rows)
    assert not np.array_equal(split_rows(rows, 0.1, 0.1, seed=6)["test"], a["test"])


def test_distributed_batches_are_the_single_process_batches():
    rows = np.arange(103)
    for epoch in (0, 3):
        single = BatchSampler(rows, 8, shuffle=True, seed=1, drop_last=True)
        ranks = [BatchSampler(rows, 8, shuffle=True, seed=1, rank=r, world_size=2, drop_last=True) for r in (0, 1)]
        for s in (single, *ranks):
            s.set_epoch(epoch)
        parts = [list(r) for r in ranks]
        assert len(parts[0]) == len(parts[1]) == len(single) == 12
        for i, batch in enumerate(single):
            assert sorted(batch) == sorted(np.concatenate([parts[0][i], parts[1][i]]))
    # evaluation: padded so both ranks run equally many equal-sized steps, and every row is seen once
    ev = [list(BatchSampler(rows, 10, shuffle=False, rank=r, world_size=2)) for r in (0, 1)]
    assert [len(b) for b in ev[0]] == [len(b) for b in ev[1]]
    seen = np.concatenate([np.concatenate(e) for e in ev])
    assert np.array_equal(np.sort(seen[seen != PAD]), rows)


def test_two_and_three_class_selection(tiny_set):
    store = SpectraSet(tiny_set)
    two = make_task(default_config("classify").task)
    three = make_task(default_config("classify", task={"classes": ["qso", "galaxy", "star"]}).task)
    star = store.class_names.index("star")
    rows2 = two.rows(store.z, store.cls, store.class_names)
    assert rows2.size == 600 and not np.any(store.cls[rows2] == star)
    rows3 = three.rows(store.z, store.cls, store.class_names)
    assert rows3.size == 900
    t = three.targets(store.read(rows3[:6], fields=()), store.class_names)
    assert sorted(set(t.tolist())) == [0, 1, 2]
    z_rows = make_task(default_config("redshift").task).rows(store.z, store.cls, store.class_names)
    assert z_rows.size == 300  # quasars only by default


# -- a training run ------------------------------------------------------------------------------------------


def test_run_folder_contents(redshift_run, tiny_set):
    result, out = redshift_run
    for name in ("config.yaml", "split.npz", "history.csv", "best.safetensors", "last.safetensors", "metrics.json",
                 "test_predictions.csv", "loss.png", "z_pred_vs_true.png", "dv_hist.png"):
        assert (out / name).is_file(), name
    hist = read_history(out)
    assert list(hist)[:4] == ["epoch", "train_loss", "val_loss", "lr"]
    assert "val_frac_dv_lt_6000" in hist and len(hist["epoch"]) == result.epochs
    # the network learned something: the loss fell
    assert hist["val_loss"][-1] < hist["val_loss"][0]
    cfg = RunConfig.load(out / "config.yaml")
    assert cfg.task.name == "redshift" and cfg.input["grid"]["n"] == N_PIX and cfg.model.length == N_PIX
    assert set(cfg.task.state) == {"y_mean", "y_std"}
    with np.load(out / "split.npz", allow_pickle=False) as npz:
        parts = {k: npz[k] for k in ("train", "val", "test")}
    assert sum(p.size for p in parts.values()) == 300
    assert not set(parts["test"]) & (set(parts["train"]) | set(parts["val"]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["n"] == parts["test"].size == 30
    assert [b["z_lo"] for b in metrics["test"]["per_bin"]][:3] == [0.0, 0.5, 1.0]


def test_checkpoint_is_safe_and_reproduces_predictions(redshift_run, tiny_set, tmp_path):
    result, out = redshift_run
    network, task, config = load_run(out)
    assert config.to_dict() == RunConfig.load(out / "config.yaml").to_dict()
    # weights load as plain tensors, nothing unpickled
    from safetensors.torch import load_file

    assert all(isinstance(v, torch.Tensor) for v in load_file(out / "best.safetensors").values())
    # save -> load -> identical predictions
    save_weights(network, config, tmp_path / "copy.safetensors")
    again, _, _ = load_run(tmp_path / "copy.safetensors")
    store = SpectraSet(tiny_set)
    flux = store.read(np.arange(64))["flux"]
    with torch.inference_mode():
        ref = task.decode(network(torch.from_numpy(flux)[:, None]))["z"].numpy()
    for source in (out, tmp_path / "copy.safetensors"):
        np.testing.assert_array_equal(predict_arrays(source, flux)["z"], ref)
    np.testing.assert_array_equal(predict_set(out, tiny_set)["z"][:64], ref)
    # evaluating the run on its own test split gives the scores training wrote
    written = json.loads((out / "metrics.json").read_text())["test"]
    _assert_same_scores(evaluate(out, tiny_set, split="test"), written)


def _assert_same_scores(a, b):
    """Nested score dicts equal to float rounding (NaN equals NaN: empty redshift bins)."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same_scores(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same_scores(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == pytest.approx(b, rel=1e-9)


def test_config_yaml_is_data_only(tmp_path, redshift_run):
    _, out = redshift_run
    text = (out / "config.yaml").read_text()
    assert "!!python" not in text
    evil = tmp_path / "evil.yaml"
    evil.write_text("task: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        RunConfig.load(evil)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"train": {"learning_rate": 0.1}}))
    with pytest.raises(InputError, match="unknown train settings"):
        RunConfig.load(typo)


def test_refuses_other_grid_task_and_files(redshift_run, tmp_path):
    _, out = redshift_run
    other = make_set(tmp_path / "other.h5", n=30, n_pix=400)
    with pytest.raises(InputError, match="grid"):
        evaluate(out, other)
    with pytest.raises(InputError, match="pixels"):
        predict_arrays(out, np.zeros((2, 400), np.float32))
    network, task, config = load_run(out)
    with pytest.raises(InputError, match="other.h5: spectra are on grid 3600-10325 A with 400 pixels"):
        task.check_compatible(config, SpectraSet(other))
    with pytest.raises(InputError, match="no such run folder"):
        load_run(tmp_path / "missing")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a weights file")
    with pytest.raises(InputError, match="safetensors"):
        load_run(bad)


def test_classification_run(tiny_set, tmp_path):
    cfg = tiny_config("classify", max_epochs=3)
    result = train("classify", tiny_set, tmp_path / "c", cfg)
    m = result.metrics
    assert m["confusion"]["classes"] == ["qso", "galaxy"]
    assert m["n"] == 60 and m["accuracy"] > 0.9
    assert (tmp_path / "c" / "confusion.png").is_file()
    out = predict_set(tmp_path / "c", tiny_set)
    assert out["prob"].shape == (900, 2) and set(out["class"]) <= {"qso", "galaxy"}


# -- early stopping -----------------------------------------------------------------------------------------


def test_early_stopping_stops_on_a_plateau(tiny_set, tmp_path):
    # lr = 0: the validation loss never changes, so training stops after `patience` epochs without improvement
    cfg = tiny_config("redshift", lr=0.0, max_epochs=20, patience=2)
    result = train("redshift", tiny_set, tmp_path / "flat", cfg)
    hist = read_history(tmp_path / "flat")
    assert result.epochs == 3 and result.best_epoch == 0
    assert np.all(hist["val_loss"] == hist["val_loss"][0])


def test_best_weights_are_kept(tiny_set, tmp_path):
    # a learning rate this high makes the validation loss jump about, so the last epoch is rarely the best
    cfg = tiny_config("redshift", lr=2e-2, schedule="constant", max_epochs=6, patience=3)
    out = tmp_path / "noisy"
    train("redshift", tiny_set, out, cfg)
    hist = read_history(out)
    with np.load(out / "split.npz") as npz:
        val = npz["val"]
    store = SpectraSet(tiny_set)
    batch = store.read(val)
    for which, expected in (("best", np.nanmin(hist["val_loss"])), ("last", hist["val_loss"][-1])):
        network, task, _ = load_run(out, which)
        with torch.inference_mode():
            out_ = network(torch.from_numpy(batch["flux"])[:, None])
            loss = task.loss(out_, torch.from_numpy(task.targets(batch, store.class_names))).double().mean()
        assert float(loss) == pytest.approx(expected, rel=1e-4), which


# -- distributed ------------------------------------------------------------------------------------------


def _train_two_processes(data, out, cfg, tmp_path):
    """``astrocnn train --devices 2`` in a child process, so that the DDP workers' own stderr (a C++ abort
    message, say) is captured and shown when they fail instead of being lost to pytest's capture.

    A worker killed by a signal before training ends is retried once, with a warning: in the sandboxed CI
    one such abort was seen once (SIGABRT in rank 1, no Python traceback) and never in 25 reruns here.
    A run that finishes with wrong numbers, or dies twice, still fails the test.
    """
    import subprocess
    import sys
    import warnings

    cfg_path = tmp_path / "ddp.yaml"
    cfg.save(cfg_path)
    cmd = [sys.executable, "-m", "astrocnn.apps.cli", "train", "redshift", "--data", str(data), "--out", str(out),
           "--config", str(cfg_path), "--devices", "2", "--accelerator", "cpu"]
    for attempt in (1, 2):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            return json.loads((out / "metrics.json").read_text())["test"]
        tail = "\n".join(proc.stderr.splitlines()[-40:])
        if attempt == 1 and "terminated with signal" in proc.stderr:
            warnings.warn(f"DDP worker died by a signal, retrying once; its stderr ended:\n{tail}")
            continue
        pytest.fail(f"astrocnn train --devices 2 exited {proc.returncode}; stderr ended:\n{tail}")


@pytest.mark.slow
def test_ddp_two_processes_match_one(tiny_set, tmp_path):
    """devices=2 on the CPU (DDP, gloo) against one process with the same seed and global batch.

    Both runs see the same global batches and average the same gradients; they differ only in the order
    of floating-point sums (per-rank means averaged by all-reduce). Stated tolerance: losses agree to 1e-4
    relative and scores to 1e-6 (measured: ~1e-7 relative after 4 epochs, identical scores).
    """
    cfg = tiny_config("redshift", devices=1, max_epochs=4)
    m1 = train("redshift", tiny_set, tmp_path / "d1", cfg).metrics
    m2 = _train_two_processes(tiny_set, tmp_path / "d2", cfg, tmp_path)
    h1, h2 = read_history(tmp_path / "d1"), read_history(tmp_path / "d2")
    assert len(h1["epoch"]) == len(h2["epoch"]) == 4
    for key in ("train_loss", "val_loss"):
        np.testing.assert_allclose(h2[key], h1[key], rtol=1e-4)
    np.testing.assert_allclose(h2["val_frac_dv_lt_6000"], h1["val_frac_dv_lt_6000"], atol=1e-6)
    assert m2["n"] == m1["n"]
    for key in ("frac_dv_lt_6000", "frac_dv_lt_12000"):
        assert m2[key] == pytest.approx(m1[key], abs=1e-6)
    assert m2["median_abs_dv_kms"] == pytest.approx(m1["median_abs_dv_kms"], rel=1e-3)


@pytest.mark.slow
def test_classify_redshift_gives_class_and_redshift_from_one_network(tiny_set, tmp_path):
    """The two-headed task: the class as the classifier gives it, and a redshift for every class (stars at
    z ~ 0, below the quasar and galaxy ranges, with room for negative velocities)."""
    base = tiny_config("redshift", max_epochs=8)
    cfg = default_config("classify_redshift", model=base.model.to_dict(), data={"num_workers": 0, "eval_batch_size": 64},
                         train={**base.train.__dict__}, task={"n_bins": 100, "z_max": 3.5})
    assert cfg.task.z_min == pytest.approx(-0.005) and cfg.task.classes == ["qso", "galaxy", "star"]
    result = train("classify_redshift", tiny_set, tmp_path / "j", cfg)
    m = result.metrics
    assert m["accuracy"] > 0.9 and set(m) >= {"z_qso", "z_galaxy", "z_star", "confusion"}
    assert m["z_star"]["frac_dv_lt_1000"] > 0.5  # 100 bins over -0.005..3.5 are 4200 km/s wide; offsets refine
    out = predict_set(tmp_path / "j", tiny_set)
    assert {"class", "prob", "z", "z_conf"} <= set(out) and np.allclose(out["prob"].sum(axis=1), 1.0, atol=1e-5)
    stars = out["class"] == "star"
    assert np.median(np.abs(out["z"][stars])) < 0.005
    header = (tmp_path / "j" / "test_predictions.csv").read_text().splitlines()[0]
    assert header == "row,id,cls_true,cls_pred,p_qso,p_galaxy,p_star,z_true,z_pred,z_conf"
