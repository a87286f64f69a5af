"""From a network's raw outputs to answers, in numpy only: class probabilities, a redshift with its error and
confidence, a second solution, and the warning bits.

Zoo layer. Numpy only (no torch), so a model runs the same way through PyTorch and through ONNX Runtime
(:mod:`astrocnn.zoo.onnx`): both paths produce the raw outputs, this module decodes them. The binned
redshift decoding gives the same ``z`` and ``z_conf`` as :class:`astrocnn.tasks.redshift.RedshiftBins`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astrocnn.spectra.zwarn import ZWarn

#: speed of light, km/s
C_KMS = 299792.458


@dataclass(frozen=True)
class Bins:
    """A binned log(1+z) head: ``n`` bins of ``width`` in ``y = log(1 + z)`` from ``y_lo``."""

    y_lo: float
    width: float
    n: int

    @classmethod
    def from_task(cls, task: dict) -> "Bins":
        """From a run configuration's ``task`` section (``z_min``, ``z_max``, ``n_bins``)."""
        y_lo, y_hi = float(np.log1p(task["z_min"])), float(np.log1p(task["z_max"]))
        return cls(y_lo=y_lo, width=(y_hi - y_lo) / int(task["n_bins"]), n=int(task["n_bins"]))


def softmax_log(log_prob: np.ndarray) -> np.ndarray:
    """Probabilities from log-probabilities (n, k), renormalised in float64."""
    lp = np.asarray(log_prob, dtype=np.float64)
    p = np.exp(lp - lp.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _window_sum(cum: np.ndarray, centre: np.ndarray, half: int, n: int) -> np.ndarray:
    lo = np.clip(centre - half, 0, n)
    hi = np.clip(centre + half + 1, 0, n)
    rows = np.arange(cum.shape[0])
    return cum[rows, hi] - cum[rows, lo]


def redshift(log_prob: np.ndarray, offset: np.ndarray, bins: Bins, *, far_kms: float = 6000.0,
             err_bins: int = 5) -> dict[str, np.ndarray]:
    """Decode a binned redshift head's outputs (n, bins) each.

    Returns ``z`` (the most probable bin plus its offset, as the task decodes it), ``z_conf`` (probability
    within +-2 bins of it), ``z_err`` (the RMS distance from it of the bins' answers within +-``err_bins``, weighted
    by their probabilities, in z), ``p_second`` (the largest probability within +-2 bins of any bin more
    than ``far_kms`` from the answer: a second solution), ``z_second`` and ``best_bin``.
    """
    log_prob = np.asarray(log_prob, dtype=np.float32)
    offset = np.asarray(offset, dtype=np.float32)
    n_rows, n = log_prob.shape
    rows = np.arange(n_rows)
    prob = np.exp(log_prob)  # float32, as the task's decoding
    best = prob.argmax(axis=1)
    off = np.clip(offset[rows, best], -3.0, 3.0)
    y = bins.y_lo + (best.astype(np.float64) + 0.5 + off.astype(np.float64)) * bins.width
    cum = np.concatenate([np.zeros((n_rows, 1), np.float32), np.cumsum(prob, axis=1, dtype=np.float32)], axis=1)
    z_conf = _window_sum(cum, best, 2, n)
    # the answer each bin would give, and their spread around the chosen one
    centres = np.arange(n, dtype=np.float64)[None, :] + 0.5 + np.clip(offset, -3.0, 3.0).astype(np.float64)
    y_bins = bins.y_lo + centres * bins.width
    near = np.abs(np.arange(n)[None, :] - best[:, None]) <= err_bins
    w = np.where(near, prob.astype(np.float64), 0.0)
    sigma_y = np.sqrt((w * (y_bins - y[:, None]) ** 2).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-30))
    sigma_y = np.maximum(sigma_y, 0.1 * bins.width)  # never below a tenth of a bin: the offset's own precision
    # a second solution: probability mass around any bin farther than far_kms from the answer
    # (only the probability of bins farther than far_kms from the answer counts: the answer's own wings are not
    # a second solution)
    far = np.abs(np.arange(n)[None, :] - best[:, None]) * bins.width * C_KMS > far_kms
    far_cum = np.concatenate([np.zeros((n_rows, 1), np.float64), np.cumsum(np.where(far, prob, 0.0), axis=1)], axis=1)
    j = np.arange(n)
    around = far_cum[:, np.clip(j + 3, 0, n)] - far_cum[:, np.clip(j - 2, 0, n)]  # within +-2 bins of each bin
    second = around.argmax(axis=1)
    z = np.expm1(y)
    return {"z": z, "z_conf": z_conf.astype(np.float64), "z_err": (1.0 + z) * sigma_y,
            "p_second": around[rows, second].astype(np.float64),
            "z_second": np.expm1(bins.y_lo + (second + 0.5) * bins.width), "best_bin": best}


@dataclass(frozen=True)
class Thresholds:
    """When a model raises its warning bits (chosen on a held-out simulated survey; see its card)."""

    min_class_prob: float = 0.9
    min_z_conf: float = 0.5
    max_second_ratio: float = 0.3
    min_snr: float = 0.0
    min_coverage: float = 0.6
    edge_bins: int = 1

    @classmethod
    def from_dict(cls, d: dict) -> "Thresholds":
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in d.items()})


def zwarn(class_prob: np.ndarray, z: dict[str, np.ndarray], snr: np.ndarray, coverage: np.ndarray,
          bins_n: np.ndarray, t: Thresholds) -> np.ndarray:
    """The :class:`~astrocnn.spectra.zwarn.ZWarn` bits of each answer (int64).

    class_prob : probability of the class given; z : :func:`redshift`'s output for that class's head;
    snr, coverage : of the prepared spectrum; bins_n : number of bins of the head each answer came from.
    """
    bits = np.zeros(len(class_prob), dtype=np.int64)
    bits |= np.where(class_prob < t.min_class_prob, int(ZWarn.LOW_CLASS_PROB), 0)
    bits |= np.where(z["z_conf"] < t.min_z_conf, int(ZWarn.LOW_Z_CONF), 0)
    ratio = z["p_second"] / np.maximum(z["z_conf"], 1e-12)
    bits |= np.where(ratio > t.max_second_ratio, int(ZWarn.SMALL_DELTA_CHI2), 0)
    bits |= np.where(np.asarray(snr) < t.min_snr, int(ZWarn.LOW_SNR), 0)
    bits |= np.where(np.asarray(coverage) < t.min_coverage, int(ZWarn.LITTLE_COVERAGE), 0)
    # the upper edge only: the lower edge of a range that starts below z = 0 is where stars belong
    bits |= np.where(z["best_bin"] >= np.asarray(bins_n) - t.edge_bins, int(ZWarn.Z_FITLIMIT), 0)
    return bits
