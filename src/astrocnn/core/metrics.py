"""Scores of predictions: redshifts, classes, detections. Plain numpy in, JSON-ready dicts out.

Core layer: every task scores with these, and the baselines (template fitting, the matched filter) with the
same functions, so the numbers compare.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from astrocnn.core.roc import bootstrap_auc, roc_auc, tpr_at_fpr

#: Speed of light, km/s.
C_KMS = 299792.458
#: Default redshift bin edges for per-bin scores.
DEFAULT_Z_BINS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.5)
#: Normalised median absolute deviation scale (Gaussian sigma from the MAD).
NMAD_SCALE = 1.4826


def dv_kms(z_pred: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Velocity error ``c (z_pred - z_true) / (1 + z_true)`` in km/s."""
    z_pred = np.asarray(z_pred, dtype=np.float64)
    z_true = np.asarray(z_true, dtype=np.float64)
    return C_KMS * (z_pred - z_true) / (1.0 + z_true)


def _redshift_scores(z_pred: np.ndarray, z_true: np.ndarray) -> dict[str, float | int]:
    n = int(z_true.size)
    if n == 0:
        return {"n": 0, "frac_dv_lt_6000": float("nan"), "frac_dv_lt_12000": float("nan"),
                "median_abs_dv_kms": float("nan"), "nmad": float("nan"), "bias": float("nan")}
    rel = (z_pred - z_true) / (1.0 + z_true)
    adv = np.abs(C_KMS * rel)
    med = float(np.median(rel))
    return {
        "n": n,
        "frac_dv_lt_6000": float(np.mean(adv < 6000.0)),
        "frac_dv_lt_12000": float(np.mean(adv < 12000.0)),
        "median_abs_dv_kms": float(np.median(adv)),
        "nmad": float(NMAD_SCALE * np.median(np.abs(rel - med))),
        "bias": med,
    }


def redshift_metrics(z_pred: np.ndarray, z_true: np.ndarray, bins: Sequence[float] = DEFAULT_Z_BINS) -> dict:
    """Redshift scores overall and per bin of true redshift.

    ``n``; ``frac_dv_lt_6000`` and ``frac_dv_lt_12000`` (fraction with |c dz/(1+z)| below 6000 / 12000 km/s);
    ``median_abs_dv_kms``; ``nmad`` = 1.4826 median|dz/(1+z) - median(dz/(1+z))|; ``bias`` = median dz/(1+z).
    ``per_bin`` holds the same for each ``[lo, hi)`` bin of true z (the last bin includes ``hi``), as a list of
    dicts with ``z_lo`` and ``z_hi``. Pairs with a non-finite value are left out (and counted in ``n_invalid``).
    """
    z_pred = np.asarray(z_pred, dtype=np.float64).ravel()
    z_true = np.asarray(z_true, dtype=np.float64).ravel()
    if z_pred.shape != z_true.shape:
        raise ValueError(f"z_pred has {z_pred.size} values, z_true has {z_true.size}")
    ok = np.isfinite(z_pred) & np.isfinite(z_true)
    out = _redshift_scores(z_pred[ok], z_true[ok])
    out["n_invalid"] = int((~ok).sum())
    edges = np.asarray(bins, dtype=np.float64)
    per_bin = []
    zp, zt = z_pred[ok], z_true[ok]
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        sel = (zt >= lo) & ((zt <= hi) if last else (zt < hi))
        per_bin.append({"z_lo": float(lo), "z_hi": float(hi), **_redshift_scores(zp[sel], zt[sel])})
    out["per_bin"] = per_bin
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts; rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    ok = (y_true >= 0) & (y_true < n_classes) & (y_pred >= 0) & (y_pred < n_classes)
    return np.bincount(y_true[ok] * n_classes + y_pred[ok], minlength=n_classes**2).reshape(n_classes, n_classes)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> dict:
    """Classification scores.

    ``n``; ``accuracy``; ``confusion`` (``{"classes": names, "matrix": rows true, columns predicted}``);
    per-class ``completeness`` (recall: correct / true members) and ``purity`` (precision: correct /
    predicted members), NaN where a class has no true / predicted members.
    """
    names = list(class_names)
    k = len(names)
    cm = confusion_matrix(y_true, y_pred, k)
    n = int(cm.sum())
    diag = np.diag(cm).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        completeness = diag / cm.sum(axis=1)
        purity = diag / cm.sum(axis=0)
    return {
        "n": n,
        "accuracy": float(diag.sum() / n) if n else float("nan"),
        "confusion": {"classes": names, "matrix": cm.tolist()},
        "completeness": {c: float(v) for c, v in zip(names, completeness)},
        "purity": {c: float(v) for c, v in zip(names, purity)},
    }


def _snr_bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}"


def detection_metrics(label: np.ndarray, score: np.ndarray, snr: np.ndarray | None = None,
                      snr_bins: Sequence[float] = (), n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Scores of a detector: ``n``, ``n_signal``, ``n_noise``, ``roc_auc`` (NaN without both classes), with
    ``n_boot`` > 0 its stratified bootstrap 95% interval ``roc_auc_low`` / ``roc_auc_high``, ``tpr_at_fpr_0.01``
    and, where ``snr`` of the positives is known, ``per_snr_bin``: for each bin ``[lo, hi)`` of
    ``snr_bins`` (the last open-ended) the AUC of the positives in the bin against ALL negatives.
    """
    y = np.asarray(label).astype(np.int64) == 1
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    out: dict[str, Any] = {"n": int(y.size), "n_signal": n_pos, "n_noise": n_neg}
    both = n_pos > 0 and n_neg > 0
    out["roc_auc"] = roc_auc(y, s) if both else float("nan")
    if n_boot > 0:
        b = bootstrap_auc(y, s, n_boot=n_boot, seed=seed) if both else {"low": float("nan"), "high": float("nan")}
        out["roc_auc_low"], out["roc_auc_high"] = b["low"], b["high"]
    out["tpr_at_fpr_0.01"] = tpr_at_fpr(y, s, 0.01) if both else float("nan")
    if snr is not None and len(snr_bins) and n_neg > 0:
        snr = np.asarray(snr, dtype=np.float64)
        edges = list(snr_bins) + [math.inf]
        per = []
        for lo, hi in zip(edges[:-1], edges[1:]):
            in_bin = y & (snr >= lo) & (snr < hi)
            k = int(in_bin.sum())
            if k == 0:
                continue
            keep = in_bin | ~y
            per.append({"snr": _snr_bin_label(lo, hi), "snr_lo": lo, "snr_hi": hi if math.isfinite(hi) else None,
                        "n_signal": k, "roc_auc": roc_auc(y[keep], s[keep])})
        if per:
            out["per_snr_bin"] = per
    return out
