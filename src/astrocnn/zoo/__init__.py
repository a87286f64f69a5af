"""Ready-made models: answers without training. ``sdss`` gives class and redshift for SDSS spectra.

Zoo layer: above the trainer (a model's networks are run weights) and below the applications (the command
line's ``astrocnn predict --model``, ``astrocnn models``, ``astrocnn zoo build``). Each model ships with a card
saying what it was trained on, how it scores and where it fails (:mod:`astrocnn.zoo.registry`).

    from astrocnn.zoo import list_models, load_model
    model = load_model("sdss")                    # or pinned: "sdss@<hash>", or a model folder
    table = model.predict(["spectra/"])           # astropy Table: class, p_*, z, z_err, z_conf, zwarn, ...
"""
from __future__ import annotations

import os

from astrocnn.core.errors import InputError
from astrocnn.zoo.onnx import is_onnx_export, onnx_components
from astrocnn.zoo.registry import ModelCard, ModelInfo, find_model, shipped_models
from astrocnn.zoo.sdss import SdssModel, torch_components

#: model kind -> (class, components for a runtime)
KINDS = {"sdss": SdssModel}


def list_models() -> list[ModelInfo]:
    """The models that come with astrocnn (name, version, hash, card)."""
    return shipped_models()


def load_model(name_or_path: str | os.PathLike = "sdss", runtime: str = "torch"):
    """A ready-made model by name (``"sdss"``, pinned ``"sdss@<hash>"``) or from a model folder.

    runtime : ``"torch"`` (default) or ``"onnx"`` (ONNX Runtime: needs the ``onnx`` extra and an exported model;
        see :mod:`astrocnn.zoo.onnx`).
    """
    info = find_model(name_or_path)
    if info.kind not in KINDS:
        raise InputError(info.path, f"a model of kind {info.kind!r}; this astrocnn runs {sorted(KINDS)}")
    if runtime == "onnx":
        return KINDS[info.kind](info, onnx_components(info))
    if runtime != "torch":
        raise InputError(None, f"runtime {runtime!r} is not available; use 'torch' or 'onnx'")
    if is_onnx_export(info):
        raise InputError(info.path, "an ONNX export of a model: load it with runtime='onnx'")
    return KINDS[info.kind](info, torch_components(info))


__all__ = ["list_models", "load_model", "ModelCard", "ModelInfo", "SdssModel", "KINDS"]
