"""The paper's one-dimensional CNN (Wang et al. 2022), configurable through :class:`CNNConfig`.

The paper's network: three convolutions in series with kernels of 500, 200 and 10 pixels, each followed by
ReLU and max pooling, then fully connected layers, He-uniform initialised. The paper gives no channel
counts or pooling sizes; our defaults (documented on :class:`CNNConfig`) were chosen by measurement, see
``docs/training-experiments.md``.

The network is a feature extractor (:class:`CNN`, ``(batch, in_channels, length) -> (batch, features)``)
followed by a task head (:mod:`astrocnn.models.heads`); :class:`Network` joins the two. Nothing in here
knows about spectra: a gravitational-wave detector with 3 input channels of 4096 samples is the same class
with ``CNNConfig(in_channels=3, length=4096, ...)``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping

import torch
import torch.nn as nn
from torch import Tensor

from astrocnn.models.fftconv import FFTConv1d

NORMS = ("none", "batch", "group", "layer")
ARCHS = ("plain", "resnet")


@dataclass
class CNNConfig:
    """Shape of the network. Lists give one value per convolution block.

    in_channels : input channels (1 for a spectrum's flux, 3 for three-detector strain).
    length : input samples (4618 on the paper's spectral grid).
    kernels : convolution kernel sizes; the paper's 500, 200, 10.
    channels : output channels per convolution (not in the paper; default 16, 32, 32).
    pools : max-pooling factor after each convolution (not in the paper; default 4, 4, 2: as accurate as
        2, 2, 2 on simulated quasars at half the training time and a quarter of the parameters, see
        ``docs/training-experiments.md``). 1 = no pooling.
    padding : ``"valid"`` (no padding, as Keras' default that the paper used) or ``"same"``.
    dense : sizes of the hidden fully connected layers after flattening (default one layer of 256).
    dropout : dropout probability before each fully connected layer (0 = none, the paper's choice).
    norm : normalisation after each convolution: ``"none"`` (paper), ``"batch"``, ``"group"`` (one group
        per 8 channels) or ``"layer"`` (over channels and positions, per sample).
    fft_min_kernel : kernels at least this long use :class:`~astrocnn.models.fftconv.FFTConv1d` (same
        results, same weights, much faster for the 500- and 200-pixel kernels); 0 = never.
    arch : ``"plain"`` (the paper's CNN: one convolution per block) or ``"resnet"`` (a 1D ResNet, the
        option the paper's authors used for gravitational waves: every block is ``depth`` residual units of
        two "same"-padded convolutions with normalisation and a shortcut, then the block's pooling).
    depth : residual units per block (``arch="resnet"`` only).
    """

    in_channels: int = 1
    length: int = 4618
    kernels: list[int] = field(default_factory=lambda: [500, 200, 10])
    channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    pools: list[int] = field(default_factory=lambda: [4, 4, 2])
    padding: str = "valid"
    dense: list[int] = field(default_factory=lambda: [256])
    dropout: float = 0.0
    norm: str = "none"
    fft_min_kernel: int = 64
    arch: str = "plain"
    depth: int = 1

    def __post_init__(self) -> None:
        self.kernels = [int(k) for k in self.kernels]
        self.channels = [int(c) for c in self.channels]
        self.pools = [int(p) for p in self.pools]
        self.dense = [int(d) for d in self.dense]
        if not (len(self.kernels) == len(self.channels) == len(self.pools)) or not self.kernels:
            raise ValueError(
                f"kernels, channels and pools need one value per convolution block, got kernels={self.kernels}, "
                f"channels={self.channels}, pools={self.pools}"
            )
        if any(v < 1 for v in [*self.kernels, *self.channels, *self.pools, *self.dense, self.in_channels]):
            raise ValueError(f"sizes must be >= 1: {self}")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {self.padding!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.out_length() < 1:
            raise ValueError(f"input length {self.length} is too short for kernels {self.kernels} and pools {self.pools}")

    def out_length(self) -> int:
        """Samples left after the last convolution block."""
        n = self.length
        for k, p in zip(self.kernels, self.pools):
            n = n if (self.padding == "same" or self.arch == "resnet") else n - k + 1
            if n < 1:
                return 0
            n //= p
        return n

    @property
    def features(self) -> int:
        """Size of the feature vector handed to the head."""
        return self.dense[-1] if self.dense else self.channels[-1] * self.out_length()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CNNConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def _norm(kind: str, channels: int, length: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 8), channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class ConvBlock(nn.Module):
    """Convolution -> normalisation -> ReLU -> max pooling (evaluated as pooling, then ReLU: identical)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: int, padding: str,
                 norm: str, use_fft: bool, length: int):
        super().__init__()
        conv_cls = FFTConv1d if use_fft else nn.Conv1d
        self.conv = conv_cls(in_channels, out_channels, kernel, padding=padding)
        self.norm = _norm(norm, out_channels, length)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # max pooling and ReLU commute (ReLU is monotonic), so pool first: the ReLU then touches a
        # ``pool``-times smaller tensor. Same values and same gradients as conv -> norm -> ReLU -> pool.
        return self.act(self.pool(self.norm(self.conv(x))))


class ResidualBlock(nn.Module):
    """``depth`` residual units, then max pooling. A unit: conv(k) -> norm -> ReLU -> conv(k) -> norm, plus
    the input (through a 1x1 convolution and norm where the channel count changes), then ReLU. Convolutions
    are "same"-padded so the sum lines up; long kernels go through the FFT as in :class:`ConvBlock`."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: int, norm: str, use_fft: bool,
                 length: int, depth: int):
        super().__init__()
        conv_cls = FFTConv1d if use_fft else nn.Conv1d
        units = []
        for i in range(depth):
            c_in = in_channels if i == 0 else out_channels
            unit = nn.ModuleDict({
                "conv1": conv_cls(c_in, out_channels, kernel, padding="same"),
                "norm1": _norm(norm, out_channels, length),
                "conv2": conv_cls(out_channels, out_channels, kernel, padding="same"),
                "norm2": _norm(norm, out_channels, length),
            })
            if c_in != out_channels:
                unit["short"] = nn.Conv1d(c_in, out_channels, 1)
                unit["short_norm"] = _norm(norm, out_channels, length)
            units.append(unit)
        self.units = nn.ModuleList(units)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for u in self.units:
            y = u["norm2"](u["conv2"](self.act(u["norm1"](u["conv1"](x)))))
            short = u["short_norm"](u["short"](x)) if "short" in u else x
            x = self.act(y + short)
        return self.pool(x)


class CNN(nn.Module):
    """The paper's convolutional feature extractor: ``(batch, in_channels, length) -> (batch, features)``."""

    def __init__(self, config: CNNConfig = CNNConfig()):
        super().__init__()
        self.config = config
        blocks = []
        c_in, n = config.in_channels, config.length
        for k, c, p in zip(config.kernels, config.channels, config.pools):
            use_fft = bool(config.fft_min_kernel) and k >= config.fft_min_kernel
            if config.arch == "resnet":
                blocks.append(ResidualBlock(c_in, c, k, p, config.norm, use_fft, n, config.depth))
            else:
                n = n if config.padding == "same" else n - k + 1
                blocks.append(ConvBlock(c_in, c, k, p, config.padding, config.norm, use_fft, n))
            c_in, n = c, n // p
        self.blocks = nn.Sequential(*blocks)
        layers: list[nn.Module] = [nn.Flatten()]
        width = c_in * n
        for d in config.dense:
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            layers += [nn.Linear(width, d), nn.ReLU()]
            width = d
        self.dense = nn.Sequential(*layers)
        self.features = width

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x[:, None, :]
        if x.shape[1:] != (self.config.in_channels, self.config.length):
            raise ValueError(
                f"network expects input of shape (batch, {self.config.in_channels}, {self.config.length}), "
                f"got {tuple(x.shape)}"
            )
        return self.dense(self.blocks(x))


def he_uniform_(module: nn.Module) -> nn.Module:
    """He-uniform initialisation (Keras ``he_uniform``): weights ~ U(-sqrt(6/fan_in), +sqrt(6/fan_in)), biases 0.

    Applied to every convolution and fully connected layer in ``module``; normalisation layers keep their
    identity initialisation. Returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=0.0, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class Network(nn.Module):
    """Feature extractor + task head. ``forward`` returns whatever the head returns (a tensor or a tuple)."""

    def __init__(self, body: CNN, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: Tensor):
        return self.head(self.body(x))

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
