"""Output heads: what the network's last layer computes from the feature vector.

Core layer (the models know no domain and no task; the tasks choose their head).

- :class:`ScalarHead` : one linear output: the paper's redshift head (trained with MSE) and the
  gravitational-wave detector's logit (trained with binary cross-entropy).
- :class:`ClassificationHead` : the paper's classifier, ``n_classes`` outputs through ``LogSoftmax``.
- :class:`ClassAndBinsHead` : both on the same features: class log-probabilities and the binned redshift
  head's two outputs, for networks that give a class and a redshift at once.
- :class:`BinnedRegressionHead` : our addition for redshifts: log-probabilities over fine bins of the
  target (trained with cross-entropy) plus, per bin, the offset of the target inside that bin (trained
  with a regression loss on the true bin only). Deciding *which* bin is a classification, which learns the
  line identity far faster than a single MSE output; the offset brings the answer back below the bin width.
"""
from __future__ import annotations

import torch.nn as nn
from torch import Tensor


class ScalarHead(nn.Module):
    """``(batch, features) -> (batch,)``: one linear output."""

    def __init__(self, features: int):
        super().__init__()
        self.linear = nn.Linear(features, 1)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h)[:, 0]


class ClassificationHead(nn.Module):
    """``(batch, features) -> (batch, n_classes)`` log-probabilities."""

    def __init__(self, features: int, n_classes: int):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.linear = nn.Linear(features, n_classes)
        self.log_softmax = nn.LogSoftmax(dim=-1)

    def forward(self, h: Tensor) -> Tensor:
        return self.log_softmax(self.linear(h))


class BinnedRegressionHead(nn.Module):
    """``(batch, features) -> (log_prob (batch, n_bins), offset (batch, n_bins))``.

    ``offset[:, j]`` is the predicted position of the target inside bin ``j`` in units of the bin width,
    relative to the bin centre (so -0.5 .. 0.5 for a target inside the bin).
    """

    def __init__(self, features: int, n_bins: int):
        super().__init__()
        if n_bins < 2:
            raise ValueError(f"a binned head needs at least 2 bins, got {n_bins}")
        self.n_bins = n_bins
        self.logits = nn.Linear(features, n_bins)
        self.offset = nn.Linear(features, n_bins)
        self.log_softmax = nn.LogSoftmax(dim=-1)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.log_softmax(self.logits(h)), self.offset(h)


class ClassAndBinsHead(nn.Module):
    """``(batch, features) -> (class log_prob (batch, n_classes), z log_prob (batch, n_bins), offset (batch, n_bins))``:
    a :class:`ClassificationHead` and a :class:`BinnedRegressionHead` side by side."""

    def __init__(self, features: int, n_classes: int, n_bins: int):
        super().__init__()
        self.classes = ClassificationHead(features, n_classes)
        self.bins = BinnedRegressionHead(features, n_bins)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        log_prob, offset = self.bins(h)
        return self.classes(h), log_prob, offset
