"""CNN vs matched filter on the same held-out simulated samples (default SNR distribution), compared paired.

    python scripts/gw_cnn_vs_mf.py --n-train 50000 --n-test 2000 --minutes 70 --out runs/gw50k

The recipe, step by step (each step is skipped when its output is already in OUT; delete it to redo it):

1. simulate the training set (seed 11) with noise of a PSD drawn per sample (``--train-noise varied``, so the
   network does not learn one noise curve) and the test set (seed 12; ``--test-noise design`` by default);
2. prepare the training set whitened by its own label-free PSD (``--train-psd data``: the median over its
   samples, the estimator ``astrocnn predict`` uses on new data; ``noise`` = the mean of its noise-only
   samples) and the test set by its own label-free PSD (``--test-psd data``, what predict does) or by the
   training set's (``training``);
3. train ``default_config("detect")`` (``DETECT_MODEL``, with sign flips, H1/L1 swaps and delays of up to 8
   samples) for a fixed wall-time budget (``RECIPE`` below);
4. evaluate it on the test set and run the matched filter on the same samples (with the test folder's own
   label-free PSD, ``--mf-psd data``, the footing the network stands on; ``training``: the prepared training
   set's PSD, right only when the training noise has the test noise's curve, i.e. ``--train-noise design``);
5. print both metrics and the paired AUC difference network - filter with its bootstrap interval
   (:func:`astrocnn.gw.baseline.paired_comparison`) as JSON, and write it to OUT/comparison.json.

Measured (2-core CPU): see docs/gravitational-waves.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from astrocnn.core.config import default_config
from astrocnn.core.io import write_text_atomic
from astrocnn.gw.baseline import baseline_metrics, paired_comparison, read_scores
from astrocnn.gw.prepare import prepare_g2net
from astrocnn.gw.simulate import simulate_g2net
from astrocnn.train import evaluate, predict_set, train

# on top of default_config("detect"): a wall-time budget instead of an epoch count, all data for training
RECIPE = dict(
    train={"max_epochs": 1000, "schedule": "cosine_time", "warmup_epochs": 0.5, "batch_size": 64, "lr": 1e-3,
           "patience": 1000, "progress_bar": False},
    data={"num_workers": 1, "test_fraction": 0.0, "val_fraction": 0.04},
)


def _data(args) -> None:
    R = args.out
    for name, n, seed, noise in (("train", args.n_train, 11, args.train_noise), ("test", args.n_test, 12, args.test_noise)):
        if not (R / f"{name}_raw" / "training_labels.csv").exists():
            simulate_g2net(n, seed, R / f"{name}_raw", workers=args.workers, noise=noise)
    if not (R / "train.h5").exists():
        prepare_g2net(R / "train_raw", R / "train.h5", workers=args.workers, psd=args.train_psd)
    if not (R / "test.h5").exists():
        if args.test_psd == "data":
            prepare_g2net(R / "test_raw", R / "test.h5", workers=args.workers, psd="data")
        else:
            prepare_g2net(R / "test_raw", R / "test.h5", whitener=R / "train.h5", workers=args.workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=40.0, help="training wall-time budget")
    ap.add_argument("--out", type=Path, default=Path("runs/gw_cnn_vs_mf"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-noise", choices=("design", "varied"), default="varied")
    ap.add_argument("--test-noise", choices=("design", "varied"), default="design")
    ap.add_argument("--train-psd", choices=("noise", "data"), default="data")
    ap.add_argument("--test-psd", choices=("data", "training"), default="data")
    ap.add_argument("--mf-psd", choices=("training", "data"), default="data",
                    help="data: the test folder's own label-free PSD (the network's footing); training: the prepared "
                         "training set's PSD (right only when the training noise is the test noise's curve)")
    ap.add_argument("--skip-mf", action="store_true", help="reuse OUT/baseline.json and OUT/baseline_scores.csv")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    R = args.out
    t0 = time.time()
    _data(args)
    logging.info("data ready in %.0f s", time.time() - t0)

    cfg = default_config("detect", train=dict(RECIPE["train"], max_minutes=args.minutes), data=RECIPE["data"])
    t1 = time.time()
    result = train("detect", R / "train.h5", R / "run", cfg)
    train_s = time.time() - t1
    cnn = evaluate(R / "run", R / "test.h5", out_dir=R / "eval")
    if not (args.skip_mf and (R / "baseline.json").exists() and (R / "baseline_scores.csv").exists()):
        baseline_metrics(R / "test_raw", psd_from=R / "train.h5" if args.mf_psd == "training" else "data",
                         out=R / "baseline.json", scores_out=R / "baseline_scores.csv")
    mf = json.loads((R / "baseline.json").read_text())
    net = predict_set(R / "run", R / "test.h5")
    paired = paired_comparison(net["id"], net["score"], read_scores(R / "baseline_scores.csv"))
    report = {
        "cnn_auc": cnn["roc_auc"], "cnn_auc_ci": [cnn.get("roc_auc_low"), cnn.get("roc_auc_high")],
        "mf_auc": mf["roc_auc"], "mf_auc_ci": [mf.get("roc_auc_low"), mf.get("roc_auc_high")],
        "auc_difference": paired["diff"], "auc_difference_ci": [paired["low"], paired["high"]],
        "ratio": cnn["roc_auc"] / mf["roc_auc"], "epochs": result.epochs, "train_minutes": train_s / 60,
        "n_train": args.n_train, "n_test": args.n_test, "settings": {k: str(v) for k, v in vars(args).items()},
        "paired": paired, "cnn": cnn, "mf": mf,
    }
    write_text_atomic(R / "comparison.json", json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
