"""Grow the shipped dense template bank and measure the fitting factors of both banks over the population.

    python scripts/gw_bank.py --n-max 2000 --n-signals 1000 --out runs/gw_bank

1. stochastic placement (:func:`astrocnn.gw.bank.grow_bank`) from the 252-template default bank, minimal
   match 0.97, seed 0, at most ``--n-max`` templates or ``--minutes``; written to
   ``src/astrocnn/gw/banks/dense.csv`` (``--ship``) and OUT/dense.csv;
2. the fitting factor of the default and the dense bank for ``--n-signals`` signals of the simulated
   population (IMRPhenomPv2, precessing; seed 31) and as many of its aligned-spin version (IMRPhenomD; seed 32),
   each as it lies in its 2-s window, H1 + L1 + V1 at the design PSDs;
3. OUT/bank.json (the placement record and every distribution's percentiles), OUT/fitting_factors.csv and
   OUT/fitting_factor.png (the four cumulative distributions).

Measured: see docs/gravitational-waves.md ("The bank").
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import time
from pathlib import Path

import numpy as np

from astrocnn.core.io import atomic_path, write_text_atomic
from astrocnn.gw.bank import fitting_factors, grow_bank, population_signals, read_bank, summarize, write_bank
from astrocnn.gw.matched_filter import make_template_bank

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "astrocnn" / "gw" / "banks" / "dense.csv"


def _figure(ff: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, v in ff.items():
        x = np.sort(v)
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=f"{name} (median {np.median(v):.3f})")
    ax.axvline(0.97, color="grey", lw=0.8, ls=":")
    ax.set_xlim(0.6, 1.0)
    ax.set_xlabel("fitting factor (SNR recovered / optimal SNR)")
    ax.set_ylabel("fraction of signals below")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-max", type=int, default=2000)
    ap.add_argument("--min-match", type=float, default=0.97)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--n-signals", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("runs/gw_bank"))
    ap.add_argument("--ship", action="store_true", help="also write the bank into the package (banks/dense.csv)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    dense_csv = args.out / "dense.csv"
    record_path = args.out / "placement.json"
    if dense_csv.exists() and record_path.exists():
        dense, record = read_bank(dense_csv), json.loads(record_path.read_text())
    else:
        dense, record = grow_bank(n_max=args.n_max, min_match=args.min_match, max_seconds=60 * args.minutes)
        write_bank(dense_csv, dense)
        write_text_atomic(record_path, json.dumps(record, indent=1) + "\n")
    if args.ship:
        write_bank(SHIPPED, dense)
    banks = {"default": make_template_bank(), "dense": dense}
    ff, rows = {}, {}
    for pop, seed, approximant in (("precessing", 31, "IMRPhenomPv2"), ("aligned", 32, "IMRPhenomD")):
        signals, params = population_signals(args.n_signals, seed, approximant)
        rows[pop] = params
        for name, bank in banks.items():
            t0 = time.time()
            ff[f"{name} bank, {pop}"] = fitting_factors(signals, bank)
            logging.info("%s bank, %s: %.0f s", name, pop, time.time() - t0)
    report = dict(placement=record, command="python scripts/gw_bank.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("ship", "out")),
        fitting_factors={k: summarize(v) for k, v in ff.items()})
    write_text_atomic(args.out / "bank.json", json.dumps(report, indent=1) + "\n")
    with atomic_path(args.out / "fitting_factors.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["population", "i", "mass1", "mass2", "chi_eff", "default", "dense"])
            for pop, params in rows.items():
                for i, p in enumerate(params):
                    w.writerow([pop, i, p.mass1, p.mass2, p.chi_eff, ff[f"default bank, {pop}"][i], ff[f"dense bank, {pop}"][i]])
    _figure(ff, args.out / "fitting_factor.png")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
