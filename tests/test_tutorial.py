"""The tutorial notebooks (docs/tutorial): paired with their jupytext sources, committed clean, public API only,
exercises with solutions, and every notebook and solutions notebook runs top to bottom in quick mode, with the
real sample files present and absent where a notebook reads them.

The runs take ~30-60 s each on 2 cores (quick mode: a few hundred spectra or strain samples, two epochs); they
start a Jupyter kernel with this checkout's ``src`` on its path (``scripts/build_tutorial.py``).
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

from conftest import REPO_ROOT, SHARED_DATA  # noqa: E402

_spec = importlib.util.spec_from_file_location("build_tutorial", REPO_ROOT / "scripts" / "build_tutorial.py")
bt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bt)

SOURCES = bt.sources()
IDS = [p.stem for p in SOURCES]
#: notebooks that read the real sample files in ../shared/data (and fall back to simulated ones without them), each
#: with something it prints only when it read the real files (ids of real SDSS spectra, GPS starts of GWOSC files)
READS_REAL_DATA = {"02_redshifts": "6001-56072-0707", "03_classification": "7339-56747-0737",
                   "04_gravitational_waves": "1167559920", "04_gravitational_waves_solutions": "1128678884"}
#: the folders of ../shared/data a notebook reads (without them its real-data run is skipped); default sdss
REAL_DATA_FOLDERS = {"04_gravitational_waves": ("gwosc", "g2net"),
                     "04_gravitational_waves_solutions": ("gwosc", "g2net")}
#: how a notebook's visible notice that it uses simulated stand-ins for the real files begins
FALLBACK_NOTICE = "NOTE: the real"
#: the first decimal number (or nan) after "accuracy" on a printed line, e.g. "accuracy on 100 held-out spectra
#: (|dv| < 6000 km/s): 0.8500" or "test accuracy 0.187"; integers (counts, km/s) are skipped
ACCURACY = re.compile(r"accuracy\b[^\n]*?(?<![\w.])(-?\d+\.\d+|nan)(?![\w.])", re.IGNORECASE)
#: the same for a detector's ROC AUC: the first decimal number after "ROC AUC" on a printed line, e.g. "CNN ROC AUC
#: on 600 held-out samples: 0.835 [0.798, 0.864]"
ROC_AUC = re.compile(r"ROC AUC\b[^\n]*?(?<![\w.])(-?\d+\.\d+|nan)(?![\w.])")


def test_the_tutorial_is_there():
    names = {p.stem for p in SOURCES}
    for n in ("01_basics", "02_redshifts", "03_classification", "04_gravitational_waves"):
        assert n in names and f"{n}_solutions" in names


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_committed_notebook_paired_and_clean(py):
    """Same cells as its source; no timestamps, versions, widget state or stray ids; under 2 MB."""
    ipynb = bt.paired(py)
    assert ipynb.exists(), f"{ipynb.name} is not committed: run scripts/build_tutorial.py"
    assert bt.problems(ipynb) == []
    nb = nbformat.read(str(ipynb), as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{ipynb.name} is committed without outputs"
    assert not any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", []))


def test_problems_are_found(tmp_path):
    """The check itself: a changed cell, volatile metadata and size are each reported."""
    py = tmp_path / "01_x.py"
    py.write_text("# %%\nprint(1)\n\n# %% [markdown]\n# text\n")
    nb = bt.read_source(py)
    bt.write(nb, bt.paired(py))
    assert bt.problems(bt.paired(py)) == []
    nb.cells[0].source = "print(2)"
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    nbformat.write(nb, str(bt.paired(py)))
    found = "\n".join(bt.problems(bt.paired(py)))
    for what in ("cells differ", "['widgets']", "language_info", "['execution']"):
        assert what in found


def test_prose_edits_keep_outputs_code_edits_do_not(tmp_path):
    py = tmp_path / "01_x.py"
    py.write_text("# %% [markdown]\n# before\n\n# %%\nprint(1)\n")
    nb = bt.read_source(py)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    bt.write(nb, bt.paired(py))
    py.write_text("# %% [markdown]\n# after\n\n# %%\nprint(1)\n")
    bt.build(py, keep=True)
    kept = nbformat.read(str(bt.paired(py)), as_version=4)
    assert kept.cells[0].source == "after" and kept.cells[1].outputs[0].text == "1\n"
    assert bt.problems(bt.paired(py)) == []
    py.write_text("# %% [markdown]\n# after\n\n# %%\nprint(2)\n")
    with pytest.raises(ValueError, match="code cells changed"):
        bt.build(py, keep=True)


def _code(py: Path) -> ast.Module:
    # jupytext keeps magics as comments in the .py source, so the code cells parse as one module
    return ast.parse(py.read_text(encoding="utf-8"))


@pytest.mark.parametrize("py", SOURCES, ids=IDS)
def test_notebooks_use_only_the_public_api(py):
    """No private astrocnn module or name is imported, no private attribute is used; every name imported exists."""
    private = []
    for node in ast.walk(_code(py)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("astrocnn"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                parts = node.module.split(".") + [alias.name]
                if any(p.startswith("_") and not p.startswith("__") for p in parts):
                    private.append(f"line {node.lineno}: from {node.module} import {alias.name}")
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), \
                    f"{py.name}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("astrocnn") and any(p.startswith("_") for p in alias.name.split(".")):
                    private.append(f"line {node.lineno}: import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            private.append(f"line {node.lineno}: .{node.attr}")
    assert not private, f"{py.name} uses private names:\n" + "\n".join(private)


@pytest.mark.parametrize("py", [p for p in SOURCES if not p.stem.endswith("_solutions")],
                         ids=[p.stem for p in SOURCES if not p.stem.endswith("_solutions")])
def test_every_notebook_ends_with_exercises_solved_apart(py):
    text = py.read_text(encoding="utf-8")
    assert "# ## Exercises" in text, f"{py.name} has no Exercises section"
    exercises = re.findall(r"^# (\d)\. \*\*", text.split("# ## Exercises", 1)[1], flags=re.M)
    assert 2 <= len(exercises) <= 3, f"{py.name}: {len(exercises)} exercises"
    solutions = py.parent / "solutions" / f"{py.stem}_solutions.py"
    assert solutions.exists(), f"no {solutions.name}"
    solved = re.findall(r"^# ## Exercise (\d)", solutions.read_text(encoding="utf-8"), flags=re.M)
    assert solved == exercises, f"{solutions.name} solves {solved}, the notebook sets {exercises}"


def _runs():
    for py in SOURCES:
        if py.stem in READS_REAL_DATA:
            yield pytest.param(py, True, id=f"{py.stem}-real-data", marks=pytest.mark.real_data)
            yield pytest.param(py, False, id=f"{py.stem}-no-data")
        else:
            yield pytest.param(py, False, id=py.stem)


def _stdout(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", [])
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.slow
@pytest.mark.parametrize("py,real", list(_runs()))
def test_runs_in_quick_mode(py, real, tmp_path):
    """Executes in a fresh kernel without error; writes its paper figures; prints accuracies in [0, 1]; says
    when it uses simulated stand-ins for the real files."""
    if py.stem.startswith("04") and importlib.util.find_spec("lal") is None:
        pytest.skip("notebook 4 simulates strain with lalsuite (astrocnn's gw extra), which is not installed")
    for folder in REAL_DATA_FOLDERS.get(py.stem, ("sdss",)) if real else ():
        if not (SHARED_DATA / folder).is_dir():
            pytest.skip(f"real data not available ({SHARED_DATA / folder} is absent)")
    figures, work = tmp_path / "figures", tmp_path / "work"
    env = {"ASTROCNN_TUTORIAL_QUICK": "1", "ASTROCNN_FIGURES": str(figures), "ASTROCNN_TUTORIAL_WORK": str(work),
           "ASTROCNN_DATA": str(SHARED_DATA if real else tmp_path / "no-data-here")}
    nb = bt.execute(bt.read_source(py), tmp_path, env, timeout=600)
    out = _stdout(nb)
    assert "quick mode" in out
    expected = [f for f, source in bt.PAPER_FIGURES.items() if source == py.stem]
    for name in expected:
        path = figures / name
        assert path.is_file() and path.stat().st_size > 10_000, f"{name} not written"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    values = [float(v) for v in ACCURACY.findall(out)]
    if py.stem.startswith(("01", "02", "03")) and "solutions" not in py.stem:
        assert values, "no accuracy printed"
    assert all(0.0 <= v <= 1.0 for v in values), f"accuracies outside [0, 1]: {values}"
    aucs = [float(v) for v in ROC_AUC.findall(out)]
    if py.stem == "04_gravitational_waves":
        assert aucs, "no ROC AUC printed"
    assert all(0.0 <= v <= 1.0 for v in aucs), f"ROC AUCs outside [0, 1]: {aucs}"
    if py.stem in READS_REAL_DATA:
        assert (FALLBACK_NOTICE in out) is (not real)
        assert (READS_REAL_DATA[py.stem] in out) is real
