"""A trained detection run on real data, as it comes: the real G2Net samples and the GWOSC event files.

    python scripts/gw_real.py RUN [--data ../shared/data] [--step 0.25] [--psd data|training]

Prints JSON: the ROC AUC on ``g2net/`` (bootstrap 95% interval; 88 samples leave it ~+-0.1 wide), the median
score of its noise-only samples, each sample's score, and for every GWOSC event (H1 + L1 files sharing a GPS
start) the top-scoring valid window, its distance from the catalogue event time, the event window's score
and rank among the valid windows. ``--psd``: whiten with a PSD estimated from the data themselves (default,
as ``astrocnn predict`` does) or with the run's training PSD.
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
    ap.add_argument("--psd", choices=("data", "training"), default="data")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = {"run": str(args.run), **real_data_report(args.run, args.data / "g2net", args.data / "gwosc",
                                                        step_s=args.step, n_boot=2000, psd=args.psd)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
