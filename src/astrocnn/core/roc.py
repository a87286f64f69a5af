"""ROC curve, ROC AUC, TPR at a fixed FPR, bootstrap intervals and the paired comparison of two detectors;
pure numpy.

Ties between scores are handled like scikit-learn: tied scores form one ROC point, so a tie between a
positive and a negative counts one half in the AUC (the Mann-Whitney U statistic with mid-ranks). Core
layer: the detection task and the matched-filter baseline are scored with the same functions.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (drop unknown labels first)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    return y.astype(bool), s


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, thresholds decreasing, starting at (0, 0) with
    threshold +inf, as ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``. A sample is called
    positive when its score >= threshold."""
    y, s = _check(y_true, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC needs both classes (positives {n_pos}, negatives {n_neg})")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s_sorted))[0], s.size - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_tie]]
    return fpr, tpr, thresholds


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative) + 0.5 P(tie)."""
    y, s = _check(y_true, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes (positives {n_pos}, negatives {n_neg})")
    ranks = rankdata(s)  # mid-ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def tpr_at_fpr(y_true, scores, fpr: float = 0.01) -> float:
    """The highest true-positive rate of a ROC point whose false-positive rate is <= ``fpr`` (no
    interpolation between points, so it never claims more than a threshold achieves)."""
    f, t, _ = roc_curve(y_true, scores)
    return float(t[f <= fpr + 1e-12].max())


def bootstrap_auc(y_true, scores, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """ROC AUC with a percentile bootstrap interval.

    Positives and negatives are resampled separately (stratified), so every replicate has both classes in the
    original numbers. Returns ``auc``, ``low``, ``high`` (the central ``level`` interval) and ``std``.
    """
    y, s = _check(y_true, scores)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        raise ValueError(f"ROC AUC needs both classes (positives {pos.size}, negatives {neg.size})")
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(pos.size, bool), np.zeros(neg.size, bool)]
    aucs = np.empty(n_boot)
    for b in range(n_boot):
        sample = np.r_[pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]]
        ranks = rankdata(sample)
        aucs[b] = (ranks[labels].sum() - pos.size * (pos.size + 1) / 2.0) / (pos.size * neg.size)
    q = (1.0 - level) / 2.0
    return dict(auc=roc_auc(y, s), low=float(np.quantile(aucs, q)), high=float(np.quantile(aucs, 1 - q)),
                std=float(aucs.std(ddof=1)) if n_boot > 1 else 0.0)


def _auc_rows(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """AUC of each row: positives' scores ``pos`` (R, P) against negatives' ``neg`` (R, N), mid-ranks for ties."""
    ranks = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    return (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def paired_bootstrap_auc_difference(y_true, scores_a, scores_b, n_boot: int = 1000, seed: int = 0,
                                    level: float = 0.95, chunk: int = 200) -> dict[str, float]:
    """ROC AUC of detector ``a`` minus that of detector ``b`` on the SAME samples, with a paired bootstrap interval.

    Each replicate draws positives and negatives with replacement (stratified, in the original numbers, as
    :func:`bootstrap_auc`) and scores BOTH detectors on that one draw, so what they share (which samples are
    hard) cancels in the difference: the interval is that of the difference, far narrower than two separate
    intervals suggest when the detectors agree on most samples. Identical rankings give a zero-width interval.

    Returns ``diff`` (AUC_a - AUC_b on all samples), ``low`` and ``high`` (percentile interval of the
    replicates' differences at ``level``), ``std`` (their standard deviation), ``auc_a``, ``auc_b`` and
    ``frac_not_better`` (the share of replicates in which ``a`` does not beat ``b``: a one-sided bootstrap
    p-value of "a is better"). ``chunk`` replicates are ranked at a time (memory ~ chunk x samples).
    """
    y, a = _check(y_true, scores_a)
    _, b = _check(y_true, scores_b)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"ROC AUC needs both classes (positives {n_pos}, negatives {n_neg})")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    pos = np.flatnonzero(y)
    neg = np.flatnonzero(~y)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for lo in range(0, n_boot, chunk):
        m = min(chunk, n_boot - lo)
        ip = pos[rng.integers(0, n_pos, (m, n_pos))]
        ineg = neg[rng.integers(0, n_neg, (m, n_neg))]
        diffs[lo:lo + m] = _auc_rows(a[ip], a[ineg]) - _auc_rows(b[ip], b[ineg])
    q = (1.0 - level) / 2.0
    auc_a, auc_b = roc_auc(y, a), roc_auc(y, b)
    return dict(diff=auc_a - auc_b, low=float(np.quantile(diffs, q)), high=float(np.quantile(diffs, 1 - q)),
                std=float(diffs.std(ddof=1)) if n_boot > 1 else 0.0, auc_a=auc_a, auc_b=auc_b,
                frac_not_better=float(np.mean(diffs <= 0.0)))
