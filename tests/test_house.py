"""House rules that protect users: no silent overwrite of a run or of someone's folder, one-line errors for a
missing optional dependency, small files for small sets, and the package docstring's examples running."""
from __future__ import annotations

import doctest
import hashlib
import importlib.abc
import sys
from pathlib import Path

import numpy as np
import pytest

import astrocnn
from astrocnn.apps.cli import main
from astrocnn.core.errors import MissingDependency
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter
from astrocnn.spectra.grid import PAPER_GRID
from astrocnn.spectra.preprocess import Prepared

from test_train import make_set, tiny_config


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("house")
    return make_set(root / "tiny.h5", n=120)


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    config = out.parent / "tiny.yaml"
    config.write_text(tiny_config("redshift", max_epochs=1).to_yaml())
    return ["-q", "train", "redshift", "--data", str(data), "--out", str(out), "--config", str(config), *extra]


def test_train_refuses_an_earlier_runs_folder_and_force_replaces_it(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(tiny, run)) == 0
    (run / "notes.txt").write_text("mine")  # a user's own file in the folder
    before = _hashes(run)
    capsys.readouterr()
    assert main(_train_args(tiny, run, "--seed", "5")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a finished run" in err[0] and "--force" in err[0] and "--resume" in err[0]
    assert _hashes(run) == before  # every earlier file byte-identical
    assert main(_train_args(tiny, run, "--resume", "--force")) == 2
    assert _hashes(run) == before

    # a partial run (killed before it finished: no metrics.json) is refused too
    (run / "metrics.json").unlink()
    partial = _hashes(run)
    assert main(_train_args(tiny, run, "--seed", "5")) == 2
    assert "holds a partial run" in capsys.readouterr().err
    assert _hashes(run) == partial

    assert main(_train_args(tiny, run, "--seed", "5", "--force")) == 0
    after = _hashes(run)
    assert after["notes.txt"] == before["notes.txt"]  # not a run file: left alone
    assert after["best.safetensors"] != before["best.safetensors"] and "metrics.json" in after


def test_prepare_leaves_a_work_folder_it_did_not_make(tmp_path, test_data, capsys):
    out = tmp_path / "out.h5"
    foreign = tmp_path / "out.h5.parts"
    foreign.mkdir()
    (foreign / "part-00000.h5").write_bytes(b"someone's file")
    (foreign / "results.txt").write_text("also theirs")
    before = _hashes(foreign)
    args = ["-q", "prepare", "sdss", str(test_data / "sdss"), "--out", str(out), "--workers", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out.h5.parts holds files astrocnn did not make" in err[0]
    assert _hashes(foreign) == before and not out.exists()
    for p in foreign.iterdir():
        p.unlink()
    assert main(args) == 0 and out.exists() and not foreign.exists()  # an empty folder is fair to use


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    class NoLalsuite(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("lal", "lalsimulation"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    for mod in [m for m in sys.modules if m.split(".")[0] in ("lal", "lalsimulation")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(sys, "meta_path", [NoLalsuite(), *sys.meta_path])
    assert main(["-q", "simulate", "gw", "--n", "4", "--out", str(tmp_path / "g"), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["astrocnn: error: simulating gravitational-wave strain needs lal, which is not installed: "
                   "pip install 'astrocnn[gw]'"]
    from astrocnn.gw.simulate import noise_psd

    with pytest.raises(MissingDependency, match=r"astrocnn\[gw\]"):
        noise_psd("H1")


def test_a_small_set_takes_little_space(tmp_path):
    rng = np.random.default_rng(0)
    with SpectraWriter(tmp_path / "two.h5", PAPER_GRID, expected_rows=2) as w:
        for i in range(2):
            w.append(Prepared(rng.normal(size=PAPER_GRID.n).astype(np.float32), np.ones(PAPER_GRID.n, np.float32),
                              1.0, 5.0, 0.0, 1.0), id=f"s{i}", z=1.0, cls="qso")
    size = (tmp_path / "two.h5").stat().st_size
    # the data: 2 spectra x 4618 pixels x (flux + ivar) x 4 bytes = 74 kB; whole 256-row chunks made 9.6 MB
    assert size < 300_000, size
    with SpectraSet(tmp_path / "two.h5") as s:
        assert len(s) == 2 and np.array_equal(s.read([1])["ivar"], np.ones((1, PAPER_GRID.n), np.float32))


def test_the_package_docstring_examples_run():
    result = doctest.testmod(astrocnn, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 10 and result.failed == 0
