"""The matched filter as the reference detector: score a labelled G2Net-layout folder, measure it, and compare
a network with it on the same samples.

Gravitational-wave domain: :mod:`~astrocnn.gw.matched_filter` applied to samples from
:mod:`~astrocnn.gw.readers`, scored with the core's ROC measures (:mod:`astrocnn.core.roc`); the command
``astrocnn baseline gw``. :func:`paired_comparison` gives the AUC difference network - filter with its
paired bootstrap interval (:func:`astrocnn.core.roc.paired_bootstrap_auc_difference`).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from astrocnn.core import roc
from astrocnn.core.errors import InputError
from astrocnn.core.io import write_text_atomic
from astrocnn.gw.bank import read_bank
from astrocnn.gw.dataset import StrainSet
from astrocnn.gw.matched_filter import CoincidentSearch, TemplateBank
from astrocnn.gw.psd import folder_psd
from astrocnn.gw.readers import load_g2net_batch, read_g2net
from astrocnn.gw.simulate import network_psd
from astrocnn.gw.whitening import Whitener

log = logging.getLogger(__name__)

DEFAULT_SNR_BINS = (0.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 15.0, 20.0, math.inf)


def _psd_from(source: Any, alpha: float = 0.2, max_fit: int | None = 5000) -> tuple[np.ndarray, str]:
    if isinstance(source, np.ndarray):
        return source, "array"
    if isinstance(source, Whitener):
        return source.psd.numpy(), "whitener"
    if isinstance(source, str) and source == "design":
        return network_psd(), "design"
    path = Path(source)
    if path.suffix in (".h5", ".hdf5"):
        with StrainSet(path) as ds:
            return ds.whitening_psd, f"prepared:{path}"
    index = read_g2net(path)
    noise = np.nonzero(index.target == 0)[0][: max_fit]
    if noise.size == 0:
        raise InputError(path, "no noise-only (target 0) samples to estimate the PSD from")
    w = Whitener(alpha=alpha)
    for lo in range(0, noise.size, 512):
        w.partial_fit(load_g2net_batch([index.paths[i] for i in noise[lo: lo + 512]]))
    return w.psd.numpy(), f"noise-only samples of {path} ({noise.size})"


SCORE_COLUMNS = ("id", "target", "snr", "score")


def write_scores(path: str | os.PathLike, ids: Sequence[str], target: np.ndarray, snr: np.ndarray,
                 scores: np.ndarray) -> None:
    """Per-sample scores as CSV (``id,target,snr,score``), atomically: what :func:`paired_comparison` reads."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS)
    w.writerows([i, int(t), "" if not np.isfinite(r) else f"{r:.6g}", f"{s:.10g}"]
                for i, t, r, s in zip(ids, target, snr, scores))
    write_text_atomic(path, buf.getvalue())


def read_scores(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A per-sample scores CSV (:func:`write_scores`) as arrays ``id``, ``target``, ``snr``, ``score``."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc
    if rows and set(SCORE_COLUMNS) - set(rows[0]):
        raise InputError(path, f"not a scores file: columns {', '.join(rows[0])}, expected {', '.join(SCORE_COLUMNS)}")
    return {"id": np.array([r["id"] for r in rows], dtype=object),
            "target": np.array([int(r["target"]) for r in rows], dtype=np.int64),
            "snr": np.array([float(r["snr"]) if r["snr"] else math.nan for r in rows]),
            "score": np.array([float(r["score"]) for r in rows])}


def paired_comparison(ids: Sequence[str], scores: np.ndarray, reference: Mapping[str, np.ndarray],
                      n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """ROC AUC of a detector (``ids``, ``scores``: a network) minus that of ``reference`` (the matched
    filter's :func:`read_scores`) on the labelled samples both scored, matched by id, with the paired
    bootstrap interval (:func:`astrocnn.core.roc.paired_bootstrap_auc_difference`).

    Returns ``n``, ``n_positive``, ``auc_network``, ``auc_filter``, ``diff``, ``low``, ``high`` (95%), ``std``
    and ``frac_not_better`` (share of replicates where the network does not beat the filter).
    """
    mine = {str(i): float(s) for i, s in zip(ids, scores)}
    pick = [k for k, t in enumerate(reference["target"]) if t >= 0 and str(reference["id"][k]) in mine]
    if not pick:
        raise InputError(None, "the two detectors scored no labelled sample in common (ids differ)")
    y = np.asarray(reference["target"])[pick]
    a = np.array([mine[str(reference["id"][k])] for k in pick])
    d = roc.paired_bootstrap_auc_difference(y, a, np.asarray(reference["score"])[pick], n_boot=n_boot, seed=seed)
    return {"n": len(pick), "n_positive": int(y.sum()), "auc_network": d["auc_a"], "auc_filter": d["auc_b"],
            "diff": d["diff"], "low": d["low"], "high": d["high"], "std": d["std"],
            "frac_not_better": d["frac_not_better"]}


def _auc_by_snr(y: np.ndarray, scores: np.ndarray, snr: np.ndarray, snr_bins: Sequence[float], n_boot: int,
                seed: int) -> list[dict[str, Any]]:
    """Each SNR bin's positives against all negatives: AUC with a bootstrap interval (empty without SNRs)."""
    bins = []
    neg = scores[y == 0]
    if np.isfinite(snr[y == 1]).any():
        for a, b in zip(snr_bins[:-1], snr_bins[1:]):
            sel = (y == 1) & (snr >= a) & (snr < b)
            entry: dict[str, Any] = {"snr_low": a, "snr_high": b if math.isfinite(b) else None,
                                     "n_positive": int(sel.sum())}
            if sel.any() and neg.size:
                yy = np.r_[np.ones(sel.sum(), int), np.zeros(neg.size, int)]
                bb = roc.bootstrap_auc(yy, np.r_[scores[sel], neg], n_boot=min(n_boot, 300), seed=seed)
                entry.update(auc=bb["auc"], auc_low=bb["low"], auc_high=bb["high"])
            bins.append(entry)
    return bins


def baseline_metrics(
    data_dir: str | os.PathLike,
    psd_from: Any = None,
    out: str | os.PathLike | None = None,
    bank: TemplateBank | str | None = None,
    max_samples: int | None = None,
    snr_bins: Sequence[float] = DEFAULT_SNR_BINS,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int | None = None,
    scores_out: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score the labelled samples of a G2Net-layout folder with the matched filter and measure it.

    ``psd_from``: a folder of TRAINING samples (G2Net layout; its noise-only samples give the PSD), a
    prepared strain set (.h5, its stored whitening PSD), a Whitener, an array (3, 2049), "design" (the
    simulator's PSD) or "data" (the label-free median PSD of ``data_dir``'s own samples,
    :func:`~astrocnn.gw.psd.folder_psd`: what ``astrocnn predict`` whitens a folder with by default). None
    estimates it from ``data_dir``'s own noise-only samples, which leaks the labels (it raised AUC by
    ~0.02-0.035 in the design notes) and is logged as a warning.

    Returns (and writes to ``out`` as JSON, atomically) ``roc_auc``, ``roc_auc_low``/``roc_auc_high`` (95%
    bootstrap), ``tpr_at_fpr_0.01``, ``auc_by_snr`` (each SNR bin's positives against all negatives).
    ``scores_out``: also the per-sample scores as CSV (:func:`write_scores`), for :func:`paired_comparison`.
    ``bank``: a :class:`TemplateBank`, "default" / None (252 templates), "dense" (the shipped stochastic bank)
    or a bank CSV (:func:`astrocnn.gw.bank.read_bank`). ``batch_size``: samples per correlation (default: as
    many as keep the product of samples and templates near 2,000, for memory).
    """
    t0 = time.perf_counter()
    if bank is None or isinstance(bank, (str, os.PathLike)):
        bank = read_bank(bank or "default")
    if batch_size is None:
        batch_size = max(1, min(8, 2048 // len(bank)))
    index = read_g2net(data_dir)
    keep = np.nonzero(index.target >= 0)[0]
    if keep.size == 0:
        raise InputError(data_dir, "no labelled samples (training_labels.csv)")
    if max_samples is not None:
        keep = keep[:max_samples]
    if psd_from is None:
        log.warning("PSD estimated from the evaluated set's own noise-only samples: this leaks labels")
        psd_from = data_dir
    if isinstance(psd_from, str) and psd_from == "data":
        est = folder_psd(index, Whitener())
        psd, psd_desc = est.psd, est.describe()
    else:
        psd, psd_desc = _psd_from(psd_from)
    search = CoincidentSearch(psd, bank)
    bank = search.bank
    y = index.target[keep].astype(int)
    scores = np.empty(keep.size)
    for lo in range(0, keep.size, 512):  # streamed: a large set never sits in memory
        part = keep[lo: lo + 512]
        scores[lo: lo + part.size] = search.scores(load_g2net_batch([index.paths[i] for i in part]), batch_size)
        log.info("matched filter: %d/%d samples", lo + part.size, keep.size)
    snr = index.snr[keep]
    boot = roc.bootstrap_auc(y, scores, n_boot=n_boot, seed=seed)
    result: dict[str, Any] = {
        "data_dir": str(data_dir),
        "n": int(keep.size),
        "n_positive": int(y.sum()),
        "roc_auc": boot["auc"],
        "roc_auc_low": boot["low"],
        "roc_auc_high": boot["high"],
        "roc_auc_std": boot["std"],
        "tpr_at_fpr_0.01": roc.tpr_at_fpr(y, scores, 0.01),
        "psd_from": psd_desc,
        "bank": bank.describe(),
    }
    result["auc_by_snr"] = _auc_by_snr(y, scores, snr, snr_bins, n_boot, seed)
    result["seconds"] = time.perf_counter() - t0
    if out is not None:
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    if scores_out is not None:
        write_scores(scores_out, [str(i) for i in index.ids[keep]], y, snr, scores)
    log.info("matched filter on %s: AUC %.4f [%.4f, %.4f] (n=%d)", data_dir, result["roc_auc"],
             result["roc_auc_low"], result["roc_auc_high"], result["n"])
    return result
