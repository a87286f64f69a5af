"""Which design for the ready-made `sdss` model: one network with two heads, or a classifier followed by
per-class redshift networks? Trains both on the same simulated survey with the same epoch budget and scores
the answers a user would get (the class, and the redshift of the class given) on a held-out survey.

    python scripts/sdss_model_experiments.py --train runs/zoo/mix40k_s101.h5 --heldout runs/zoo/mix10k_s102.h5 \
        --out runs/zoo/design --epochs 8

Design A: classify (qso, galaxy, star) + redshift on quasars (0 < z < 6) + redshift on galaxies and stars
(-0.005 < z < 1.5). Design B: classify_redshift (one network, class head + binned redshift head over
-0.005 < z < 6). Results go to OUT/design.json (see docs/training-experiments.md).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from astrocnn.core.config import default_config
from astrocnn.core.metrics import dv_kms
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.train import predict_set, train

LIMITS = {"qso": 6000.0, "galaxy": 1000.0, "star": 1000.0}
CLASSES = ["qso", "galaxy", "star"]
LOWZ = {"classes": ["galaxy", "star"], "z_min": -0.005, "z_max": 1.5}


def _train(task, data, out, epochs, **task_cfg):
    cfg = default_config(task, task=task_cfg, train={"max_epochs": epochs, "patience": epochs, "progress_bar": False,
                                                     "threads": 1})
    t0 = time.time()
    train(task, data, out, cfg, force=True)
    return time.time() - t0


def _score(name: str, cls_pred: np.ndarray, z_pred: np.ndarray, held: SpectraSet) -> dict:
    """The user's view: class right, and the redshift reported for the predicted class within the class's limit."""
    names = np.asarray(held.class_names, dtype=object)
    true = names[held.cls]
    out = {"design": name, "accuracy": float(np.mean(cls_pred == true)), "n": int(true.size)}
    for c in CLASSES:
        sel = true == c
        dv = np.abs(dv_kms(z_pred[sel], held.z[sel]))
        out[c] = {"n": int(sel.sum()), "class_completeness": float(np.mean(cls_pred[sel] == c)),
                  f"frac_dv_lt_{LIMITS[c]:.0f}": float(np.mean(dv < LIMITS[c])),
                  "median_abs_dv_kms": float(np.median(dv))}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--heldout", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--designs", default="A,B")
    args = p.parse_args(argv)
    held = SpectraSet(args.heldout)
    results, times = [], {}
    if "A" in args.designs:
        times["A_classify"] = _train("classify", args.train, args.out / "A_classify", args.epochs, classes=CLASSES)
        times["A_qso"] = _train("redshift", args.train, args.out / "A_qso", args.epochs)
        times["A_lowz"] = _train("redshift", args.train, args.out / "A_lowz", args.epochs, **LOWZ)
        c = predict_set(args.out / "A_classify", args.heldout)
        zq = predict_set(args.out / "A_qso", args.heldout)["z"]
        zl = predict_set(args.out / "A_lowz", args.heldout)["z"]
        cls = np.asarray(c["class"], dtype=object)
        results.append(_score("A", cls, np.where(cls == "qso", zq, zl), held))
    if "B" in args.designs:
        times["B"] = _train("classify_redshift", args.train, args.out / "B", args.epochs)
        b = predict_set(args.out / "B", args.heldout)
        results.append(_score("B", np.asarray(b["class"], dtype=object), b["z"], held))
    doc = {"train": str(args.train), "heldout": str(args.heldout), "epochs": args.epochs, "train_seconds": times,
           "results": results}
    (args.out / "design.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
