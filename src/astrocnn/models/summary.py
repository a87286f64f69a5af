"""A network's layers as a table: what each layer is, its kernel, and the shape of what it hands on.

Core layer (the models): works on any ``torch.nn.Module``. The table comes from the network object itself,
by one forward pass with hooks, so a figure or a printout drawn from it cannot disagree with the network
that is trained (the tutorial's figure 5 is drawn from it).

    from astrocnn.models import layer_table
    for row in layer_table(network, torch.zeros(1, 1, 4618)):
        print(row.name, row.kind, row.kernel, row.out_shape, row.params)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch import Tensor

#: Modules that pass their input on unchanged: left out of the table.
PASS_THROUGH = (nn.Identity,)


@dataclass(frozen=True)
class LayerRow:
    """One layer of a forward pass.

    name : the module's dotted name in the network (e.g. ``"body.blocks.0.conv"``).
    kind : its class name (``"Conv1d"``, ``"FFTConv1d"``, ``"MaxPool1d"``, ``"ReLU"``, ``"Linear"`` ...).
    in_shape, out_shape : shapes of the first input and of the output tensor, without the batch dimension
        (e.g. ``(16, 4119)``: channels, samples). A module returning several tensors gives the first one's.
    kernel : kernel (convolution) or window (pooling) size in samples; None for other layers.
    params : trainable parameters of this module itself (its children are rows of their own).
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int | None
    params: int


def _first_tensor(value) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def _kernel(module: nn.Module) -> int | None:
    k = getattr(module, "kernel_size", None)
    if k is None:
        return None
    return int(k[0] if isinstance(k, (tuple, list)) else k)


def layer_table(network: nn.Module, example: Tensor) -> list[LayerRow]:
    """The layers ``network`` runs on ``example`` (a batch, e.g. ``torch.zeros(1, 1, 4618)``), in call order.

    One row per call of a leaf module (a module without children), found by forward hooks during one
    forward pass in inference mode; pass-through layers (:data:`PASS_THROUGH`) are left out. The network's
    training/eval mode is restored afterwards. Raises ``ValueError`` when the network rejects ``example``.
    """
    rows: list[LayerRow] = []
    names = {m: n for n, m in network.named_modules()}

    def hook(module: nn.Module, inputs, output) -> None:
        x, y = _first_tensor(inputs), _first_tensor(output)
        rows.append(LayerRow(
            name=names.get(module, type(module).__name__),
            kind=type(module).__name__,
            in_shape=tuple(x.shape[1:]) if x is not None else (),
            out_shape=tuple(y.shape[1:]) if y is not None else (),
            kernel=_kernel(module),
            params=sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad),
        ))

    leaves = [m for m in network.modules() if not any(True for _ in m.children()) and not isinstance(m, PASS_THROUGH)]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = network.training
    try:
        network.eval()
        with torch.inference_mode():
            network(example)
    finally:
        for h in handles:
            h.remove()
        network.train(was_training)
    return rows
