"""A small seeded train-and-predict run whose outputs are committed as a reference (tests/data/reference.json).

The house refactor (issue 9) moved code between modules; this run pins what the code computes, so a move that
changes a single bit of a weight, a loss, a score or a prediction shows up in ``tests/test_reference.py``.
It covers the three tasks end to end through the public API: simulate, prepare (the G2Net folder), train,
evaluate and predict (SDSS files, a prepared set, a G2Net folder).

    python tests/reference_run.py --write       # regenerate the reference (only when a change is meant)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "data" / "reference.json"
SDSS_FIXTURES = HERE / "data" / "sdss"


def machine() -> dict[str, str]:
    """What bit-identity depends on: torch's build and the CPU kernels it dispatches to."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "cpu": _cpu_model()}


def _cpu_model() -> str:
    """The processor's model name: two CPUs with the same instruction set can still round differently (the
    same reference, made on one EPYC, differs from another AVX-512 machine in the 6th digit of its losses)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _tensors(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return {k: hashlib.sha256(f.get_tensor(k).numpy().tobytes()).hexdigest()[:16] for k in sorted(f.keys())}


def _history(run: Path) -> list[dict[str, str]]:
    lines = (run / "history.csv").read_text().splitlines()
    head = lines[0].split(",")
    keep = [i for i, k in enumerate(head) if k != "time_s"]  # wall time is not computed, it is measured
    return [{head[i]: row.split(",")[i] for i in keep} for row in lines[1:]]


def _csv_rows(path: Path, root: Path) -> list[str]:
    return [line.replace(str(root), "ROOT").replace(str(SDSS_FIXTURES), "FIXTURES")
            for line in path.read_text().splitlines()]


def _config(task: str, **train):
    from astrocnn.core.config import default_config

    settings = {"max_epochs": 2, "threads": 1, "batch_size": 32, "progress_bar": False, "seed": 3, **train}
    return default_config(task, train=settings, data={"num_workers": 0})


def _spectra_runs(root: Path) -> dict:
    from astrocnn.apps.predict import predict_inputs
    from astrocnn.spectra.prepare import simulate_prepared
    from astrocnn.train import evaluate, train

    simulate_prepared(400, 5, root / "survey.h5", workers=1)
    out = {}
    for task in ("redshift", "classify"):
        run = root / task
        result = train(task, root / "survey.h5", run, _config(task))
        evaluate(run, root / "survey.h5", root / f"{task}-eval", metrics_name="metrics.json")
        predict_inputs(run, [SDSS_FIXTURES, root / "survey.h5"], root / f"{task}.csv", workers=1)
        out[task] = {
            "weights": _tensors(run / "best.safetensors"),
            "history": _history(run),
            "test": json.loads((run / "metrics.json").read_text())["test"],
            "evaluate": json.loads((root / f"{task}-eval" / "metrics.json").read_text())["metrics"],
            "predictions": _csv_rows(root / f"{task}.csv", root),
            "best_epoch": result.best_epoch,
        }
    return out


def _detect_run(root: Path) -> dict:
    from astrocnn.gw.simulate import simulate_g2net
    from astrocnn.gw.prepare import prepare_g2net
    from astrocnn.apps.predict import predict_inputs
    from astrocnn.train import train

    simulate_g2net(96, 7, root / "gw", workers=1)
    prepare_g2net(root / "gw", root / "gw.h5", workers=1)
    run = root / "detect"
    train("detect", root / "gw.h5", run, _config("detect", batch_size=16))
    predict_inputs(run, [root / "gw"], root / "detect.csv")
    return {"weights": _tensors(run / "best.safetensors"), "history": _history(run),
            "test": json.loads((run / "metrics.json").read_text())["test"],
            "predictions": _csv_rows(root / "detect.csv", root)}


def reference_outputs(root: Path, gw: bool = True) -> dict:
    """Run everything under ``root`` and return what it computed (JSON-ready)."""
    torch.set_num_threads(1)
    out = {"machine": machine(), **_spectra_runs(root)}
    if gw:
        out["detect"] = _detect_run(root)
    return json.loads(json.dumps(out, default=float))  # the form it has once read back from the file


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"write {REFERENCE}")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = reference_outputs(Path(tmp))
    text = json.dumps(out, indent=1, sort_keys=True) + "\n"
    if args.write:
        REFERENCE.write_text(text)
        print(f"wrote {REFERENCE}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
