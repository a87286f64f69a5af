"""A trained detection run on real data, as it comes: the 20 real G2Net samples and the GWOSC event files.

    python scripts/gw_real.py RUN [--data ../shared/data] [--step 0.25]

Prints JSON: the ROC AUC on ``g2net/`` (bootstrap 95% interval; 20 samples make it wide), each sample's
score, and for every GWOSC event (H1 + L1 files sharing a GPS start) the top-scoring valid window, its
distance from the catalogue event time, the event window's score and rank among the valid windows.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from astrocnn.gw.apply import KNOWN_EVENTS, event_report, predict_g2net_dir
from astrocnn.gw.roc import bootstrap_auc
from astrocnn.train import load_run

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--step", type=float, default=0.25)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    loaded = load_run(args.run)
    report: dict = {"run": str(args.run)}

    g2 = predict_g2net_dir(args.run, args.data / "g2net", loaded=loaded)
    y = np.asarray(g2["target"])
    b = bootstrap_auc(y, g2["score"], n_boot=2000)
    report["g2net"] = {"n": int(y.size), "n_signal": int((y == 1).sum()), "roc_auc": b["auc"],
                       "roc_auc_low": b["low"], "roc_auc_high": b["high"],
                       "scores": {str(i): [int(t), round(float(s), 4)] for i, t, s in zip(g2["id"], y, g2["score"])}}

    files = defaultdict(list)
    for p in sorted((args.data / "gwosc").glob("*.hdf5")):
        files[int(p.stem.split("-")[-2])].append(p)
    report["gwosc"] = {}
    for start, paths in files.items():
        # the catalogued event inside this segment (GWOSC event files are 32 s around it)
        hits = [(name, t) for name, t in KNOWN_EVENTS.items() if start <= t < start + 32]
        if not hits:
            continue
        name, t_event = hits[0]
        report["gwosc"][name] = {"files": [p.name for p in paths], "gps_event": t_event,
                                 **event_report(args.run, paths, t_event, step_s=args.step, loaded=loaded)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
