"""One-dimensional convolution through the FFT, a drop-in for :class:`torch.nn.Conv1d` with long kernels.

A direct convolution costs ``k`` multiply-adds per output sample and input/output channel pair; with the
paper's kernels of 500 and 200 pixels that dominates training time on a CPU. Through the FFT the cost per
pair is a few operations per frequency bin, independent of ``k``.

:class:`FFTConv1d` has exactly the semantics of ``nn.Conv1d`` (cross-correlation, zero padding, stride,
bias) and the same parameters (``weight`` of shape ``(out_channels, in_channels, kernel_size)`` and
``bias`` of shape ``(out_channels,)``), so state dicts interchange between the two. Dilation and groups
are not supported (the networks here do not use them); asking for them raises.

Core layer (the models): knows no domain, no task and no trainer.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def fast_size(n: int) -> int:
    """Smallest integer >= ``n`` whose only prime factors are 2, 3 and 5 (fast FFT lengths)."""
    best = 1 << max(0, math.ceil(math.log2(max(n, 1))))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _mix(xf: Tensor, wf: Tensor) -> Tensor:
    """``yf[b, o, f] = sum_i xf[b, i, f] * conj(wf[o, i, f])``.

    One input channel is a broadcast product; several are one complex matrix product per frequency bin,
    with the bins as the batch of a ``bmm`` on contiguous operands. (torch 2.13's complex kernels beat the
    real-arithmetic formulation we used before by 1.6x in inference and 1.25x in training on one CPU core,
    measured on the paper's network; a non-contiguous ``bmm`` operand costs ~3x through hidden copies.)
    """
    if xf.shape[1] == 1:
        return xf * wf[:, 0].conj()
    xb = xf.permute(2, 0, 1).contiguous()  # (n_f, B, I)
    wb = wf.conj().permute(2, 1, 0).resolve_conj().contiguous()  # (n_f, I, O)
    return torch.bmm(xb, wb).permute(1, 2, 0)  # (B, O, n_f)


def fft_conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """``F.conv1d(x, weight, bias, stride, padding)`` computed with real FFTs.

    x : (batch, in_channels, length); weight : (out_channels, in_channels, k); bias : (out_channels,).
    Returns (batch, out_channels, (length + 2 * padding - k) // stride + 1).

    The correlation ``y[t] = sum_j x[t + j] w[j]`` equals the circular correlation of ``x`` and ``w``
    zero-padded to any FFT length ``n >= length + 2 * padding``: for the output positions kept,
    ``t + j`` never wraps around.
    """
    if x.dim() != 3:
        raise ValueError(f"fft_conv1d expects x of shape (batch, channels, length), got {tuple(x.shape)}")
    if padding:
        x = F.pad(x, (padding, padding))
    length = x.shape[-1]
    k = weight.shape[-1]
    if length < k:
        raise ValueError(f"input length {length} (after padding) is shorter than the kernel ({k})")
    n_out = length - k + 1
    n = fast_size(length)
    xf = torch.fft.rfft(x, n=n)  # (B, I, n_f)
    wf = torch.fft.rfft(weight, n=n)  # (O, I, n_f)
    yf = _mix(xf, wf)
    if bias is not None:
        # a constant adds n * bias to the zero-frequency bin and nothing else: far cheaper than adding it to
        # every output sample afterwards
        # (in place on _mix's fresh output; neither mul's nor bmm's backward needs that output)
        yf[..., 0] += n * bias.to(yf.dtype)
    y = torch.fft.irfft(yf, n=n)[..., :n_out]
    if stride > 1:
        y = y[..., ::stride]
    return y


class FFTConv1d(nn.Conv1d):
    """``nn.Conv1d`` evaluated through the FFT (same parameters, same results to float rounding).

    Only ``dilation=1``, ``groups=1`` and zero padding given as an int or ``"valid"``/``"same"`` (with
    odd kernels for ``"same"`` as in ``nn.Conv1d``, which pads asymmetrically otherwise) are supported.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, bias: bool = True, device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         bias=bias, device=device, dtype=dtype)

    def _pads(self) -> tuple[int, int]:
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return 0, 0
            total = self.kernel_size[0] - 1  # "same" (stride 1 only, enforced by nn.Conv1d)
            return total // 2, total - total // 2
        return self.padding[0], self.padding[0]

    def forward(self, x: Tensor) -> Tensor:
        left, right = self._pads()
        if left or right:
            x = F.pad(x, (left, right))
        return fft_conv1d(x, self.weight, self.bias, stride=self.stride[0])

    @classmethod
    def from_conv(cls, conv: nn.Conv1d) -> "FFTConv1d":
        """An FFT convolution holding (a copy of) the parameters of ``conv``."""
        if conv.dilation[0] != 1 or conv.groups != 1 or conv.padding_mode != "zeros":
            raise ValueError("FFTConv1d supports only dilation=1, groups=1 and zero padding")
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], stride=conv.stride[0],
                  padding=conv.padding if isinstance(conv.padding, str) else conv.padding[0],
                  bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)
        new.load_state_dict(conv.state_dict())
        return new
