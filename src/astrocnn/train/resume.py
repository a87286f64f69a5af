"""Resumable training state, written and read without pickle, and where a resumed run goes on from.

Trainer layer.

Why not Lightning's own ``.ckpt``: it is ``torch.save`` output, i.e. a pickle, and loading a pickle can run
arbitrary code. A run folder is something people copy between machines and colleagues, so everything in it
must load as data only (the weights files already do; see :func:`astrocnn.train.runs.load_run`).

Instead Lightning's checkpoint *dictionary* (model weights, optimizer and scheduler states, loop progress,
callback states such as early stopping's best score and wait count, and our own extras) is split in two:

``resume.json``
    the structure and every scalar, as JSON; each tensor is replaced by ``{"$tensor": name}``. It also names
    the tensor file and records its SHA-256 and a random ``state_id``. **It is the commit point**: a state
    exists once this file has been renamed into place.
``resume.e<epoch>-<state_id>.safetensors``
    every tensor of the checkpoint (weights, Adam moments and step counts, the best-so-far weights, random
    generator states as uint8/int64 tensors), with the same ``state_id`` and epoch in its metadata.

Each save writes a *new* tensor file (its name carries the state id), then replaces ``resume.json``
atomically, then deletes older tensor files. A process killed at any moment therefore leaves either the old
pair or the new pair intact; the only debris is a ``.*.partial`` temporary file or an orphaned tensor file
that no ``resume.json`` names, both of which resuming removes. On load the tensor file's hash, state id and
epoch must match ``resume.json``; anything else (a corrupted or hand-copied file) is refused with an
:class:`~astrocnn.core.errors.InputError` rather than silently resumed from.

The JSON encoding keeps what plain JSON would lose, so the dictionary round-trips exactly: tuples
(``{"$tuple": [...]}``), dictionaries with non-string keys such as optimizer states keyed by parameter index
(``{"$items": [[key, value], ...]}``), non-finite floats (``{"$float": "nan"}``) and NumPy arrays
(``{"$ndarray": name}``). Any other type raises ``TypeError`` when saving, so a future Lightning that puts an
arbitrary object in its checkpoint fails loudly instead of writing something that cannot be read back.

:class:`SafeCheckpointIO` plugs this into Lightning (``Trainer(plugins=[SafeCheckpointIO()])``), so
``trainer.save_checkpoint(path)`` and ``trainer.fit(ckpt_path=path)`` use it; Lightning itself then restores
its loops, optimizers, schedulers and callbacks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import struct
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from lightning_fabric.plugins import CheckpointIO
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from astrocnn.core.config import RunConfig
from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path
from astrocnn.train.runs import CONFIG_FILE, METRICS_FILE, RESUME_FILE, SPLIT_FILE

log = logging.getLogger(__name__)

RESUME_FORMAT = "astrocnn-resume"
RESUME_VERSION = "1"

_TENSOR, _NDARRAY, _TUPLE, _ITEMS, _FLOAT = "$tensor", "$ndarray", "$tuple", "$items", "$float"


# ----------------------------------------------------------------------------------------------------------
# nested structures <-> (JSON tree, named tensors)


def encode(obj: Any, tensors: dict[str, torch.Tensor], path: str = "") -> Any:
    """A JSON-serialisable tree for ``obj``; its tensors go to ``tensors`` (named after their path)."""
    if isinstance(obj, torch.Tensor):
        name = f"{len(tensors)}:{path}"
        tensors[name] = obj.detach().to("cpu").contiguous().clone()
        node: dict[str, Any] = {_TENSOR: name}
        if obj.device.type != "cpu":
            node["device"] = str(obj.device)
        return node
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"{path or 'checkpoint'}: an object array cannot be stored without pickle")
        name = f"{len(tensors)}:{path}"
        tensors[name] = torch.from_numpy(np.ascontiguousarray(obj)).clone()
        return {_NDARRAY: name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(obj, tuple):
        return {_TUPLE: [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: encode(v, tensors, f"{path}.{k}" if path else k) for k, v in obj.items()}
        return {_ITEMS: [[encode(k, tensors, f"{path}.key"), encode(v, tensors, f"{path}.{k}")]
                         for k, v in obj.items()]}
    raise TypeError(f"{path or 'checkpoint'}: a {type(obj).__name__} cannot be stored in a resume state "
                    "(only tensors, arrays, numbers, strings, lists, tuples and dicts can, without pickle)")


def decode(node: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(node, list):
        return [decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if _TENSOR in node:
        t = tensors[node[_TENSOR]]
        device = node.get("device")
        if device and device.startswith("cuda") and torch.cuda.is_available():
            t = t.to(device)
        return t
    if _NDARRAY in node:
        return tensors[node[_NDARRAY]].numpy()
    if _FLOAT in node:
        return float(node[_FLOAT])
    if _TUPLE in node:
        return tuple(decode(v, tensors) for v in node[_TUPLE])
    if _ITEMS in node:
        return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in node[_ITEMS]}
    return {k: decode(v, tensors) for k, v in node.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


# ----------------------------------------------------------------------------------------------------------
# files


def _write_durable(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, flushed to disk first (so a power cut, not only a killed
    process, leaves the old or the new content)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def tensor_files(json_path: str | os.PathLike) -> list[Path]:
    """Every tensor file that belongs (or once belonged) to the state ``json_path``."""
    json_path = Path(json_path)
    return sorted(json_path.parent.glob(f"{json_path.stem}.e*.safetensors"))


def save_state(checkpoint: Mapping[str, Any], json_path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` as ``json_path`` + a new tensor file beside it (see the module docstring).

    Returns the tensor file's path. Older tensor files of the same state are deleted once the new state is
    committed.
    """
    json_path = Path(json_path)
    tensors: dict[str, torch.Tensor] = {}
    tree = encode(dict(checkpoint), tensors)
    state_id = uuid.uuid4().hex[:12]  # os.urandom: no draw from the seeded generators
    epoch = int(checkpoint.get("epoch", -1))
    meta = {"format": RESUME_FORMAT, "format_version": RESUME_VERSION, "state_id": state_id, "epoch": str(epoch)}
    blob = save_tensors(tensors, metadata=meta)
    tensor_path = json_path.parent / f"{json_path.stem}.e{epoch:04d}-{state_id}.safetensors"
    doc = {
        "format": RESUME_FORMAT, "format_version": RESUME_VERSION, "state_id": state_id, "epoch": epoch,
        "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tensors": {"file": tensor_path.name, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)},
        "checkpoint": tree,
    }
    text = json.dumps(doc, indent=1, allow_nan=False) + "\n"
    _write_durable(tensor_path, blob)
    _write_durable(json_path, text.encode("utf-8"))  # the commit
    _sync_folder(json_path.parent)
    for old in tensor_files(json_path):
        if old != tensor_path:
            old.unlink(missing_ok=True)
    return tensor_path


def read_state_header(json_path: str | os.PathLike) -> dict[str, Any]:
    """``resume.json`` as a dict, after checking it is one (raises :class:`InputError` naming the file)."""
    json_path = Path(json_path)
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(json_path, "no saved training state here") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(json_path, f"not a readable resume state ({exc}); train without --resume to start "
                                    "the run again") from exc
    if not isinstance(doc, dict) or doc.get("format") != RESUME_FORMAT:
        raise InputError(json_path, "not an astrocnn resume state")
    if str(doc.get("format_version")) != RESUME_VERSION:
        raise InputError(json_path, f"resume state format {doc.get('format_version')!r}; this astrocnn reads "
                                    f"{RESUME_VERSION!r}")
    name = str((doc.get("tensors") or {}).get("file", ""))
    if not name or Path(name).name != name:
        raise InputError(json_path, "resume state names no tensor file beside it")
    return doc


def _safetensors_metadata(blob: bytes) -> dict[str, str]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]).get("__metadata__") or {}


def load_state(json_path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by :func:`save_state`, checking that its two files belong together.

    Only ``json`` and ``safetensors`` are used: nothing is unpickled. A missing, corrupted or mismatched
    tensor file raises :class:`InputError` saying so (there is no silent fallback to an older state: the
    write order guarantees a consistent pair after any interruption, so a mismatch means the files were
    damaged or mixed up by hand).
    """
    json_path = Path(json_path)
    doc = read_state_header(json_path)
    info = doc["tensors"]
    tensor_path = json_path.parent / info["file"]
    hint = "the saved training state is damaged; train without --resume to start the run again"
    try:
        blob = tensor_path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(json_path, f"names {tensor_path.name}, which is missing: {hint}") from exc
    if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
        raise InputError(tensor_path, f"does not match {json_path.name} (SHA-256 differs): {hint}")
    try:
        meta = _safetensors_metadata(blob)
        tensors = load_tensors(blob)
    except Exception as exc:  # safetensors raises its own error types
        raise InputError(tensor_path, f"not a readable safetensors file ({exc}): {hint}") from exc
    if meta.get("format") != RESUME_FORMAT or meta.get("state_id") != doc.get("state_id") \
            or meta.get("epoch") != str(doc.get("epoch")):
        raise InputError(tensor_path, f"belongs to another saved state than {json_path.name}: {hint}")
    try:
        return decode(doc["checkpoint"], tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(json_path, f"inconsistent with its tensor file ({exc}): {hint}") from exc


def verify_state(json_path: str | os.PathLike) -> int:
    """Check a saved state end to end (as :func:`load_state`) and return its epoch."""
    load_state(json_path)
    return int(read_state_header(json_path)["epoch"])


def remove_state(json_path: str | os.PathLike) -> None:
    """Delete a saved state: ``resume.json`` first (so no half-state is ever left), then its tensor files."""
    json_path = Path(json_path)
    json_path.unlink(missing_ok=True)
    for path in tensor_files(json_path):
        path.unlink(missing_ok=True)


def remove_debris(folder: str | os.PathLike, json_path: str | os.PathLike | None = None) -> list[Path]:
    """Remove what an interrupted process can leave in a run folder: the ``.<name>.*.partial`` temporary
    files of :func:`astrocnn.core.io.atomic_path`, and tensor files that ``json_path`` does not name."""
    folder = Path(folder)
    removed = [p for p in folder.glob(".*.partial") if p.is_file()]
    if json_path is not None:
        json_path = Path(json_path)
        keep = None
        if json_path.exists():
            with contextlib.suppress(InputError):
                keep = read_state_header(json_path)["tensors"]["file"]
        removed += [p for p in tensor_files(json_path) if p.name != keep]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


class SafeCheckpointIO(CheckpointIO):
    """Lightning checkpoint I/O through :func:`save_state` / :func:`load_state`: JSON + safetensors, no pickle.

    ``path`` is the JSON file; the tensor file is written beside it. ``weights_only`` is accepted and
    ignored: nothing is ever unpickled, so there is nothing to restrict.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_state(checkpoint, path)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict[str, Any]:
        return load_state(path)

    def remove_checkpoint(self, path) -> None:
        remove_state(path)


# ----------------------------------------------------------------------------------------------------------
# random generator states as tensors


def rng_state() -> dict[str, torch.Tensor]:
    """This process's torch, NumPy (global) and Python ``random`` generator states, as tensors.

    torch's state is its own uint8 byte string; the Mersenne-Twister keys of NumPy and Python are int64
    (exact for their 32-bit words); the cached Gaussians are float64.
    """
    _, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    py_version, py_words, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_key": torch.from_numpy(np.asarray(key, dtype=np.int64)),
        "numpy_int": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([gauss], dtype=torch.float64),
        "python_words": torch.tensor(py_words, dtype=torch.int64),
        "python_int": torch.tensor([py_version, py_gauss is not None], dtype=torch.int64),
        "python_gauss": torch.tensor([py_gauss or 0.0], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: Mapping[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` captured."""
    # a copy of its own: torch.set_rng_state reads a view's storage from its start, ignoring the view's
    # offset (one rank's row of the stacked per-rank states crashed the process with a segfault)
    torch.set_rng_state(state["torch"].to("cpu", torch.uint8).clone())
    pos, has_gauss = (int(v) for v in state["numpy_int"])
    np.random.set_state(("MT19937", state["numpy_key"].cpu().numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"][0])))
    version, has_py_gauss = (int(v) for v in state["python_int"])
    words = tuple(int(v) for v in state["python_words"])
    random.setstate((version, words, float(state["python_gauss"][0]) if has_py_gauss else None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].to("cpu", torch.uint8).clone())


# ----------------------------------------------------------------------------------------------------------
# where a resumed run goes on from


#: settings that may differ between an interrupted run and its resumption: they change how fast, where or how
#: verbosely the run goes, not what it computes (``threads`` and ``accelerator`` up to floating-point summation
#: order). ``data.path`` may change too (a moved file): the split and the labels' fitted state are compared.
RESUME_FREE_SETTINGS = ("train.progress_bar", "train.threads", "train.accelerator", "data.num_workers",
                        "data.eval_batch_size", "data.path", "version")


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _short(value: Any, width: int = 40) -> str:
    text = "missing" if value is _MISSING else json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


_MISSING = object()


def config_differences(stored: RunConfig, now: RunConfig) -> list[str]:
    """The settings (``section.name``) in which two filled-in run configurations differ, ignoring
    :data:`RESUME_FREE_SETTINGS`, each as ``"name (<stored> in the run, <now> now)"``."""
    a, b = _flatten(json.loads(stored.to_json())), _flatten(json.loads(now.to_json()))
    out = []
    for key in sorted(set(a) | set(b)):
        if any(key == f or key.startswith(f + ".") for f in RESUME_FREE_SETTINGS):
            continue
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va is _MISSING or vb is _MISSING or va != vb:
            out.append(f"{key} ({_short(va)} in the run, {_short(vb)} now)")
    return out


def resume_point(out_dir: Path, config: RunConfig, split: dict[str, np.ndarray]) -> Path | None:
    """Where :func:`~astrocnn.train.fit.train` with ``resume=True`` goes on from: the run's ``resume.json``; its ``metrics.json``
    when the run has finished; ``None`` to start a new run (nothing saved yet). Refuses a run that was built
    from another configuration or data."""
    cfg_file = out_dir / CONFIG_FILE
    if not cfg_file.exists():
        log.info("%s: no run to resume here; starting a new run", out_dir)
        return None
    stored = RunConfig.load(cfg_file)
    diffs = config_differences(stored, config)
    if diffs:
        raise InputError(cfg_file, f"cannot resume: this run was built with other settings: {'; '.join(diffs)} "
                                   "(resume with the run's own configuration, or train into a new folder)")
    if stored.data.path != config.data.path:
        log.info("%s: the run was trained on %s; resuming on %s (same split and labels)", out_dir,
                 stored.data.path, config.data.path)
    state = out_dir / RESUME_FILE
    split_file = out_dir / SPLIT_FILE
    if split_file.exists():
        with np.load(split_file, allow_pickle=False) as npz:
            same = all(k in npz and np.array_equal(npz[k], split[k]) for k in split)
        if not same:
            raise InputError(split_file, "cannot resume: these data give another train/val/test split than the "
                                         "run's (a different data set?)")
    elif state.exists():
        raise InputError(out_dir, f"has a saved training state but no {SPLIT_FILE}: cannot resume")
    if (out_dir / METRICS_FILE).exists():
        log.info("%s: this run has already finished (metrics.json); nothing to resume. Train without --resume "
                 "(or into a new folder) to train it again", out_dir)
        return out_dir / METRICS_FILE
    if not state.exists():
        log.warning("%s: no saved training state (the run stopped before its first epoch ended); starting it "
                    "again from scratch", out_dir)
        return None
    epoch = verify_state(state)  # fail here, in one line, rather than inside Lightning
    log.info("%s: resuming from the state saved after epoch %d", out_dir, epoch)
    return state
