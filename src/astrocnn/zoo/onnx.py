"""ONNX: trained networks exported to ONNX files, and run by ONNX Runtime without PyTorch.

Zoo layer. Two halves with different dependencies (both from the ``onnx`` extra):

- **Export** (:func:`export_onnx`, ``astrocnn export RUN_OR_MODEL --format onnx --out OUT``) needs torch and
  ``onnx``. A run folder or weights file becomes one ``.onnx`` file; a ready-made model (name or folder)
  becomes a model folder with one ``.onnx`` per component network, its manifest (components now naming the
  ``.onnx`` files by SHA-256, the original recorded under ``exported_from``) and its card. ONNX has no FFT
  convolution (torch 2.13's exporters reject ``aten::fft_rfft``), so each
  :class:`~astrocnn.models.fftconv.FFTConv1d` is exported as the ``nn.Conv1d`` it stands in for (same weights).
  Every export is checked: ONNX Runtime must give the network's outputs on a test input (:data:`CHECK_ATOL`).
- **Runtime** (:class:`OnnxNetwork`, :func:`onnx_components`, ``load_model(path, runtime="onnx")``) needs only
  numpy and ``onnxruntime``: this module imports neither torch nor onnx, so reading FITS files, preprocessing
  (:mod:`astrocnn.spectra`), the networks (ONNX Runtime) and the decoding (:mod:`astrocnn.zoo.decode`) run on
  a machine without PyTorch.

Each file is self-describing: its ``metadata_props`` hold, under keys starting ``astrocnn.``, the run
configuration (JSON, as ``RunConfig.to_dict()`` gives it: grid and preprocessing in ``input``), what each
output means and how to decode it (class names, the redshift bins), the preprocessing arrays of strain runs
(the whitening spectrum), where the weights came from, and for a model's component its role and the model's
manifest. The batch axis is dynamic: inputs ``x`` are ``(batch, channels, length)`` float32.

    from astrocnn.zoo import load_model
    model = load_model("sdss-onnx/", runtime="onnx")      # after: astrocnn export sdss --format onnx --out sdss-onnx
    table = model.predict(["spectra/"])
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from astrocnn.core.errors import InputError, require
from astrocnn.core.io import atomic_path, write_text_atomic
from astrocnn.version import __version__
from astrocnn.zoo.decode import Bins
from astrocnn.zoo.registry import CARD, MANIFEST, MODELS_DIR, ModelInfo, find_model, manifest_hash, read_model

log = logging.getLogger(__name__)

ONNX_FORMAT = "astrocnn-onnx"
ONNX_FORMAT_VERSION = 1
#: ONNX opset of the exports: every operator the networks use exists there, and ONNX Runtime >= 1.12 runs it
OPSET = 17
#: prefix of astrocnn's keys in an ONNX file's metadata_props
META = "astrocnn."
INPUT_NAME = "x"
#: names of the raw outputs, by task (``redshift/mse``: the redshift task with the paper's MSE head)
OUTPUT_NAMES = {
    "classify": ("class_log_prob",),
    "classify_redshift": ("class_log_prob", "z_log_prob", "z_offset"),
    "redshift": ("z_log_prob", "z_offset"),
    "redshift/mse": ("z_standardised",),
    "detect": ("logit",),
}
OUTPUT_MEANINGS = {
    "class_log_prob": "(batch, classes) natural-log probabilities of the classes named in 'classes', in that order",
    "z_log_prob": "(batch, bins) natural-log probabilities of the bins of y = log(1 + z): bin j starts at "
                  "y_lo + j * width",
    "z_offset": "(batch, bins) where y lies inside each bin, in bin widths from its centre: "
                "y = y_lo + (j + 0.5 + clip(offset, -3, 3)) * width at the most probable bin j; z = exp(y) - 1 "
                "(astrocnn.zoo.decode.redshift)",
    "z_standardised": "(batch,) (log(1 + z) - y_mean) / y_std, with y_mean and y_std from 'state'",
    "logit": "(batch,) detection logit: score = 1 / (1 + exp(-logit))",
}
#: largest difference allowed between ONNX Runtime's and PyTorch's raw outputs on the export's check input
#: (measured: 2e-6 on the paper's network for real spectra, 1e-5 on N(0, 1) inputs to an untrained one: float32
#: rounding of the FFT against the direct convolution; anything near this bound is a wrong graph, not rounding)
CHECK_ATOL = 1e-3
#: rows of the export's check input, N(0, 1) like a normalised spectrum, seeded
CHECK_ROWS, CHECK_SEED = 4, 0


# ----------------------------------------------------------------------------------------------------------
# the metadata: enough to use a file on its own


def output_names(config: dict[str, Any], n_outputs: int) -> tuple[str, ...]:
    """The names of a network's raw outputs, from its run configuration's ``task`` section."""
    task = config["task"]
    key = "redshift/mse" if task["name"] == "redshift" and task.get("head") == "mse" else task["name"]
    names = OUTPUT_NAMES.get(key, ())
    return names if len(names) == n_outputs else tuple(f"output_{i}" for i in range(n_outputs))


def decoding(config: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """How to turn the raw outputs into answers, in numpy terms (the ``astrocnn.decode`` metadata)."""
    task = config["task"]
    out: dict[str, Any] = {"task": task["name"], "outputs": {n: OUTPUT_MEANINGS.get(n, "") for n in names}}
    if task.get("classes") is not None:
        out["classes"] = list(task["classes"])
    if "z_log_prob" in names:
        bins = Bins.from_task(task)
        out["bins"] = {"y_lo": bins.y_lo, "width": bins.width, "n": bins.n, "z_min": task["z_min"],
                       "z_max": task["z_max"]}
    if "z_standardised" in names:
        out["state"] = dict(task.get("state") or {})
    return out


def encode_arrays(arrays: dict[str, np.ndarray]) -> str:
    """Named arrays as JSON text (dtype, shape and base64 of the little-endian bytes): no pickle."""
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
        out[k] = {"dtype": a.dtype.str, "shape": list(a.shape), "base64": base64.b64encode(a.tobytes()).decode("ascii")}
    return json.dumps(out)


def decode_arrays(text: str) -> dict[str, np.ndarray]:
    """The inverse of :func:`encode_arrays`."""
    return {k: np.frombuffer(base64.b64decode(v["base64"]), dtype=np.dtype(v["dtype"])).reshape(v["shape"]).copy()
            for k, v in json.loads(text).items()}


def metadata(config: dict[str, Any], names: tuple[str, ...], source: dict[str, Any],
             preprocess: dict[str, np.ndarray], extra: dict[str, Any] | None = None) -> dict[str, str]:
    """The ``metadata_props`` of an exported network (keys :data:`META` + name, JSON values)."""
    model = config["model"]
    props = {
        "format": ONNX_FORMAT, "format_version": str(ONNX_FORMAT_VERSION), "astrocnn_version": __version__,
        "config": json.dumps(config, sort_keys=True),
        "input": json.dumps({"name": INPUT_NAME, "shape": ["batch", model["in_channels"], model["length"]],
                             "dtype": "float32", "channels": config["data"]["inputs"],
                             "preparation": "spectra: the run's grid and preprocessing (config 'input'); strain: "
                                            "whitened with the 'preprocess' arrays"}),
        "decode": json.dumps(decoding(config, names)),
        "source": json.dumps(source, sort_keys=True),
    }
    if preprocess:
        props["preprocess"] = encode_arrays(preprocess)
    for k, v in (extra or {}).items():
        props[k] = json.dumps(v, sort_keys=True)
    return {META + k: v for k, v in props.items()}


# ----------------------------------------------------------------------------------------------------------
# export (torch)


def without_fft(network):
    """A copy of ``network`` with every :class:`~astrocnn.models.fftconv.FFTConv1d` replaced by the
    ``nn.Conv1d`` it computes (same parameters): ONNX has convolutions, not FFT convolutions."""
    import copy

    import torch.nn as nn  # the export's heavy dependency; the runtime half of this module never imports torch

    from astrocnn.models.fftconv import FFTConv1d

    plain = copy.deepcopy(network)
    for module in list(plain.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, FFTConv1d):
                conv = nn.Conv1d(child.in_channels, child.out_channels, child.kernel_size[0], stride=child.stride[0],
                                 padding=child.padding if isinstance(child.padding, str) else child.padding[0],
                                 bias=child.bias is not None, dtype=child.weight.dtype)
                conv.load_state_dict(child.state_dict())
                setattr(module, name, conv)
    return plain.eval()


def _trace_to_onnx(network, x, names: tuple[str, ...]) -> bytes:
    import io

    import torch  # the export's heavy dependency

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13's default (dynamo) exporter needs onnxscript, which the extra does not bring; the
        # TorchScript exporter it warns about handles these networks completely
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        # the body's input-shape check is a constant of the traced graph (channels and length are fixed)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(without_fft(network), (x,), buf, dynamo=False, input_names=[INPUT_NAME],
                          output_names=list(names), opset_version=OPSET, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in (INPUT_NAME, *names)})
    return buf.getvalue()


@dataclass
class Exported:
    """One network in ONNX: the file's bytes, its outputs, and how closely ONNX Runtime reproduced PyTorch."""

    blob: bytes
    names: tuple[str, ...]
    max_abs_diff: float
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        self.sha256 = hashlib.sha256(self.blob).hexdigest()


def export_network(network, config: dict[str, Any], source: dict[str, Any], preprocess: dict[str, np.ndarray],
                   extra: dict[str, Any] | None = None, where: str | os.PathLike | None = None) -> Exported:
    """``network`` (an :class:`~astrocnn.models.cnn.Network`) as ONNX bytes with :func:`metadata`, checked
    against PyTorch with ONNX Runtime on a seeded N(0, 1) input (:data:`CHECK_ATOL`; ``where`` names the
    source in the error)."""
    import torch  # the export's heavy dependency

    onnx = require("onnx", "onnx", "exporting to ONNX")
    ort = require("onnxruntime", "onnx", "checking an ONNX export")
    m = config["model"]
    x = np.random.default_rng(CHECK_SEED).standard_normal((CHECK_ROWS, m["in_channels"], m["length"])).astype(np.float32)
    network = network.eval()
    with torch.inference_mode():
        ref = network(torch.from_numpy(x))
    ref = tuple(t.numpy() for t in (ref if isinstance(ref, tuple) else (ref,)))
    names = output_names(config, len(ref))
    graph = onnx.load_from_string(_trace_to_onnx(network, torch.from_numpy(x[:1]), names))
    for k, v in metadata(config, names, source, preprocess, extra).items():
        graph.metadata_props.add(key=k, value=v)
    graph.doc_string = f"astrocnn {config['task']['name']} network; see the metadata_props under '{META}'"
    onnx.checker.check_model(graph, full_check=True)
    blob = graph.SerializeToString()
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    got = session.run(list(names), {INPUT_NAME: x})
    diff = max(float(np.max(np.abs(g - r))) for g, r in zip(got, ref))
    if not diff <= CHECK_ATOL:
        raise InputError(where, f"the ONNX export gives outputs {diff:.2g} away from PyTorch's (more than "
                                f"{CHECK_ATOL:g}): not written")
    log.info("%s: exported to ONNX (opset %d); ONNX Runtime agrees with PyTorch to %.1e", where, OPSET, diff)
    return Exported(blob, names, diff)


def export_run(run: str | os.PathLike, out: str | os.PathLike, which: str = "best") -> Exported:
    """A run folder (its ``which`` weights) or a weights file as one ``.onnx`` file ``out`` (written atomically)."""
    from astrocnn.train.runs import load_preprocess, load_run, weights_file  # torch: the export's dependency

    out = Path(out)
    if out.suffix != ".onnx" or out.is_dir():
        raise InputError(out, "a run exports to one file: give --out a file name ending in .onnx")
    path = weights_file(run, which)
    network, _, config = load_run(path)
    source = {"weights": path.name, "sha256": _sha256(path.read_bytes())}
    exported = export_network(network, config.to_dict(), source, load_preprocess(path), where=run)
    with atomic_path(out) as tmp:
        tmp.write_bytes(exported.blob)
    return exported


def _sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def _claim_export_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "a model exports to a folder (one .onnx per network, its manifest and card): "
                              "this is a file")
    if out.is_dir() and any(out.iterdir()):
        try:
            earlier = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = {}
        if "exported_from" not in earlier:
            raise InputError(out, "holds other files: give a new or empty folder, or an earlier ONNX export of a "
                                  "model to replace")


def export_model(name_or_path: str | os.PathLike, out: str | os.PathLike) -> ModelInfo:
    """A ready-made model (name or folder) as a model folder ``out`` that runs on ONNX Runtime
    (``load_model(out, runtime="onnx")``): each component as ``<role>-<SHA-256 prefix>.onnx``, the manifest
    naming those files (the original model's hash and components under ``exported_from``) and the card.
    Files are written atomically, the manifest last; ``.onnx`` files of an earlier export that the new
    manifest does not name are removed. Returns the exported model as read back."""
    from astrocnn.train.runs import load_preprocess, load_run  # torch: the export's dependency

    info = find_model(name_or_path)
    if is_onnx_export(info):
        raise InputError(info.path, "this model is already an ONNX export")
    out = Path(out)
    _claim_export_folder(out)
    components = {}
    for role, entry in info.manifest["components"].items():
        path = info.component(role)
        network, _, config = load_run(path)
        model = {"name": info.name, "version": info.version, "hash": info.hash, "role": role, "manifest": info.manifest}
        exported = export_network(network, config.to_dict(), {"weights": entry["file"], "sha256": entry["sha256"]},
                                  load_preprocess(path), {"model": model}, where=path)
        name = f"{role}-{exported.sha256[:12]}.onnx"
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(exported.blob)
        components[role] = {"file": name, "sha256": exported.sha256, "runtime": "onnx",
                            "outputs": list(exported.names), "max_abs_diff": exported.max_abs_diff}
    if (info.path / CARD).exists():
        with atomic_path(out / CARD) as tmp:
            shutil.copyfile(info.path / CARD, tmp)
    manifest = {**info.manifest, "components": components,
                "exported_from": {"hash": info.hash, "components": info.manifest["components"], "format": "onnx",
                                  "opset": OPSET, "astrocnn_version": __version__}}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    for stale in set(out.glob("*.onnx")) - {out / c["file"] for c in components.values()}:
        stale.unlink()
    exported_info = read_model(out)
    log.info("%s: model %s@%s in ONNX as %s@%s", out, info.name, info.hash, info.name, manifest_hash(manifest))
    return exported_info


def export_onnx(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """``astrocnn export SOURCE --format onnx --out OUT``: a run folder or weights file to the ``.onnx`` file
    ``out`` (:func:`export_run`), a ready-made model (name or folder) to the folder ``out``
    (:func:`export_model`). Returns ``out``."""
    require("onnx", "onnx", "exporting to ONNX")
    require("onnxruntime", "onnx", "checking an ONNX export")
    path = Path(source)
    if (path.is_dir() and (path / MANIFEST).exists()) or (not path.exists() and _looks_like_a_name(os.fspath(source))):
        export_model(source, out)
    elif path.exists():
        export_run(path, out)
    else:
        raise InputError(path, "no such run folder, weights file or model folder")
    return Path(out)


def _looks_like_a_name(text: str) -> bool:
    return os.sep not in text and "/" not in text and not text.endswith((".safetensors", ".onnx"))


# ----------------------------------------------------------------------------------------------------------
# runtime (numpy and onnxruntime only)


class OnnxNetwork:
    """An exported network run by ONNX Runtime: a :class:`~astrocnn.zoo.sdss.Component` (``config``,
    ``outputs(x)``), with the file's ``decoding`` and ``preprocess`` arrays.

    path : an ``.onnx`` file written by :func:`export_onnx`. threads : ONNX Runtime's intra-op threads
    (default: its own choice, one per core). batch_size : rows per call to ONNX Runtime.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None, batch_size: int = 256):
        ort = require("onnxruntime", "onnx", "running ONNX models")
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "no such ONNX file")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(os.fspath(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own error types for unreadable models
            raise InputError(self.path, f"not a readable ONNX model ({str(exc).splitlines()[0]})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if self.metadata.get(META + "format") != ONNX_FORMAT:
            raise InputError(self.path, "an ONNX model without astrocnn's metadata (export one with 'astrocnn export')")
        if int(self.metadata.get(META + "format_version", 0)) > ONNX_FORMAT_VERSION:
            raise InputError(self.path, "exported by a newer astrocnn than this one")
        self.config: dict[str, Any] = json.loads(self.metadata[META + "config"])
        self.decoding: dict[str, Any] = json.loads(self.metadata[META + "decode"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.batch_size = int(batch_size)

    def __repr__(self) -> str:
        return f"<OnnxNetwork {self.path.name}: {self.config['task']['name']} -> {', '.join(self.output_names)}>"

    @property
    def preprocess(self) -> dict[str, np.ndarray]:
        """The arrays the inputs are prepared with (strain runs: ``whitening_psd``); empty for spectra."""
        text = self.metadata.get(META + "preprocess")
        return decode_arrays(text) if text else {}

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Raw outputs for inputs ``x`` (n, channels, length) float32, in batches (as the PyTorch network's)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        expected = (self.config["model"]["in_channels"], self.config["model"]["length"])
        if x.ndim != 3 or x.shape[1:] != expected:
            raise ValueError(f"network expects input of shape (batch, {expected[0]}, {expected[1]}), got {x.shape}")
        parts = [self.session.run(self.output_names, {self.input_name: x[lo:lo + self.batch_size]})
                 for lo in range(0, x.shape[0], self.batch_size)]
        if not parts:
            return ()
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(self.output_names)))


def is_onnx_export(info: ModelInfo) -> bool:
    """Whether a model folder's components are ONNX files (made by :func:`export_model`)."""
    return all(entry.get("runtime") == "onnx" for entry in info.manifest["components"].values())


def onnx_components(info: ModelInfo, *, threads: int | None = None) -> dict[str, OnnxNetwork]:
    """The model's networks on ONNX Runtime (the folder must be an ONNX export: :func:`export_model`)."""
    if not is_onnx_export(info):
        source = info.name if info.path.parent == MODELS_DIR else info.path
        raise InputError(info.path, f"model {info.name}@{info.hash} holds PyTorch weights: export it first "
                                    f"('astrocnn export {source} --format onnx --out DIR') and load DIR")
    return {role: OnnxNetwork(info.component(role), threads=threads) for role in info.manifest["components"]}
