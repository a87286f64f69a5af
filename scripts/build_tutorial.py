"""Build the tutorial: jupytext sources -> executed ``.ipynb`` notebooks without volatile metadata.

The percent-format ``.py`` files in ``docs/tutorial`` (and ``docs/tutorial/solutions``) are the source of truth.
Each becomes its paired ``.ipynb`` beside it: the same cells, executed top to bottom in a fresh kernel (with this
repository's ``src`` first on the kernel's path), outputs kept so the notebook reads on the web, and nothing in it
that changes from one run or machine to the next but the results themselves (no timestamps, no kernel or
Python versions, cell ids numbered in order). The notebooks write the paper's figures to ``docs/figures``.

    python scripts/build_tutorial.py                          # all notebooks, full mode (make tutorial)
    ASTROCNN_TUTORIAL_QUICK=1 python scripts/build_tutorial.py    # quick mode: small data, few epochs
    python scripts/build_tutorial.py --only 01 02_redshifts   # 01 and its solutions; 02 alone
    python scripts/build_tutorial.py --no-execute             # pair only: the .ipynb without outputs
    python scripts/build_tutorial.py --keep-outputs           # prose edits only: re-pair, keep the outputs
    python scripts/build_tutorial.py --check                  # pairs in sync, metadata clean, sizes (no run)

Environment the notebooks read: ``ASTROCNN_TUTORIAL_QUICK`` (1 = quick mode), ``ASTROCNN_TUTORIAL_THREADS``
(torch threads for training), ``ASTROCNN_DATA`` (the real sample files, ``sdss/``, ``gwosc/`` and ``g2net/``; default
``../shared/data`` beside the repository; absent = simulated stand-ins), ``ASTROCNN_FIGURES`` (default ``docs/figures``),
``ASTROCNN_TUTORIAL_WORK`` (scratch folder; default a new temporary folder). The tests (``tests/test_tutorial.py``) use the functions here.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
TUTORIAL = REPO / "docs" / "tutorial"
FIGURES = REPO / "docs" / "figures"
#: a committed notebook must stay below this size (outputs included)
MAX_BYTES = 2_000_000
#: the paper's figures and the notebook that draws each
PAPER_FIGURES = {
    "fig2_gradient_descent.png": "01_basics",
    "fig3_training.png": "01_basics",
    "fig4_quasar_spectra.png": "02_redshifts",
    "fig5_network.png": "02_redshifts",
    "fig6_gw_strain.png": "04_gravitational_waves",
}
#: notebook-level metadata a committed notebook may carry, and cell-level
NOTEBOOK_METADATA = {"kernelspec", "language_info", "jupytext"}
CELL_METADATA = {"tags"}
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
CELL_ID = re.compile(r"^cell-\d+$")
#: output types that hold widget state or change on every run
VOLATILE_MIME = ("application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json")
#: per cell; a full-mode training cell takes a few minutes
CELL_TIMEOUT_S = 1800


def sources(only: list[str] | None = None) -> list[Path]:
    """The tutorial's jupytext sources: the notebooks, then their solutions, in name order."""
    found = sorted(TUTORIAL.glob("[0-9][0-9]_*.py")) + sorted((TUTORIAL / "solutions").glob("[0-9][0-9]_*.py"))
    if only:  # a whole name ("01_basics", "01_basics_solutions") or a number ("01": the notebook and its solutions)
        found = [p for p in found if any(p.stem == o or p.stem.split("_")[0] == o for o in only)]
    return found


def paired(py: Path) -> Path:
    return py.with_suffix(".ipynb")


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop what changes between runs and machines; number the cell ids in order. In place; returns ``nb``."""
    formats = nb.metadata.get("jupytext", {}).get("formats", "ipynb,py:percent")
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"},
                                      "jupytext": {"formats": formats}})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"
        cell.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in CELL_METADATA})
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        outputs = []
        for out in cell.get("outputs", []):
            out.pop("transient", None)
            data = out.get("data")
            if data is not None:
                for mime in VOLATILE_MIME:
                    data.pop(mime, None)
                if not data:
                    continue
            outputs.append(out)
        cell.outputs = outputs
    return nb


def read_source(py: Path) -> nbformat.NotebookNode:
    """The notebook a jupytext source describes, cleaned (no outputs)."""
    return clean(jupytext.read(py, fmt="py:percent"))


def kernel_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a notebook kernel starts with: this repository's ``src`` first on the path (the
    notebooks then use this checkout's astrocnn whatever is installed), and no inherited ``MPLBACKEND`` (the
    kernel's own inline backend shows the figures)."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.update(extra or {})
    return env


def execute(nb: nbformat.NotebookNode, cwd: Path, env: dict[str, str] | None = None,
            timeout: int = CELL_TIMEOUT_S) -> nbformat.NotebookNode:
    """Run every cell in a fresh ``python3`` kernel started in ``cwd``; raises ``CellExecutionError`` on the first
    cell that fails. Returns the notebook with its outputs, cleaned."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(cwd)}})
    client.execute(env=kernel_env(env), cwd=str(cwd))
    return clean(nb)


def write(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write a notebook (validated), atomically."""
    nbformat.validate(nb)
    tmp = path.with_name(f".{path.name}.partial")
    nbformat.write(nb, str(tmp))
    tmp.replace(path)


def cell_sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def problems(ipynb: Path) -> list[str]:
    """What is wrong with a committed notebook: out of sync with its source, volatile metadata, too large."""
    found = []
    py = ipynb.with_suffix(".py")
    if not py.exists():
        return [f"{ipynb.name}: no paired {py.name}"]
    nb = nbformat.read(str(ipynb), as_version=4)
    if cell_sources(nb) != cell_sources(read_source(py)):
        found.append(f"{ipynb.name}: cells differ from {py.name} (run scripts/build_tutorial.py)")
    extra = set(nb.metadata) - NOTEBOOK_METADATA
    if extra:
        found.append(f"{ipynb.name}: notebook metadata {sorted(extra)}")
    if nb.metadata.get("language_info", {}) != {"name": "python"}:
        found.append(f"{ipynb.name}: language_info carries more than the language (versions)")
    if nb.metadata.get("kernelspec") != KERNELSPEC:
        found.append(f"{ipynb.name}: kernelspec {nb.metadata.get('kernelspec')} (expected the generic python3)")
    for i, cell in enumerate(nb.cells):
        if not CELL_ID.match(cell.get("id", "")) or cell.id != f"cell-{i}":
            found.append(f"{ipynb.name}: cell {i} has id {cell.get('id')!r}")
        extra = set(cell.metadata) - CELL_METADATA
        if extra:
            found.append(f"{ipynb.name}: cell {i} metadata {sorted(extra)}")
        for out in cell.get("outputs", []):
            if "transient" in out or any(m in out.get("data", {}) for m in VOLATILE_MIME):
                found.append(f"{ipynb.name}: cell {i} has widget or transient output")
    size = ipynb.stat().st_size
    if size > MAX_BYTES:
        found.append(f"{ipynb.name}: {size:,d} bytes (limit {MAX_BYTES:,d})")
    return found


def keep_outputs(nb: nbformat.NotebookNode, executed: Path) -> nbformat.NotebookNode:
    """``nb`` with the outputs of the executed notebook ``executed``, whose code cells must be the same (only
    Markdown cells may differ). Raises ``ValueError`` otherwise: changed code has to be run."""
    old = nbformat.read(str(executed), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    old_code = [c for c in old.cells if c.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in old_code]:
        raise ValueError(f"{executed.name}: the code cells changed; run the notebook instead of keeping its outputs")
    for new, before in zip(code, old_code):
        new.outputs, new.execution_count = before.outputs, before.execution_count
    return clean(nb)


def build(py: Path, run: bool = True, env: dict[str, str] | None = None, keep: bool = False) -> float:
    """Make ``py``'s paired notebook: executed, or without outputs (``run`` false), or with the outputs of the
    committed notebook when only its prose changed (``keep``). Returns the seconds it took."""
    t0 = time.time()
    nb = read_source(py)
    if keep:
        nb = keep_outputs(nb, paired(py))
    elif run:
        nb = execute(nb, py.parent, env)
    write(nb, paired(py))
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="notebook names, or numbers (a notebook and its solutions)")
    ap.add_argument("--no-execute", action="store_true", help="pair only, without running")
    ap.add_argument("--keep-outputs", action="store_true",
                    help="only Markdown changed: re-pair and keep the committed outputs (refused if code changed)")
    ap.add_argument("--check", action="store_true", help="check the committed notebooks; run nothing")
    args = ap.parse_args(argv)
    todo = sources(args.only)
    if args.check:
        bad = [p for py in todo for p in (problems(paired(py)) if paired(py).exists() else [f"{paired(py).name}: missing"])]
        print("\n".join(bad) or f"{len(todo)} notebooks in sync and clean")
        return 1 if bad else 0
    quick = os.environ.get("ASTROCNN_TUTORIAL_QUICK", "") not in ("", "0")
    if args.keep_outputs:
        for py in todo:
            build(py, keep=True)
            print(f"{paired(py).relative_to(REPO)}: re-paired, outputs kept")
        return 0
    for py in todo:
        print(f"{py.relative_to(REPO)} ({'quick' if quick else 'full'} mode) ...", flush=True)
        seconds = build(py, run=not args.no_execute)
        print(f"  -> {paired(py).relative_to(REPO)} in {seconds:.0f} s, {paired(py).stat().st_size:,d} bytes", flush=True)
    if not args.no_execute and not args.only:
        names = {py.stem for py in todo}
        missing = [f for f, nb in PAPER_FIGURES.items() if nb in names and not (FIGURES / f).is_file()]
        if missing:
            print(f"figures not written: {missing}")
            return 1
        print("figures:", ", ".join(f for f, nb in PAPER_FIGURES.items() if nb in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
