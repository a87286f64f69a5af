"""Measure the GW data path: simulation throughput, whitening + band-pass throughput, matched-filter AUC.

    python scripts/bench_gw.py                         # all three, 2000 + 2000 samples for the AUC
    python scripts/bench_gw.py --n-eval 1000 --skip-auc

The matched-filter reference is measured honestly: its noise PSD comes from a separate TRAINING simulation
(another seed), never from the evaluated samples. Prints numbers; writes the AUC JSON next to the data.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from astrocnn.gw import simulate as sim
from astrocnn.gw.baseline import baseline_metrics
from astrocnn.gw.whitening import GwPreprocess, Whitener


def bench_simulation(n: int, seed: int = 123) -> dict:
    sim.simulate_sample(seed, 0)  # warm the per-process caches (PSDs, detector tensors, grids)
    t_pos, t_neg, n_pos = 0.0, 0.0, 0
    for i in range(1, n + 1):
        t0 = time.perf_counter()
        _, truth = sim.simulate_sample(seed, i)
        dt = time.perf_counter() - t0
        if truth["target"]:
            t_pos += dt
            n_pos += 1
        else:
            t_neg += dt
    total = t_pos + t_neg
    return dict(samples_per_s=n / total, positives_per_s=n_pos / max(t_pos, 1e-9),
                negatives_per_s=(n - n_pos) / max(t_neg, 1e-9), n=n)


def bench_writer(n: int, workers: int, out: Path) -> dict:
    t0 = time.perf_counter()
    sim.simulate_g2net(n, 77, out, workers=workers)
    dt = time.perf_counter() - t0
    return dict(samples_per_s=n / dt, per_worker=n / dt / workers, workers=workers, n=n)


def bench_whitening(batch: int = 256, repeats: int = 8) -> dict:
    rng = np.random.default_rng(0)
    noise = np.stack([sim.simulate_noise(rng) for _ in range(batch)])
    module = GwPreprocess(Whitener().fit(noise), "channel")
    out = {}
    for name, x in (("float64", torch.as_tensor(noise)), ("float32", torch.as_tensor(noise).float())):
        module(x)
        t0 = time.perf_counter()
        for _ in range(repeats):
            module(x)
        out[name] = batch * repeats / (time.perf_counter() - t0)
    out["torch_threads"] = torch.get_num_threads()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sim", type=int, default=1000, help="samples timed in-process for the simulator")
    ap.add_argument("--n-train", type=int, default=2000, help="training samples (noise PSD for the matched filter)")
    ap.add_argument("--n-eval", type=int, default=2000, help="evaluated samples for the matched-filter AUC")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out-dir", type=Path, default=None, help="where simulated sets go (default: a temp folder)")
    ap.add_argument("--skip-auc", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_gw_"))
    r = bench_simulation(args.n_sim)
    print(f"simulate_sample, one core: {r['samples_per_s']:.0f} samples/s "
          f"(positives {r['positives_per_s']:.0f}/s, noise-only {r['negatives_per_s']:.0f}/s; n={r['n']})")
    r = bench_writer(args.n_sim, args.workers, out_dir / "writer")
    print(f"simulate_g2net with files, {r['workers']} workers: {r['samples_per_s']:.0f} samples/s "
          f"({r['per_worker']:.0f}/s per worker)")
    r = bench_whitening()
    print(f"whiten + band-pass + normalise, batch 256, {r['torch_threads']} torch threads: "
          f"{r['float64']:.0f} samples/s (float64 in), {r['float32']:.0f} samples/s (float32 in)")
    if args.skip_auc:
        return 0
    train = sim.simulate_g2net(args.n_train, 1001, out_dir / "train", workers=args.workers)
    evald = sim.simulate_g2net(args.n_eval, 1002, out_dir / "eval", workers=args.workers)
    t0 = time.perf_counter()
    res = baseline_metrics(evald, psd_from=train, out=out_dir / "matched_filter.json")
    dt = time.perf_counter() - t0
    print(f"matched filter (252 aligned-spin IMRPhenomD templates, PSD from {args.n_train} training samples): "
          f"ROC AUC {res['roc_auc']:.4f} [95% bootstrap {res['roc_auc_low']:.4f}, {res['roc_auc_high']:.4f}], "
          f"TPR at FPR 1% {res['tpr_at_fpr_0.01']:.3f}, n={res['n']} ({res['n_positive']} positives), "
          f"{res['n'] / dt:.1f} samples/s")
    for b in res["auc_by_snr"]:
        hi = "inf" if b["snr_high"] is None else f"{b['snr_high']:g}"
        auc = f"{b['auc']:.3f} [{b['auc_low']:.3f}, {b['auc_high']:.3f}]" if "auc" in b else "-"
        print(f"  SNR [{b['snr_low']:g}, {hi}): n_pos={b['n_positive']:4d}  AUC {auc}")
    print(f"results: {out_dir / 'matched_filter.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
