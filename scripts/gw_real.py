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
from pathlib import Path

from astrocnn.apps.gwscan import real_data_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--step", type=float, default=0.25)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = {"run": str(args.run), **real_data_report(args.run, args.data / "g2net", args.data / "gwosc",
                                                        step_s=args.step, n_boot=2000)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
