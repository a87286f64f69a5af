"""Reliability: re-runnable prepare (interrupted by Ctrl-C or kill -9), predict --on-error, and real OS-level
write failures (file-size limit, a full tmpfs, a read-only file system, an unwritable folder).

Every failure here is a real one: writes fail because the kernel refuses them (RLIMIT_FSIZE -> EFBIG, a
tiny tmpfs -> ENOSPC, a read-only mount -> EROFS), not because a function was mocked. Interruptions are a
KeyboardInterrupt raised between two parts (what Ctrl-C does) and a SIGKILL sent to a real process.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from astrocnn.apps.cli import main
from astrocnn.core.errors import OutputError

TEST_DATA = Path(__file__).resolve().parent / "data"
BAD = TEST_DATA / "sdss-bad"
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Make this process's writes past ``nbytes`` fail with EFBIG (SIGXFSZ ignored, as CPython does)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.endswith(".partial"))


def last_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, "nothing on stderr"
    assert "Traceback" not in err, err
    return lines[-1]


def interrupt_after(monkeypatch, n_parts: int) -> None:
    """Raise KeyboardInterrupt (what Ctrl-C does) when the part after the first ``n_parts`` is finished."""
    from astrocnn.core import parts

    original = parts.Parts.write
    calls = {"n": 0}

    def write(self, i, *args, **kwargs):
        if calls["n"] >= n_parts:
            raise KeyboardInterrupt
        calls["n"] += 1
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(parts.Parts, "write", write)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """12 simulated spec-lite files (+ catalog.fits, which is not a spectrum) and the 9 bad fixtures: 22 inputs."""
    d = tmp_path_factory.mktemp("reliability")
    assert main(["-q", "simulate", "spectra", "--n", "12", "--seed", "3", "--out", str(d / "sim.h5"),
                 "--sdss-dir", str(d / "sdss"), "--workers", "1"]) == 0
    ref = d / "ref"
    ref.mkdir()
    assert main(["-q", "prepare", "sdss", str(d / "sdss"), str(BAD), "--out", str(ref / "ref.h5"), "--workers", "1",
                 "--part-size", "4"]) == 0
    return d


def prepare_args(survey: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "sdss", str(survey / "sdss"), str(BAD), "--out", str(out), "--workers", "1",
            "--part-size", "4", *extra]


# ------------------------------------------------------------------------------------------------
# A. re-runnable prepare
# ------------------------------------------------------------------------------------------------

def test_prepare_sdss_interrupted_by_ctrl_c_resumes_to_the_same_bytes(survey, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    interrupt_after(monkeypatch, 2)
    assert main(prepare_args(survey, out)) == 130
    # nothing that looks finished: no output, no rejects list; the two finished parts are kept
    assert not out.exists() and not (tmp_path / "out.rejects.csv").exists()
    assert sorted(p.name for p in parts.glob("part-*.h5")) == ["part-00000.h5", "part-00001.h5"]
    assert leftovers(tmp_path) == []
    err = capsys.readouterr().err
    assert "2 of 6 parts (8 of 22 spectrum files) are done and kept" in err
    monkeypatch.undo()

    assert main(prepare_args(survey, out)) == 0
    captured = capsys.readouterr()
    assert "8 of 22 spectrum files already done" in captured.err
    assert "8 inputs were already done by an interrupted run" in captured.out
    ref = survey / "ref"
    assert out.read_bytes() == (ref / "ref.h5").read_bytes()
    assert (tmp_path / "out.rejects.csv").read_bytes() == (ref / "ref.rejects.csv").read_bytes()
    assert not parts.exists() and leftovers(tmp_path) == []
    rejects = read_csv(tmp_path / "out.rejects.csv")
    assert len(rejects) == 10  # the 9 bad fixtures and catalog.fits, each listed once


KILL_DRIVER = """
import sys, time
import astrocnn.spectra.prepare as pipeline
original = pipeline.prepare_files
def slow(job):
    time.sleep(0.4)  # slow enough to be killed part-way
    return original(job)
pipeline.prepare_files = slow
from astrocnn.apps.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_prepare_sdss_killed_with_sigkill_resumes_to_the_same_bytes(survey, tmp_path, capsys):
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    proc = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, "-q", *prepare_args(survey, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while len(list(parts.glob("part-*.h5"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    n_done = len(list(parts.glob("part-*.h5")))
    assert 2 <= n_done < 6 and not out.exists()
    # kill -9 in the middle of a write leaves a temporary file; a re-run removes it (plant one to be sure)
    (parts / ".part-00005.h5.abc123.partial").write_bytes(b"half a part")
    (tmp_path / ".out.h5.xyz789.partial").write_bytes(b"half an output")

    assert main(prepare_args(survey, out)) == 0
    err = capsys.readouterr().err
    assert "removed 2 temporary files left by an interrupted run" in err
    m = re.search(r"(\d+) of 22 spectrum files already done", err)
    assert m and int(m.group(1)) == 4 * n_done
    assert out.read_bytes() == (survey / "ref" / "ref.h5").read_bytes()
    assert (tmp_path / "out.rejects.csv").read_bytes() == (survey / "ref" / "ref.rejects.csv").read_bytes()
    assert not parts.exists() and leftovers(tmp_path) == []


def test_prepare_sdss_up_to_date_is_a_no_op_and_force_redoes_it(survey, tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(prepare_args(survey, out)) == 0
    before = out.stat().st_mtime_ns, sha(out)
    capsys.readouterr()
    assert main(prepare_args(survey, out)) == 0
    captured = capsys.readouterr()
    assert "is up to date with its inputs and settings: nothing to do" in captured.err
    assert "kept 12 spectra, rejected 10" in captured.out and "already up to date" in captured.out
    assert (out.stat().st_mtime_ns, sha(out)) == before and (tmp_path / "out.rejects.csv").exists()
    # --force prepares it again (the same bytes, a new file)
    time.sleep(0.01)
    assert main(prepare_args(survey, out, "--force")) == 0
    assert out.stat().st_mtime_ns != before[0] and sha(out) == before[1]
    # other settings: not up to date, prepared again
    assert main(prepare_args(survey, out, "--min-coverage", "0.9")) == 0
    assert "was prepared from other inputs or settings" in capsys.readouterr().err
    assert sha(out) != before[1]


def test_parts_from_other_settings_or_changed_inputs_are_never_mixed(survey, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.h5"
    sdss = tmp_path / "sdss"
    shutil.copytree(survey / "sdss", sdss)
    args = ["prepare", "sdss", str(sdss), str(BAD), "--out", str(out), "--workers", "1", "--part-size", "4"]
    interrupt_after(monkeypatch, 3)
    assert main(args) == 130
    monkeypatch.undo()
    # one input of the first part changes: that part is prepared again, the other two are reused
    first = sorted(p for p in sdss.glob("*.fits"))[0]
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    interrupt_after(monkeypatch, 1)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "1 parts were made from inputs that have changed since" in err
    assert "8 of 22 spectrum files already done" in err
    monkeypatch.undo()
    # other preprocessing settings: every part is discarded, with the reason
    interrupt_after(monkeypatch, 0)
    assert main([*args, "--min-coverage", "0.6"]) == 130
    err = capsys.readouterr().err
    assert "parts were made with other settings (preprocess differ); discarding them" in err
    assert not list((tmp_path / "out.h5.parts").glob("part-*.h5"))
    monkeypatch.undo()
    assert main([*args, "--min-coverage", "0.6"]) == 0
    assert not (tmp_path / "out.h5.parts").exists()
    ref = tmp_path / "ref" / "ref.h5"
    assert main(["-q", *args[:5], str(ref), *args[6:], "--min-coverage", "0.6"]) == 0
    assert out.read_bytes() == ref.read_bytes()


def test_prepare_sdss_refuses_a_second_process_on_the_same_output(survey, tmp_path, capsys):
    pytest.importorskip("fcntl")
    out = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    parts.mkdir()
    # another process holds the lock (a child: POSIX record locks do not conflict within one process)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(parts / '.lock')!r}, os.O_RDWR | os.O_CREAT)
        fcntl.lockf(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(prepare_args(survey, out)) == 2
        line = last_error_line(capsys.readouterr().err)
        assert "out.h5: another astrocnn process is writing it" in line
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert main(["-q", *prepare_args(survey, out)]) == 0


# ---- G2Net

def _g2net_folder(root: Path, n: int = 12, bad: tuple[int, ...] = ()) -> Path:
    """A Kaggle-layout folder of random strain with labels (no simulation needed)."""
    rng = np.random.default_rng(7)
    (root / "train").mkdir(parents=True)
    rows = ["id,target"]
    for i in range(n):
        ident = f"{i:010x}"
        if i in bad:
            np.save(root / "train" / f"{ident}.npy", np.zeros((2, 4096)))  # wrong shape
        else:
            np.save(root / "train" / f"{ident}.npy", rng.standard_normal((3, 4096)))
        rows.append(f"{ident},{i % 2}")
    (root / "training_labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_prepare_g2net_interrupted_resumes_to_the_same_bytes(tmp_path, monkeypatch, capsys):
    import torch

    torch.set_num_threads(1)
    g2 = _g2net_folder(tmp_path / "g2", bad=(5,))
    ref = tmp_path / "ref.h5"
    args = ["prepare", "g2net", str(g2), "--workers", "1", "--part-size", "4"]
    assert main(["-q", *args, "--out", str(ref)]) == 0
    out = tmp_path / "out.h5"
    interrupt_after(monkeypatch, 1)
    assert main([*args, "--out", str(out)]) == 130
    assert not out.exists() and (tmp_path / "out.h5.parts" / "whitener.npz").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main([*args, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "4 of 12 samples already done" in err and "whitening PSD taken from the interrupted run" in err
    assert out.read_bytes() == ref.read_bytes()
    rejects = read_csv(tmp_path / "out.rejects.csv")
    assert [Path(r["input"]).name for r in rejects] == ["0000000005.npy"] and "shape" in rejects[0]["reason"]
    assert (tmp_path / "out.rejects.csv").read_bytes() == (tmp_path / "ref.rejects.csv").read_bytes()
    from astrocnn.gw.dataset import StrainSet

    assert len(StrainSet(out)) == 11 and not (tmp_path / "out.h5.parts").exists()
    # up to date: nothing to do
    assert main([*args, "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().err
    # --on-error fail: the bad sample stops it, naming the file
    assert main([*args, "--out", str(tmp_path / "f.h5"), "--on-error", "fail"]) == 2
    line = last_error_line(capsys.readouterr().err)
    assert "0000000005.npy: strain has shape (2, 4096)" in line and not (tmp_path / "f.h5").exists()


# ------------------------------------------------------------------------------------------------
# B. predict --on-error skip|fail
# ------------------------------------------------------------------------------------------------

TINY_SPECTRA_MODEL = {"kernels": [50, 20, 5], "channels": [4, 8, 8], "pools": [4, 4, 2], "dense": [32]}
TINY_DETECT_MODEL = {"kernels": [32, 16, 8], "channels": [8, 8, 16], "pools": [4, 4, 4], "dense": [16],
                     "norm": "group"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An untrained classify run and an untrained detect run, written as training writes them."""
    import torch

    from astrocnn.core.config import default_config
    from astrocnn.gw.whitening import GwPreprocess, Whitener
    from astrocnn.spectra.grid import PAPER_GRID
    from astrocnn.spectra.preprocess import PreprocessConfig
    from astrocnn.train import build_network, save_weights

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("runs")
    cfg = default_config("classify", model=TINY_SPECTRA_MODEL)
    cfg.input = {"grid": json.loads(PAPER_GRID.to_json()), "length": PAPER_GRID.n,
                 "preprocess": asdict(PreprocessConfig()), "class_names": ["qso", "galaxy", "star"]}
    cfg.model.length = PAPER_GRID.n
    save_weights(build_network(cfg), cfg, d / "classify" / "best.safetensors")

    w = Whitener().partial_fit(np.random.default_rng(1).standard_normal((4, 3, 4096)))
    cfg = default_config("detect", model=TINY_DETECT_MODEL)
    cfg.input = {"kind": "strain", "length": 4096, "sample_rate": 2048.0, "detectors": ["H1", "L1", "V1"],
                 "preprocessing": GwPreprocess(w, "channel").config(), "whitening_n_fit": 4, "whitening_fit": "test"}
    save_weights(build_network(cfg), cfg, d / "detect" / "best.safetensors",
                 preprocess={"whitening_psd": w.psd.numpy()})
    yield d
    torch.set_num_threads(threads)


def test_predict_spectra_on_error_skip_and_fail(runs, tmp_path, capsys):
    good = [TEST_DATA / "sdss" / "spec-7001-57001-0101.fits", TEST_DATA / "sdss" / "spec-0500-51990-0201.fits.gz"]
    bad = BAD / "bad-truncated.fits"
    inputs = [str(good[0]), str(bad), str(tmp_path / "missing.fits"), str(good[1])]
    out = tmp_path / "pred.csv"
    run = str(runs / "classify")
    assert main(["-q", "predict", run, *inputs, "--out", str(out), "--workers", "1"]) == 0
    rows = read_csv(out)
    assert [bool(r["error"]) for r in rows] == [False, True, True, False]
    assert rows[1]["error"].startswith("truncated") and rows[2]["error"] == "no such file or folder"
    assert "2 predictions, 2 inputs could not be used" in capsys.readouterr().out
    # fail: the first bad input stops it, one line naming the file; the earlier predictions file is untouched
    before = sha(out)
    assert main(["-q", "predict", run, *inputs, "--out", str(out), "--on-error", "fail", "--workers", "1"]) == 2
    line = last_error_line(capsys.readouterr().err)
    assert line.startswith("astrocnn: error: ") and f"{bad}: truncated" in line
    assert sha(out) == before and leftovers(tmp_path) == []
    fresh = tmp_path / "fresh.csv"
    assert main(["-q", "predict", run, str(tmp_path / "missing.fits"), "--out", str(fresh), "--on-error", "fail"]) == 2
    assert "missing.fits: no such file or folder" in last_error_line(capsys.readouterr().err)
    assert not fresh.exists() and leftovers(tmp_path) == []
    # a prepared set the run cannot read (strain, not spectra) is refused the same way
    g2 = _g2net_folder(tmp_path / "g2", n=4)
    assert main(["-q", "prepare", "g2net", str(g2), "--out", str(tmp_path / "strain.h5")]) == 0
    assert main(["-q", "predict", run, str(tmp_path / "strain.h5"), "--out", str(fresh), "--on-error", "fail"]) == 2
    assert "strain.h5: a prepared strain set; the model was trained on spectra" in last_error_line(capsys.readouterr().err)
    assert not fresh.exists()


def test_predict_g2net_folder_on_error_skip_and_fail(runs, tmp_path, capsys):
    g2 = _g2net_folder(tmp_path / "g2", n=6, bad=(2,))
    out = tmp_path / "scores.csv"
    run = str(runs / "detect")
    # six samples: too few for a PSD of their own (at least 64), so the run's training PSD whitens them
    assert main(["-q", "predict", run, str(g2), "--out", str(out), "--psd", "training"]) == 0
    rows = read_csv(out)
    assert len(rows) == 6 and [bool(r["error"]) for r in rows] == [False, False, True, False, False, False]
    assert rows[2]["id"] == "0000000002" and rows[2]["source"].endswith("0000000002.npy")
    assert "shape (2, 4096)" in rows[2]["error"] and rows[2]["score"] == ""
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows if not r["error"])
    assert main(["-q", "predict", run, str(g2), "--out", str(tmp_path / "f.csv"), "--on-error", "fail",
                 "--psd", "training"]) == 2
    line = last_error_line(capsys.readouterr().err)
    assert "0000000002.npy: strain has shape (2, 4096)" in line and not (tmp_path / "f.csv").exists()


# ------------------------------------------------------------------------------------------------
# C. real write failures: file-size limit (EFBIG), full disk (ENOSPC), read-only (EROFS), no permission
# ------------------------------------------------------------------------------------------------

def _assert_clean_failure(err: str, name: str, problem: str) -> str:
    line = last_error_line(err)
    assert line.startswith("astrocnn: error: ") and name in line and problem in line, line
    return line


def test_prepare_sdss_file_too_large_keeps_old_output_and_resumes(survey, tmp_path, capsys):
    out = tmp_path / "out.h5"
    assert main(["-q", *prepare_args(survey, out)]) == 0
    old = sha(out), sha(tmp_path / "out.rejects.csv")
    # new settings; the parts (at most ~160 kB each) fit under 400 kB, the merged set (~660 kB) does not
    with file_size_limit(400_000):
        code = main(["-q", *prepare_args(survey, out, "--min-coverage", "0.4")])
    assert code == 2
    err = capsys.readouterr().err
    _assert_clean_failure(err, "out.h5: could not be written", "file too large")
    # the old set and its rejects list are untouched, no temporary file is left, the finished parts are kept
    assert (sha(out), sha(tmp_path / "out.rejects.csv")) == old and leftovers(tmp_path) == []
    assert "6 of 6 parts (22 of 22 spectrum files) are done and kept in" in err
    # room again: the same command finishes from the parts without preparing anything again, and writes
    # what an uninterrupted run writes
    assert main(prepare_args(survey, out, "--min-coverage", "0.4")) == 0
    assert "22 of 22 spectrum files already done" in capsys.readouterr().err
    assert not (tmp_path / "out.h5.parts").exists() and leftovers(tmp_path) == []
    ref = tmp_path / "ref" / "ref.h5"
    assert main(["-q", *prepare_args(survey, ref, "--min-coverage", "0.4")]) == 0
    assert out.read_bytes() == ref.read_bytes() != (survey / "ref" / "ref.h5").read_bytes()


def test_prepare_sdss_first_part_too_large_leaves_nothing(survey, tmp_path, capsys):
    out = tmp_path / "new.h5"
    # only the good spectra: inputs are taken in path order, and a first part made only of rejected files
    # (where the bad fixtures sort first, as in a clone under /tmp) would be small enough to be written
    args = ["prepare", "sdss", str(survey / "sdss"), "--out", str(out), "--workers", "1", "--part-size", "4"]
    with file_size_limit(30_000):
        assert main(["-q", *args]) == 2
    line = _assert_clean_failure(capsys.readouterr().err, "new.h5: could not be written", "file too large")
    assert "part-00000.h5" in line
    assert list(tmp_path.iterdir()) == []


def test_prepare_g2net_file_too_large(tmp_path, capsys):
    g2 = _g2net_folder(tmp_path / "g2", n=4)
    out = tmp_path / "out.h5"
    with file_size_limit(100_000):
        assert main(["-q", "prepare", "g2net", str(g2), "--out", str(out), "--workers", "1"]) == 2
    _assert_clean_failure(capsys.readouterr().err, "out.h5: could not be written", "file too large")
    # the fitted whitening spectrum (done work) is kept for the next run; nothing looks finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g2", "out.h5.parts"] and leftovers(tmp_path) == []
    assert sorted(p.name for p in (tmp_path / "out.h5.parts").iterdir()) == [".lock", "manifest.json", "whitener.npz"]


def test_predict_csv_file_too_large_keeps_old_predictions(runs, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    out.write_text("id,source,class,p_qso,p_galaxy,p_star,error\nold,old,qso,1,0,0,\n")
    before = sha(out)
    spec = str(TEST_DATA / "sdss" / "spec-7001-57001-0101.fits")
    with file_size_limit(100):
        assert main(["-q", "predict", str(runs / "classify"), spec, spec, "--out", str(out), "--workers", "1"]) == 2
    _assert_clean_failure(capsys.readouterr().err, "pred.csv: could not be written", "file too large")
    assert sha(out) == before and leftovers(tmp_path) == []


def test_training_outputs_file_too_large(runs, tmp_path):
    """The writes training makes through astrocnn.core.io (weights, metrics, history, config) fail cleanly."""
    from astrocnn.core.config import RunConfig
    from astrocnn.core.io import write_text_atomic
    from astrocnn.train import load_run, save_weights

    network, _, config = load_run(runs / "classify")
    run = tmp_path / "run"
    save_weights(network, config, run / "best.safetensors")
    write_text_atomic(run / "metrics.json", "{}\n")
    config.save(run / "config.yaml")
    before = {p.name: sha(p) for p in run.iterdir()}
    with file_size_limit(4096):
        with pytest.raises(OutputError, match=r"best\.safetensors: could not be written \(file too large") as info:
            save_weights(network, config, run / "best.safetensors")
        assert "\n" not in str(info.value)
        with pytest.raises(OutputError, match=r"metrics\.json: could not be written \(file too large"):
            write_text_atomic(run / "metrics.json", json.dumps({"x": "y" * 10_000}))
        with pytest.raises(OutputError, match=r"config\.yaml: could not be written \(file too large"):
            RunConfig.from_dict({**config.to_dict(), "version": "v" * 10_000}).save(run / "config.yaml")
    assert {p.name: sha(p) for p in run.iterdir()} == before and leftovers(tmp_path) == []


CLI = "import sys; from astrocnn.apps.cli import main; sys.exit(main(sys.argv[1:]))"


def test_prepare_sdss_in_a_real_process_under_a_file_size_limit(survey, tmp_path):
    """The whole command in its own process: exit status 2 and one line, not a crash. (HDF5 itself crashes
    the process with SIGSEGV after a failed write; astrocnn never lets a write error reach it.)"""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    out = tmp_path / "out.h5"
    r = subprocess.run([sys.executable, "-c", CLI, "-q", *prepare_args(survey, out)], preexec_fn=limit,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    _assert_clean_failure(r.stderr, "out.h5", "file too large")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5.parts"]  # the finished parts, to resume
    assert leftovers(tmp_path) == []


NAMESPACE_DRIVER = r"""
import contextlib, hashlib, io, json, os, shutil, sys
from pathlib import Path
from astrocnn.apps.cli import main

full, ro, survey, bad, ref = map(Path, sys.argv[1:6])
result = {}

def run(args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()

def listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))

args = lambda out: ["prepare", "sdss", str(survey), str(bad), "--out", str(out), "--workers", "1",
                    "--part-size", "4"]
# a full disk: the old set is kept, the parts too; free the space and the same command finishes
shutil.copy(ref, full / "out.h5")
old = hashlib.sha256((full / "out.h5").read_bytes()).hexdigest()
code, err = run(args(full / "out.h5") + ["--min-coverage", "0.4"])
result["enospc"] = {"code": code, "err": err, "listing": listing(full),
                    "old_kept": hashlib.sha256((full / "out.h5").read_bytes()).hexdigest() == old}
(full / "out.h5").unlink()
code, err = run(args(full / "out.h5") + ["--min-coverage", "0.4"])
result["after_freeing"] = {"code": code, "listing": listing(full), "resumed": "22 of 22 spectrum files already done" in err,
                           "sha": hashlib.sha256((full / "out.h5").read_bytes()).hexdigest()}
# a read-only file system
code, err = run(args(ro / "out.h5"))
result["erofs"] = {"code": code, "err": err, "listing": listing(ro)}
print("RESULT " + json.dumps(result))
"""


def _namespace_prefix(probe_dir: Path) -> list[str] | None:
    """A command prefix running in a private mount namespace where tmpfs can be mounted, or None."""
    if not shutil.which("unshare") or sys.platform != "linux":
        return None
    for prefix in (["unshare", "-Urm"], ["unshare", "-m"]):
        try:
            r = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=64k none {probe_dir}"],
                               capture_output=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return prefix
    return None


def test_prepare_sdss_on_a_full_disk_and_a_read_only_file_system(survey, tmp_path):
    """A real ENOSPC (a tmpfs of 2.3 times the old set it holds: room for the parts, not for the merged new
    set beside them) and a real EROFS (a read-only tmpfs), in a
    private mount namespace; skipped where tmpfs cannot be mounted (no user namespaces)."""
    full, ro = tmp_path / "full", tmp_path / "ro"
    full.mkdir()
    ro.mkdir()
    prefix = _namespace_prefix(full)
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (no unprivileged user/mount namespaces)")
    size = int(2.3 * (survey / "ref" / "ref.h5").stat().st_size)
    script = (f"mount -t tmpfs -o size={size} none {full} && mount -t tmpfs -o ro,size=64k none {ro} && "
              f'exec {sys.executable} -c "$0" "$@"')
    r = subprocess.run([*prefix, "sh", "-c", script, NAMESPACE_DRIVER, str(full), str(ro), str(survey / "sdss"),
                        str(BAD), str(survey / "ref" / "ref.h5")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    result = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    e = result["enospc"]
    assert e["code"] == 2 and e["old_kept"]
    _assert_clean_failure(e["err"], "out.h5: could not be written", "no space left on device")
    assert not [p for p in e["listing"] if p.endswith(".partial")]
    assert "out.h5" in e["listing"] and "out.h5.parts/part-00005.h5" in e["listing"]
    # space freed: the same command finishes from the parts, with the bytes of an uninterrupted run
    ref = tmp_path / "ref.h5"
    assert main(["-q", *prepare_args(survey, ref, "--min-coverage", "0.4")]) == 0
    done = result["after_freeing"]
    assert done["code"] == 0 and done["listing"] == ["out.h5", "out.rejects.csv"] and done["resumed"]
    assert done["sha"] == sha(ref)
    e = result["erofs"]
    assert e["code"] == 2 and e["listing"] == []
    _assert_clean_failure(e["err"], "out.h5: cannot write here", "read-only file system")


def _writes_are_refused(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("x")
    except OSError:
        return True
    (folder / ".probe").unlink()
    return False


def test_output_under_a_regular_file_for_prepare_g2net_and_predict(runs, tmp_path, capsys):
    """(prepare sdss and the writers themselves: tests/test_robustness.py)"""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    spec = str(TEST_DATA / "sdss" / "spec-7001-57001-0101.fits")
    g2 = _g2net_folder(tmp_path / "g2", n=4)
    cases = [
        (["prepare", "g2net", str(g2), "--out", str(blocker / "g.h5")], "g.h5"),
        (["predict", str(runs / "classify"), spec, "--out", str(blocker / "p.csv"), "--workers", "1"], "p.csv"),
    ]
    for args, name in cases:
        assert main(["-q", *args]) == 2
        _assert_clean_failure(capsys.readouterr().err, name, "a path component is a file, not a folder")
    assert blocker.read_text() == "x"


def test_folder_without_write_permission(survey, runs, tmp_path, capsys):
    """chmod 0o500: skipped where permission bits do not stop this user (root); the read-only file
    system case above covers an unwritable folder for everyone who can mount a tmpfs."""
    spec = str(TEST_DATA / "sdss" / "spec-7001-57001-0101.fits")
    g2 = _g2net_folder(tmp_path / "g2", n=4)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not _writes_are_refused(locked):
            pytest.skip("permission bits do not stop this user's writes (root?)")
        for args, name in [
            (prepare_args(survey, locked / "s.h5"), "s.h5"),
            (["prepare", "g2net", str(g2), "--out", str(locked / "g.h5")], "g.h5"),
            (["predict", str(runs / "classify"), spec, "--out", str(locked / "p.csv"), "--workers", "1"], "p.csv"),
        ]:
            assert main(["-q", *args]) == 2
            _assert_clean_failure(capsys.readouterr().err, name, "permission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_hdf5_writers_fail_cleanly_wherever_the_file_size_limit_falls(tmp_path):
    """A write failure at 60 different points of an HDF5 file (superblock, metadata, chunks, string heaps,
    close): always OutputError naming the file, never a crash, never a temporary file left; with room
    enough, a complete file."""
    from astrocnn.spectra.grid import LogLambdaGrid
    from astrocnn.spectra.preprocess import Prepared
    from astrocnn.spectra.dataset import SpectraSet, SpectraWriter

    grid = LogLambdaGrid(4000.0, 4400.0, 300)
    rng = np.random.default_rng(0)
    rows = [Prepared(flux=rng.normal(size=300).astype(np.float32), ivar=np.ones(300, np.float32), coverage=1.0,
                     snr=1.0, mean=0.0, std=1.0) for _ in range(60)]
    limits = [*range(0, 150_000, 3001), *range(150_000, 1_000_000, 90_001)]
    outcomes = {"written": 0, "refused": 0}
    for limit in limits:
        out = tmp_path / "x.h5"
        try:
            with file_size_limit(limit):
                with SpectraWriter(out, grid, chunk_rows=16, truth_columns={"note": "U", "v": "f"}) as w:
                    for i, p in enumerate(rows):
                        w.append(p, id=f"obj-{i}-" + "x" * (i % 40), z=0.1, cls="qso", truth={"note": "n" * i, "v": i})
        except OutputError as exc:
            assert re.fullmatch(rf"{re.escape(str(out))}: could not be written \(file too large[^\n]*\)", str(exc))
            assert not out.exists()
            outcomes["refused"] += 1
        else:
            assert len(SpectraSet(out)) == 60
            out.unlink()
            outcomes["written"] += 1
        assert leftovers(tmp_path) == []
    assert len(limits) == 60 and outcomes["refused"] > 40 and outcomes["written"] > 5, outcomes
