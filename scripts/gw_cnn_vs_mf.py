"""CNN vs matched filter on the same held-out simulated samples (default SNR distribution).

    python scripts/gw_cnn_vs_mf.py --n-train 50000 --n-test 2000 --minutes 40 --out runs/gw50k

Simulates (seeds 11 and 12) and prepares the sets unless they already exist in OUT, trains the detector with
the default detection config (``astrocnn.core.config.DETECT_MODEL`` plus the augmentation below) for a fixed
wall-time budget, evaluates it on the test set, runs the template-bank matched filter on the same test
samples (its PSD from the training set: no leak), and prints both metrics and their ratio as JSON.

Measured (2-core CPU): see README "Gravitational waves".
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from astrocnn.core.config import default_config
from astrocnn.gw.baseline import baseline_metrics
from astrocnn.gw.simulate import simulate_g2net
from astrocnn.gw.prepare import prepare_g2net
from astrocnn.train import evaluate, train

# the recipe the README's numbers come from: on top of default_config("detect")
RECIPE = dict(
    train={"max_epochs": 1000, "schedule": "cosine_time", "warmup_epochs": 0.5, "batch_size": 64, "lr": 1e-3,
           "patience": 1000, "progress_bar": False},
    data={"num_workers": 1, "test_fraction": 0.0, "val_fraction": 0.04,
          "aug_flip": True, "aug_swap": True, "aug_delay": 8},
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=40.0, help="training wall-time budget")
    ap.add_argument("--out", type=Path, default=Path("runs/gw_cnn_vs_mf"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-mf", action="store_true", help="reuse OUT/baseline.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    R = args.out
    t0 = time.time()
    for name, n, seed in (("train", args.n_train, 11), ("test", args.n_test, 12)):
        if not (R / f"{name}_raw" / "training_labels.csv").exists():
            simulate_g2net(n, seed, R / f"{name}_raw", workers=args.workers)
    if not (R / "train.h5").exists():
        prepare_g2net(R / "train_raw", R / "train.h5", workers=args.workers)
    if not (R / "test.h5").exists():
        prepare_g2net(R / "test_raw", R / "test.h5", whitener=R / "train.h5", workers=args.workers)
    logging.info("data ready in %.0f s", time.time() - t0)

    train_section = dict(RECIPE["train"], max_minutes=args.minutes)
    cfg = default_config("detect", train=train_section, data=RECIPE["data"])
    t1 = time.time()
    result = train("detect", R / "train.h5", R / "run", cfg)
    train_s = time.time() - t1
    cnn = evaluate(R / "run", R / "test.h5", out_dir=R / "eval")
    if args.skip_mf and (R / "baseline.json").exists():
        mf = json.loads((R / "baseline.json").read_text())
    else:
        mf = baseline_metrics(R / "test_raw", psd_from=R / "train.h5", out=R / "baseline.json")
    print(json.dumps({
        "cnn_auc": cnn["roc_auc"], "cnn_auc_ci": [cnn.get("roc_auc_low"), cnn.get("roc_auc_high")], "mf_auc": mf["roc_auc"],
        "mf_auc_ci": [mf.get("roc_auc_low"), mf.get("roc_auc_high")], "ratio": cnn["roc_auc"] / mf["roc_auc"],
        "epochs": result.epochs, "train_minutes": train_s / 60, "n_train": args.n_train, "n_test": args.n_test,
        "cnn": cnn, "mf": mf,
    }, indent=1))


if __name__ == "__main__":
    main()
