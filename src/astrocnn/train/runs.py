"""The run folder: what a training run leaves on disk, and how it is read back without unpickling anything.

Trainer layer. A run folder holds ``config.yaml`` (the :class:`~astrocnn.core.config.RunConfig` that built it,
with the fitted task state and the input description), ``split.npz`` (row indices of the train/val/test
split), ``history.csv`` (one row per epoch), ``best.safetensors`` and ``last.safetensors`` (weights with the
configuration in their metadata, and the arrays the inputs were prepared with, e.g. a whitening spectrum),
``metrics.json`` (scores on the held-out test rows; written last, so its presence marks a finished run),
``test_predictions.csv`` and plots; ``resume.json`` with ``resume.e<epoch>-<id>.safetensors`` hold the
training state after the last completed epoch (:mod:`astrocnn.train.resume`).

A folder that holds a run is never overwritten silently: :func:`claim_run_folder` refuses it unless the
caller resumes it or asks to replace it.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from astrocnn.core.config import RunConfig
from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path, write_text_atomic
from astrocnn.models.cnn import CNN, Network, he_uniform_
from astrocnn.tasks import Task, make_task

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "astrocnn-weights"
WEIGHTS_VERSION = "1"
HISTORY_FILE = "history.csv"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.npz"
METRICS_FILE = "metrics.json"
TEST_PREDICTIONS_FILE = "test_predictions.csv"
#: the saved training state (see :mod:`astrocnn.train.resume`); its tensors are in ``resume.e<epoch>-<id>.safetensors``
RESUME_FILE = "resume.json"
#: weights-file tensors under this prefix are preprocessing state (e.g. the whitening PSD), not weights
PREPROCESS_PREFIX = "preprocess."
#: the files that make a folder a run folder (besides the resume state's tensor files and the plots)
RUN_FILES = (CONFIG_FILE, SPLIT_FILE, HISTORY_FILE, METRICS_FILE, RESUME_FILE, TEST_PREDICTIONS_FILE,
             "best.safetensors", "last.safetensors")


# ----------------------------------------------------------------------------------------------------------
# weights


def build_network(config: RunConfig, task: Task | None = None) -> Network:
    """A freshly He-uniform-initialised network for ``config`` (seed torch first for reproducibility)."""
    task = task or make_task(config.task)
    body = CNN(config.model)
    net = Network(body, task.make_head(body.features))
    return he_uniform_(net)


def save_weights(network: torch.nn.Module, config: RunConfig, path: str | os.PathLike,
                 preprocess: Mapping[str, Any] | None = None) -> None:
    """Write ``network``'s weights with ``config`` in the metadata (safetensors; atomic).

    preprocess : named arrays the inputs were prepared with (strain runs: ``whitening_psd``), stored as
        tensors ``preprocess.<name>`` beside the weights so prediction can prepare new data identically.
    """
    write_weights(network.state_dict(), config, path, preprocess)


def write_weights(weights: Mapping[str, torch.Tensor], config: RunConfig, path: str | os.PathLike,
                  preprocess: Mapping[str, Any] | None = None) -> None:
    """:func:`save_weights` for a state dict (the best-so-far weights kept apart from the live network)."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    for k, v in (preprocess or {}).items():
        state[PREPROCESS_PREFIX + k] = torch.as_tensor(np.asarray(v)).contiguous().clone()
    meta = {"format": WEIGHTS_FORMAT, "format_version": WEIGHTS_VERSION, "config": config.to_json()}
    # serialised here and written by us: safetensors' own save_file (0.8) writes through a temporary file
    # of its own (.tmpXXXXXX), which a kill -9 would leave behind in the run folder
    blob = save_tensors(state, metadata=meta)
    with atomic_path(path, suffix=".safetensors") as tmp:
        tmp.write_bytes(blob)


def weights_file(run: str | os.PathLike, which: str = "best") -> Path:
    """The weights file of a run folder (``best`` or ``last``), or ``run`` itself when it is a file."""
    run = Path(run)
    if run.is_file():
        return run
    if not run.exists():
        raise InputError(run, "no such run folder")
    path = run / f"{which}.safetensors"
    if not path.exists():
        raise InputError(run, f"no {path.name} here: not a finished astrocnn run folder (train one with 'astrocnn train')")
    return path


def _read_weights(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InputError(path, f"not a readable safetensors weights file ({exc})") from exc


def load_run(run: str | os.PathLike, which: str = "best") -> tuple[Network, Task, RunConfig]:
    """Load a trained network without unpickling anything.

    run : a run folder (its ``best`` or ``last`` weights, per ``which``) or a ``.safetensors`` file.
    Returns ``(network in eval mode, task, config)``.
    """
    path = weights_file(run, which)
    meta, state = _read_weights(path)
    if meta.get("format") != WEIGHTS_FORMAT:
        raise InputError(path, "not an astrocnn weights file (no astrocnn configuration in its metadata)")
    config = RunConfig.from_json(meta["config"])
    state = {k: v for k, v in state.items() if not k.startswith(PREPROCESS_PREFIX)}
    task = make_task(config.task)
    network = build_network(config, task)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the configuration stored with them ({exc})") from exc
    network.eval()
    return network, task, config


def load_preprocess(run: str | os.PathLike, which: str = "best") -> dict[str, np.ndarray]:
    """The preprocessing arrays stored with a run's weights (strain runs: ``whitening_psd`` (C, n//2+1)
    float64); empty for spectra runs. Read without unpickling anything."""
    _, state = _read_weights(weights_file(run, which))
    return {k[len(PREPROCESS_PREFIX):]: v.numpy() for k, v in state.items() if k.startswith(PREPROCESS_PREFIX)}


def load_input_transform(run: str | os.PathLike, loaded: tuple | None = None, which: str = "best") -> Any:
    """How raw inputs become network inputs for a run (its task's
    :meth:`~astrocnn.tasks.base.Task.input_transform`, from its configuration and stored arrays)."""
    _, task, config = loaded if loaded is not None else load_run(run, which)
    return task.input_transform(config, load_preprocess(run, which))


# ----------------------------------------------------------------------------------------------------------
# history and results


def write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    """``history.csv``: one row per epoch, every column any row has (atomic)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def read_history(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """``history.csv`` as columns of floats."""
    with open(Path(run_dir) / HISTORY_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]) for k in rows[0]}


def write_table(path: str | os.PathLike, columns: list[str], rows: list[list[Any]]) -> None:
    """A CSV file with a header row (atomic)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


@dataclass
class RunResult:
    """What training returns. ``metrics`` are the test-split scores also written to ``metrics.json``;
    ``monitor`` names the task's headline score among them."""

    run_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    epochs: int
    best_val_loss: float
    wall_s: float
    n_parameters: int
    history: dict[str, np.ndarray] = field(default_factory=dict)
    monitor: str = ""


def finished_result(out_dir: Path, monitor: str = "") -> RunResult:
    """The :class:`RunResult` of a finished run, read back from its files."""
    doc = json.loads((out_dir / METRICS_FILE).read_text(encoding="utf-8"))
    s = doc["summary"]
    return RunResult(run_dir=out_dir, metrics=doc["test"], best_epoch=int(s["best_epoch"]), epochs=int(s["epochs"]),
                     best_val_loss=float(s["best_val_loss"]), wall_s=float(s["wall_s"]),
                     n_parameters=int(s["n_parameters"]), history=read_history(out_dir), monitor=monitor)


# ----------------------------------------------------------------------------------------------------------
# never overwrite a run by accident


def run_files(out_dir: Path) -> list[Path]:
    """The files in ``out_dir`` that belong to a run (finished or not)."""
    if not out_dir.is_dir():
        return []
    found = [out_dir / name for name in RUN_FILES if (out_dir / name).exists()]
    return found + sorted(out_dir.glob(f"{Path(RESUME_FILE).stem}.e*.safetensors"))


def claim_run_folder(out_dir: Path, *, resume: bool, force: bool) -> None:
    """Make sure training may write into ``out_dir``.

    A folder holding a finished or partial run is refused with one line, leaving every file as it was, unless
    ``resume`` (continue it; see :func:`astrocnn.train.resume.resume_point`) or ``force`` (replace it: its run
    files are removed now). Anything else in the folder is left alone.
    """
    if resume and force:
        raise InputError(out_dir, "--resume continues the run in this folder and --force replaces it: give one")
    found = run_files(out_dir)
    if not found or resume:
        return
    if not force:
        what = "a finished run" if (out_dir / METRICS_FILE).exists() else "a partial run"
        raise InputError(out_dir, f"holds {what} ({', '.join(p.name for p in found[:3])}"
                                  f"{', ...' if len(found) > 3 else ''}): pass --resume to continue it, --force to "
                                  "replace it, or train into a new folder")
    log.info("%s: replacing the earlier run in this folder (--force)", out_dir)
    for path in found:
        path.unlink(missing_ok=True)
