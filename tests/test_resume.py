"""Resuming interrupted training: kill -9 and continue, exactness, refusals, and loading without pickle.

Stated tolerance: on one CPU thread a resumed run reproduces the uninterrupted one *bitwise* (weights, the
history, the test scores), so these tests compare with exact equality. Any drift would mean some state was not
restored -- which is also why the exactness tests show that leaving a piece of state out does change the result.
The kill -9 tests run ``astrocnn train`` in child processes; the others crash in-process right after a save.
"""
import hashlib
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import astrocnn.train.callbacks as T
from astrocnn.apps.cli import main
from astrocnn.core.config import RunConfig
from astrocnn.core.errors import InputError
from astrocnn.train.resume import load_state, read_state_header, tensor_files, verify_state
from astrocnn.train import RESUME_FILE, load_run, read_history, train

from test_train import make_set, tiny_config

@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    return make_set(tmp_path_factory.mktemp("data") / "tiny.h5")


class Crash(RuntimeError):
    """Stands in for a process dying right after an epoch's state was saved."""


def crash_after(monkeypatch, epoch):
    """Make training die right after the resume state of ``epoch`` is committed."""
    original = T.ResumeWriter.on_train_epoch_end

    def dying(self, trainer, module):
        original(self, trainer, module)
        if trainer.current_epoch == epoch:
            raise Crash(f"killed after epoch {epoch}")

    monkeypatch.setattr(T.ResumeWriter, "on_train_epoch_end", dying)


def same_weights(a, b):
    ta, tb = load_file(a), load_file(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def same_scores(a, b):
    """Score dicts exactly equal, NaN (an empty redshift bin) included."""
    return json.dumps(a, sort_keys=True, default=float) == json.dumps(b, sort_keys=True, default=float)


def assert_same_run(run, ref):
    """Resumed ``run`` ended exactly as the uninterrupted ``ref``: history, weights and test scores."""
    ha, hb = read_history(run), read_history(ref)
    assert list(ha) == list(hb)
    for key in ha:
        if key != "time_s":
            np.testing.assert_array_equal(ha[key], hb[key], err_msg=key)
    for which in ("best", "last"):
        assert same_weights(run / f"{which}.safetensors", ref / f"{which}.safetensors"), which
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (run, ref))
    assert same_scores(ma["test"], mb["test"])
    for key in ("epochs", "best_epoch", "best_val_loss"):
        assert ma["summary"][key] == mb["summary"][key], key


def assert_no_debris(run):
    names = [p.name for p in run.iterdir()]
    assert not [n for n in names if n.endswith(".partial")], names
    assert len(tensor_files(run / RESUME_FILE)) == 1


# -- a real kill -9 ------------------------------------------------------------------------------------------


def _cli(args, **kw):
    cmd = [sys.executable, "-m", "astrocnn.apps.cli", "-q", "train", "redshift", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _epochs_done(run):
    try:
        return max(0, len((run / "history.csv").read_text().splitlines()) - 1)
    except OSError:
        return 0


def check_folder_after_kill(run):
    """Everything under a final name is complete and readable; the only debris is named as such."""
    for path in run.iterdir():
        name = path.name
        if name.startswith(".") and name.endswith(".partial"):
            continue  # an atomic write in progress when the process died: never taken for a finished file
        if name == "config.yaml":
            RunConfig.load(path)
        elif name == "split.npz":
            with np.load(path, allow_pickle=False) as npz:
                assert {"train", "val", "test"} <= set(npz.keys())
        elif name == "history.csv":
            assert len(read_history(run)["epoch"]) >= 2
        elif name in ("best.safetensors", "last.safetensors"):
            load_run(path)
        elif name == RESUME_FILE:
            assert verify_state(path) >= 0
        elif name.startswith("resume.e") and name.endswith(".safetensors"):
            with safe_open(str(path), framework="pt") as f:  # the committed one, or a complete orphan
                assert f.metadata()["format"] == "astrocnn-resume"
        else:
            pytest.fail(f"unexpected file after the kill: {name}")
    assert (run / RESUME_FILE).exists(), "two epochs ended, so a state was committed"


class _Reference:
    """An uninterrupted CLI run, started in the background when first needed and shared by the kill tests."""

    def __init__(self, folder, tiny_set):
        cfg = tiny_config("redshift", max_epochs=6, patience=6, lr=5e-3)
        cfg.model.dropout = 0.2  # the torch generator matters too
        self.cfg_path = folder / "cfg.yaml"
        cfg.save(self.cfg_path)
        self.common = ["--data", tiny_set, "--config", self.cfg_path]
        self.run = folder / "ref"
        self.proc = _cli([*self.common, "--out", self.run])
        self.done = False

    def wait(self):
        if not self.done:
            _, err = self.proc.communicate(timeout=300)
            assert self.proc.returncode == 0, err[-3000:]
            self.done = True
        return self.run


@pytest.fixture(scope="module")
def reference_cli_run(tiny_set, tmp_path_factory):
    ref = _Reference(tmp_path_factory.mktemp("reference"), tiny_set)
    yield ref
    if ref.proc.poll() is None:
        ref.proc.kill()
        ref.proc.communicate()


@pytest.mark.parametrize("delay", [0.0, 0.15])
def test_kill_9_then_resume_matches_an_uninterrupted_run(reference_cli_run, tmp_path, delay):
    """``astrocnn train`` killed with SIGKILL once two epochs are in history.csv (at once: usually while the
    epoch-end files are being written; or a little later: mid-epoch), then ``--resume``d to the end."""
    common = reference_cli_run.common
    run = tmp_path / "run"
    victim = _cli([*common, "--out", run])
    deadline = time.monotonic() + 120
    while _epochs_done(run) < 2:
        assert victim.poll() is None, f"training ended before it could be killed: {victim.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "no two epochs in two minutes"
        time.sleep(0.005)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert not (run / "metrics.json").exists()
    check_folder_after_kill(run)

    resumed = _cli([*common, "--out", run, "--resume"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert_same_run(run, reference_cli_run.wait())
    assert_no_debris(run)
    summary = json.loads((run / "metrics.json").read_text())["summary"]
    assert summary["epochs"] == 6 and summary["resumed_after_epoch"] >= 0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ASTROCNN_TEST_DDP_RESUME") != "1",
                    reason="about 70 s on 2 cores: set ASTROCNN_TEST_DDP_RESUME=1 to run")
def test_ddp_kill_9_then_resume(tiny_set, tmp_path):
    """devices=2 (DDP over spawned processes, with dropout): the whole process group killed after two epochs,
    resumed with --resume: bitwise the uninterrupted DDP run (every rank's generator state is restored)."""
    cfg = tiny_config("redshift", max_epochs=4, patience=8, lr=5e-3, devices=2)
    cfg.model.dropout = 0.2
    cfg.save(tmp_path / "cfg.yaml")
    common = ["--data", tiny_set, "--config", tmp_path / "cfg.yaml"]
    reference = _cli([*common, "--out", tmp_path / "ref"])
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]
    run = tmp_path / "run"
    victim = _cli([*common, "--out", run], start_new_session=True)
    while _epochs_done(run) < 2:
        assert victim.poll() is None, victim.communicate()[1][-2000:]
        time.sleep(0.005)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.communicate()
    check_folder_after_kill(run)
    resumed = _cli([*common, "--out", run, "--resume"])
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert_same_run(run, tmp_path / "ref")
    assert_no_debris(run)


# -- in-process: exactness, and that it is not an accident ------------------------------------------------------


def test_resume_reproduces_later_epochs_exactly(tiny_set, tmp_path, monkeypatch):
    """Resumed after epoch 2 of 6 (cosine schedule, Adam, dropout): bitwise the same run. Leaving out the
    optimizer state, or the random generator states, gives a different run -- so the test has teeth."""
    cfg = tiny_config("redshift", max_epochs=6, lr=5e-3)
    cfg.model.dropout = 0.2
    ref = tmp_path / "ref"
    full = train("redshift", tiny_set, ref, cfg)

    with monkeypatch.context() as m:
        crash_after(m, 2)
        with pytest.raises(Crash):
            train("redshift", tiny_set, tmp_path / "crashed", cfg)
    assert read_state_header(tmp_path / "crashed" / RESUME_FILE)["epoch"] == 2
    state = load_state(tmp_path / "crashed" / RESUME_FILE)
    adam = state["optimizer_states"][0]
    assert int(adam["state"][0]["step"]) == 3 * 7 and adam["param_groups"][0]["betas"] == (0.9, 0.999)
    for name in ("faithful", "no_optimizer", "no_rng"):
        shutil.copytree(tmp_path / "crashed", tmp_path / name)

    result = train("redshift", tiny_set, tmp_path / "faithful", cfg, resume=True)
    assert_same_run(tmp_path / "faithful", ref)
    assert (result.epochs, result.best_epoch) == (full.epochs, full.best_epoch)
    assert same_scores(result.metrics, full.metrics)
    assert list(read_history(tmp_path / "faithful")["epoch"]) == list(range(6))

    with monkeypatch.context() as m:  # Adam moments and step count not restored: the weights differ
        m.setattr("pytorch_lightning.strategies.Strategy.load_optimizer_state_dict", lambda self, ckpt: None)
        train("redshift", tiny_set, tmp_path / "no_optimizer", cfg, resume=True)
    assert not same_weights(tmp_path / "no_optimizer" / "last.safetensors", ref / "last.safetensors")

    with monkeypatch.context() as m:  # generators left as the fresh process set them: dropout differs
        m.setattr(T, "set_rng_state", lambda state: None)
        train("redshift", tiny_set, tmp_path / "no_rng", cfg, resume=True)
    assert not same_weights(tmp_path / "no_rng" / "last.safetensors", ref / "last.safetensors")


def test_resume_keeps_plateau_schedule_and_early_stopping(tiny_set, tmp_path, monkeypatch):
    """A ``plateau`` run killed right after the epoch whose validation loss halves the learning rate (a step
    Lightning takes after the epoch-end save), and which later stops early: resumed, it halves at the same
    epoch and stops at the same epoch (early stopping's best score and wait count came back)."""
    cfg = tiny_config("redshift", max_epochs=12, lr=0.1, schedule="plateau", patience=5)
    ref = tmp_path / "ref"
    full = train("redshift", tiny_set, ref, cfg)
    lr = read_history(ref)["lr"]
    drops = np.flatnonzero(lr[1:] < lr[:-1])
    assert drops.size and full.epochs < 12, "this setting is meant to halve the rate and stop early"
    crash_epoch = int(drops[0])  # the rate halves after this epoch's save
    for name in ("run", "no_replay"):
        with monkeypatch.context() as m:
            crash_after(m, crash_epoch)
            with pytest.raises(Crash):
                train("redshift", tiny_set, tmp_path / name, cfg)
    train("redshift", tiny_set, tmp_path / "run", cfg, resume=True)
    assert_same_run(tmp_path / "run", ref)

    with monkeypatch.context() as m:
        m.setattr(T.ResumeWriter, "on_train_start", lambda self, trainer, module: None)
        train("redshift", tiny_set, tmp_path / "no_replay", cfg, resume=True)
    assert read_history(tmp_path / "no_replay")["lr"][crash_epoch + 1] == lr[crash_epoch]  # the step was missed


def test_resume_after_the_last_epoch_only_finishes(tiny_set, tmp_path, monkeypatch, caplog):
    """Killed after the last epoch's state but before metrics.json: resuming trains nothing and writes the
    scores; resuming the finished run then changes nothing."""
    cfg = tiny_config("redshift", max_epochs=2)
    ref = tmp_path / "ref"
    train("redshift", tiny_set, ref, cfg)
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        crash_after(m, 1)
        with pytest.raises(Crash):
            train("redshift", tiny_set, run, cfg)
    assert not (run / "metrics.json").exists()
    train("redshift", tiny_set, run, cfg, resume=True)
    assert_same_run(run, ref)

    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()}
    with caplog.at_level(logging.INFO, logger="astrocnn"):
        again = train("redshift", tiny_set, run, cfg, resume=True)
    assert "already finished" in caplog.text
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()} == before
    assert same_scores(again.metrics, json.loads((run / "metrics.json").read_text())["test"]) and again.epochs == 2


def test_time_budget_counts_earlier_processes(tiny_set, tmp_path, monkeypatch):
    """``max_minutes`` (and ``cosine_time``) run on training time summed over the run's processes: the saved
    state carries the seconds trained so far, the resumed run's clock starts from there."""
    cfg = tiny_config("redshift", max_epochs=4, max_minutes=30.0, schedule="cosine_time")
    run = tmp_path / "run"
    with monkeypatch.context() as m:
        crash_after(m, 1)
        with pytest.raises(Crash):
            train("redshift", tiny_set, run, cfg)
    before = load_state(run / RESUME_FILE)
    seconds = before["astrocnn"]["train_seconds"]
    assert seconds > 0 and before["callbacks"]["Timer"]["time_elapsed"]["train"] > 0
    train("redshift", tiny_set, run, cfg, resume=True)
    after = load_state(run / RESUME_FILE)
    assert after["astrocnn"]["train_seconds"] > seconds
    assert after["callbacks"]["Timer"]["time_elapsed"]["train"] > before["callbacks"]["Timer"]["time_elapsed"]["train"]
    time_s = read_history(run)["time_s"]
    assert np.all(np.diff(time_s) >= 0) and time_s[-1] <= after["callbacks"]["Timer"]["time_elapsed"]["train"] + 0.5


def test_classify_resume(tiny_set, tmp_path, monkeypatch):
    cfg = tiny_config("classify", max_epochs=3)
    ref = tmp_path / "ref"
    train("classify", tiny_set, ref, cfg)
    with monkeypatch.context() as m:
        crash_after(m, 0)
        with pytest.raises(Crash):
            train("classify", tiny_set, tmp_path / "run", cfg)
    result = train("classify", tiny_set, tmp_path / "run", cfg, resume=True)
    assert_same_run(tmp_path / "run", ref)
    assert result.metrics["confusion"]["classes"] == ["qso", "galaxy"]


def test_resume_with_nothing_saved_starts_a_new_run(tiny_set, tmp_path, caplog):
    cfg = tiny_config("redshift", max_epochs=1)
    with caplog.at_level(logging.INFO, logger="astrocnn"):
        result = train("redshift", tiny_set, tmp_path / "new", cfg, resume=True)
    assert "no run to resume" in caplog.text and result.epochs == 1


# -- refusals -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crashed_run(tiny_set, tmp_path_factory):
    """A run folder whose training died after epoch 0 (built once; tests work on copies)."""
    run = tmp_path_factory.mktemp("crashed") / "run"
    mp = pytest.MonkeyPatch()
    try:
        crash_after(mp, 0)
        with pytest.raises(Crash):
            train("redshift", tiny_set, run, tiny_config("redshift", max_epochs=3))
    finally:
        mp.undo()
    return run


@pytest.fixture
def crashed(crashed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(crashed_run, run)
    return run


@pytest.mark.parametrize("change, field", [
    ({"train": {"lr": 1e-3}}, "train.lr"),
    ({"train": {"seed": 7}}, "train.seed"),
    ({"train": {"batch_size": 16}}, "train.batch_size"),
    ({"train": {"max_epochs": 5}}, "train.max_epochs"),
    ({"model": {"dense": [32]}}, "model.dense"),
    ({"data": {"split_seed": 3}}, "data.split_seed"),
])
def test_resume_refuses_other_settings(tiny_set, crashed, change, field):
    d = tiny_config("redshift", max_epochs=3).to_dict()
    for section, values in change.items():
        d[section].update(values)
    before = (crashed / RESUME_FILE).read_bytes()
    with pytest.raises(InputError, match=field.replace(".", r"\.")) as err:
        train("redshift", tiny_set, crashed, RunConfig.from_dict(d), resume=True)
    assert "\n" not in str(err.value) and "cannot resume" in str(err.value)
    assert (crashed / RESUME_FILE).read_bytes() == before  # nothing touched


def test_resume_allows_settings_that_do_not_change_the_result(tiny_set, crashed):
    cfg = tiny_config("redshift", max_epochs=3, progress_bar=False)
    cfg.data.eval_batch_size = 100
    assert train("redshift", tiny_set, crashed, cfg, resume=True).epochs == 3


def test_cli_resume_refusal_is_one_line(tiny_set, crashed, capsys):
    cfg = tiny_config("redshift", max_epochs=3)
    cfg.save(crashed / "cfg.yaml")
    assert main(["train", "redshift", "--data", str(tiny_set), "--out", str(crashed), "--config",
                 str(crashed / "cfg.yaml"), "--lr", "0.01", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("astrocnn: error: ") and "train.lr (0.002 in the run, 0.01 now)" in err[-1]


def test_resume_refuses_other_data(tiny_set, crashed, tmp_path):
    other = make_set(tmp_path / "other.h5", n=600, seed=1)  # same grid, other rows
    with pytest.raises(InputError, match="cannot resume"):
        train("redshift", other, crashed, tiny_config("redshift", max_epochs=3), resume=True)


def _damage(run, how):
    state = run / RESUME_FILE
    (tensors,) = tensor_files(state)
    if how == "flipped byte":
        blob = bytearray(tensors.read_bytes())
        blob[-5] ^= 0xFF
        tensors.write_bytes(bytes(blob))
    elif how == "missing tensors":
        tensors.unlink()
    elif how == "truncated json":
        state.write_text(state.read_text()[:100])
    elif how == "another state's tensors":
        # a consistent-looking pair made by hand: the hash fits, the state id does not
        doc = json.loads(state.read_text())
        save_file(load_file(tensors), str(tensors), metadata={"format": "astrocnn-resume", "format_version": "1",
                                                              "state_id": "000000000000", "epoch": str(doc["epoch"])})
        doc["tensors"]["sha256"] = hashlib.sha256(tensors.read_bytes()).hexdigest()
        state.write_text(json.dumps(doc))


@pytest.mark.parametrize("how, message", [
    ("flipped byte", "SHA-256 differs"),
    ("missing tensors", "which is missing"),
    ("truncated json", "not a readable resume state"),
    ("another state's tensors", "belongs to another saved state"),
])
def test_resume_refuses_damaged_state(tiny_set, crashed, how, message):
    _damage(crashed, how)
    with pytest.raises(InputError, match=message) as err:
        train("redshift", tiny_set, crashed, tiny_config("redshift", max_epochs=3), resume=True)
    assert "without --resume" in str(err.value)


def test_new_run_in_the_folder_discards_the_old_state(tiny_set, crashed):
    """Training with --force into a folder with a saved state starts afresh and leaves no old state."""
    old_id = read_state_header(crashed / RESUME_FILE)["state_id"]
    train("redshift", tiny_set, crashed, tiny_config("redshift", max_epochs=1), force=True)
    assert read_state_header(crashed / RESUME_FILE)["state_id"] != old_id
    assert read_state_header(crashed / RESUME_FILE)["epoch"] == 0
    assert_no_debris(crashed)


def test_resume_cleans_up_what_a_kill_leaves(tiny_set, crashed):
    (crashed / ".last.safetensors.abc123.safetensors.partial").write_bytes(b"half a file")
    (crashed / "resume.e0001-deadbeef0000.safetensors").write_bytes(b"orphan: written, never committed")
    train("redshift", tiny_set, crashed, tiny_config("redshift", max_epochs=3), resume=True)
    assert_no_debris(crashed)


# -- safety -----------------------------------------------------------------------------------------------------


def test_state_loads_without_unpickling(tiny_set, crashed, monkeypatch):
    """The resume state is JSON + safetensors; resuming works with every unpickling route disabled, and no
    file of the run folder is a pickle or a torch.save archive."""
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    for target in ("pickle.load", "pickle.loads", "torch.load", "torch.serialization.load"):
        monkeypatch.setattr(target, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    state = load_state(crashed / RESUME_FILE)
    assert isinstance(state["state_dict"]["network.head.logits.weight"], torch.Tensor)
    assert torch.get_rng_state().dtype == state["callbacks"]["ResumeWriter"]["rng"]["torch"].dtype == torch.uint8
    train("redshift", tiny_set, crashed, tiny_config("redshift", max_epochs=3), resume=True)
    monkeypatch.undo()
    json.loads((crashed / RESUME_FILE).read_text())  # strict JSON: no NaN/Infinity tokens either
    assert "NaN" not in (crashed / RESUME_FILE).read_text()
    for path in crashed.iterdir():
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80"), f"{path.name} looks like a pickle"
        assert head != b"PK\x03\x04" or path.name == "split.npz", f"{path.name} looks like a torch.save archive"
