"""How a ready-made spectra model scores, and where its warning bits should sit.

Zoo layer. :func:`score_model` compares a model's answers on a labelled prepared set with the truth: per
class, per redshift bin, per S/N bin, for the answers with ``zwarn == 0`` and for all; :func:`choose_thresholds`
sets the warning thresholds on a calibration set (never the held-out one) so that the flag does not buy its
score by flagging everything; :func:`flag_curve` gives purity and completeness against the fraction flagged;
:func:`real_files` puts the model beside the pipeline's answers on real files.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrocnn.core.metrics import dv_kms
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.zoo.decode import Thresholds, zwarn

#: |dv| below which a redshift is right, per class (quasars: the paper's 6000 km/s)
DV_LIMITS_KMS = {"qso": 6000.0, "galaxy": 1000.0, "star": 1000.0}
Z_BINS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 6.0)
SNR_BINS = (0.0, 1.0, 2.0, 3.0, 5.0, 10.0, np.inf)
#: the class-probability threshold never exceeds this (see :func:`choose_thresholds`)
MAX_CLASS_PROB_THRESHOLD = 0.9


def truth_of(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The labels of a prepared set: ``id``, ``class`` (names), ``z``, ``snr`` and, for simulated sets, the
    instrument and BAL flags."""
    with SpectraSet(path) as s:
        names = np.asarray(list(s.class_names) + [""], dtype=object)
        truth = s.truth()
        return {"id": s.ids, "class": names[s.cls], "z": s.z.astype(np.float64), "snr": s.snr.astype(np.float64),
                "instrument": truth.get("instrument", np.full(len(s), "", dtype=object)),
                "bal": truth.get("bal", np.zeros(len(s), bool)).astype(bool)}


def _rate(x: np.ndarray) -> float:
    return float(np.mean(x)) if x.size else float("nan")


def _class_scores(name: str, pred: dict, truth: dict, sel: np.ndarray) -> dict[str, Any]:
    limit = DV_LIMITS_KMS.get(name, 1000.0)
    adv = np.abs(dv_kms(pred["z"][sel], truth["z"][sel]))
    good = adv < limit
    clean = pred["zwarn"][sel] == 0
    return {"n": int(sel.sum()), "completeness": _rate(pred["class"][sel] == name),
            f"frac_dv_lt_{limit:.0f}": _rate(good), "median_abs_dv_kms": float(np.median(adv)) if adv.size else np.nan,
            "frac_zwarn_0": _rate(clean), f"frac_dv_lt_{limit:.0f}_zwarn_0": _rate(good[clean]),
            "catastrophic_in_zwarn_0": _rate(~good[clean])}


def _binned(name: str, pred: dict, truth: dict, sel: np.ndarray, key: str, edges: Sequence[float]) -> list[dict]:
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        b = sel & (truth[key] >= lo) & (truth[key] < hi)
        if b.any():
            out.append({f"{key}_lo": lo, f"{key}_hi": None if not np.isfinite(hi) else hi, **_class_scores(name, pred, truth, b)})
    return out


def score_model(pred: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """Scores of answers ``pred`` (``class``, ``z``, ``zwarn``, as a model's table gives them, aligned with
    ``truth``) per true class, per redshift bin (quasars) and per S/N bin (each class), plus the purity of
    each predicted class."""
    out: dict[str, Any] = {"n": int(truth["z"].size), "accuracy": _rate(pred["class"] == truth["class"])}
    for name in ("qso", "galaxy", "star"):
        sel = truth["class"] == name
        if not sel.any():
            continue
        out[name] = {**_class_scores(name, pred, truth, sel),
                     "purity": _rate(truth["class"][pred["class"] == name] == name),
                     "per_snr": _binned(name, pred, truth, sel, "snr", SNR_BINS)}
        if name == "qso":
            out[name]["per_z"] = _binned(name, pred, truth, sel, "z", Z_BINS)
            for flag, what in (("bal", "bal"), ("instrument", "sdss")):
                part = sel & ((truth[flag] == what) if flag == "instrument" else truth[flag])
                if part.any():
                    out[name][f"{what}_quasars"] = _class_scores(name, pred, truth, part)
    return out


def flag_curve(pred: dict, truth: dict, raw: dict, name: str = "qso", steps: int = 41) -> dict[str, list[float]]:
    """Purity (right answers among those kept) and completeness (kept right answers among all) of one class's
    redshifts as the z_conf threshold sweeps from 0 to 1: how survey teams choose a confidence cut."""
    sel = truth["class"] == name
    good = np.abs(dv_kms(pred["z"][sel], truth["z"][sel])) < DV_LIMITS_KMS[name]
    conf = raw["z_conf"][sel]
    cuts = np.linspace(0.0, 1.0, steps)
    kept = [conf >= c for c in cuts]
    return {"z_conf_cut": cuts.tolist(), "fraction_flagged": [float(1 - k.mean()) for k in kept],
            "purity": [_rate(good[k]) for k in kept], "completeness": [float((good & k).sum() / max(1, sel.sum()))
                                                                       for k in kept]}


def plot_flag_curves(curves: dict[str, dict[str, list[float]]], operating: dict[str, dict[str, float]],
                     path: str | os.PathLike) -> None:
    """Purity and completeness of each class's redshifts against the fraction of that class flagged, as the
    z_conf cut sweeps (lines, from :func:`flag_curve`), with the model's own ``zwarn == 0`` choice marked
    (``operating``: per class ``fraction_flagged``, ``purity``, ``completeness``)."""
    from astrocnn.core.plots import plt, save  # matplotlib only when a figure is drawn
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.6), squeeze=False)
    for ax, (name, c) in zip(axes[0], curves.items()):
        ax.plot(c["fraction_flagged"], c["purity"], "-", color="C0", label="purity (right among kept)")
        ax.plot(c["fraction_flagged"], c["completeness"], "-", color="C1", label="completeness (right and kept)")
        op = operating.get(name)
        if op:
            ax.plot([op["fraction_flagged"]], [op["purity"]], "o", color="C0")
            ax.plot([op["fraction_flagged"]], [op["completeness"]], "o", color="C1")
            ax.axvline(op["fraction_flagged"], color="0.6", lw=0.8, ls="--")
        ax.set_title(f"{name}: |dv| < {DV_LIMITS_KMS[name]:.0f} km/s")
        ax.set_xlabel("fraction flagged")
        ax.set_xlim(0, min(1.0, max(0.3, 1.5 * (op or {}).get("fraction_flagged", 0.2))))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction")
    axes[0][0].legend(loc="lower right", fontsize=8, title="lines: z_conf cut; dots: zwarn == 0", title_fontsize=8)
    save(fig, path)


def flag_curves(raw: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> dict[str, Any]:
    """:func:`flag_curve` for every class present, and each class's ``zwarn == 0`` operating point."""
    curves, operating = {}, {}
    for name, limit in DV_LIMITS_KMS.items():
        sel = truth["class"] == name
        if sel.sum() < 2:
            continue
        curves[name] = flag_curve(raw, truth, raw, name)
        good = np.abs(dv_kms(raw["z"][sel], truth["z"][sel])) < limit
        kept = raw["zwarn"][sel] == 0
        operating[name] = {"fraction_flagged": float(1 - kept.mean()), "purity": _rate(good[kept]),
                           "completeness": float((good & kept).sum() / sel.sum())}
    return {"curves": curves, "operating": operating}


def choose_thresholds(raw: dict[str, np.ndarray], truth: dict[str, np.ndarray], base: Thresholds, *,
                      quantile: float = 0.01) -> tuple[dict[str, Thresholds], dict]:
    """Warning thresholds per class, from the right answers on a calibration survey: an answer is flagged
    when its class probability, redshift confidence or S/N is lower than that of all but ``quantile`` of the
    right answers of its class (the class probability's threshold at most 0.9), or its second solution
    stronger. An outlier test, not a fit to what the
    simulation gets wrong: a simulation is kinder than the sky, and a real spectrum unlike any simulated one
    shows up as an answer unlike the simulated right ones. ``raw`` holds the decoded answers with ``class``,
    ``z``, ``p_class``, ``z_conf``, ``p_second``, ``snr``. Returns ``{class: Thresholds}`` and, per class, the
    share with ``zwarn == 0`` and the catastrophic share among them on this survey."""
    chosen, achieved = {}, {}
    for name, limit in DV_LIMITS_KMS.items():
        sel = truth["class"] == name
        right = sel & (raw["class"] == name) & (np.abs(dv_kms(raw["z"], truth["z"])) < limit)
        if right.sum() < 20:
            continue
        ratio = raw["p_second"] / np.maximum(raw["z_conf"], 1e-12)
        # the classifier's probabilities crowd at 1, where a quantile would flag noise in the last digits
        t = replace(base, min_class_prob=min(MAX_CLASS_PROB_THRESHOLD, float(np.quantile(raw["p_class"][right], quantile))),
                    min_z_conf=float(np.quantile(raw["z_conf"][right], quantile)),
                    max_second_ratio=float(np.quantile(ratio[right], 1 - quantile)),
                    min_snr=float(np.quantile(raw["snr"][right], quantile)))
        chosen[name] = t
        mine = sel & (raw["class"] == name)
        w = zwarn(raw["p_class"][mine], {k: raw[k][mine] for k in ("z_conf", "p_second", "best_bin")},
                  raw["snr"][mine], raw["coverage"][mine], raw["n_bins"][mine], t)
        good = np.abs(dv_kms(raw["z"][mine], truth["z"][mine])) < limit
        achieved[name] = {"frac_zwarn_0": _rate(w == 0), "catastrophic_in_zwarn_0": _rate(~good[w == 0])}
    return chosen, achieved


def z_err_scale(z: np.ndarray, z_err: np.ndarray, z_true: np.ndarray, limit_kms: float = 6000.0) -> float:
    """The factor that makes ``z_err`` a 1-sigma error on right answers: the median of |dz| / z_err over them,
    divided by the Gaussian's 0.6745."""
    good = np.abs(dv_kms(z, z_true)) < limit_kms
    r = np.abs(z - z_true)[good] / np.maximum(z_err[good], 1e-12)
    return float(np.median(r) / 0.6745) if r.size else 1.0


def real_files(table, index_csv: str | os.PathLike | None) -> list[dict[str, Any]]:
    """The model's answers on real files beside the pipeline's (from an ``index.csv`` with columns ``file``,
    ``cls``, ``z``, as ``shared/data/sdss`` has), one dict per file."""
    truth = {}
    if index_csv is not None and Path(index_csv).exists():
        with open(index_csv, newline="") as fh:
            truth = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    rows = []
    for r in table:
        t = truth.get(Path(str(r["source"])).name, {})
        z_pipe = float(t["z"]) if t.get("z") else np.nan
        dv = float(dv_kms(float(r["z"]), z_pipe)) if np.isfinite(z_pipe) and np.isfinite(r["z"]) else np.nan
        rows.append({"file": Path(str(r["source"])).name, "pipeline_class": (t.get("cls") or "").lower(),
                     "pipeline_z": z_pipe, "class": str(r["class"]), "p_class": float(max(r["p_qso"], r["p_galaxy"], r["p_star"])),
                     "z": float(r["z"]), "z_err": float(r["z_err"]), "z_conf": float(r["z_conf"]), "zwarn": int(r["zwarn"]),
                     "dv_kms": dv, "error": str(r["error"])})
    return rows
