"""The README's gravitational-wave section, measured: network and matched filter on the same samples, paired.

    python scripts/gw_cnn_vs_mf.py --n-train 50000 --n-test 2000 --minutes 50 --out runs/gw10

Every step is skipped when its output is already in OUT (delete it to redo it); OUT/section.json holds every
number and OUT/section.md the tables the README and docs/gravitational-waves.md show.

1. data: the training set (seed 11, ``--n-train``) with noise of a PSD drawn per sample and detector
   (``--noise varied``, :class:`~astrocnn.gw.noise_variation.VariationPrior`), whitened by its own label-free
   median PSD (``--psd data``); three held-out sets of ``--n-test`` samples, each whitened by its own
   label-free PSD as ``astrocnn predict`` does: ``design`` (seed 12, design-curve noise, the simulator's
   precessing population), ``aligned`` (seed 13, the same with aligned spins only, IMRPhenomD) and
   ``shifted`` (seed 14, noise PSDs drawn from ``SHIFTED_PRIOR``, wider than anything trained on: the
   domain-shift test);
2. the network: ``default_config("detect")`` (``DETECT_MODEL``, sign flips, H1/L1 swaps, delays of up to 8
   samples) trained for a wall-time budget (``RECIPE``); its scores on every held-out set;
3. the matched filter with the folder's own label-free PSD (the network's footing) and two banks: the
   252-template grid (``default``) and the shipped stochastic bank (``dense``, ``scripts/gw_bank.py``);
   on the shifted set the default bank only (see ``TEST_SETS``);
4. per set and bank: both AUCs with bootstrap intervals, TPR at 1% FPR, the paired AUC difference network -
   filter (:func:`astrocnn.gw.baseline.paired_comparison`) and AUC per bin of ``snr_seen`` (the optimal SNR of
   what the network is given);
5. real data: the 88 G2Net samples in ``--shared/g2net`` (network and dense filter, both whitened by the
   folder's median PSD; the noise-only samples' median score against the interquartile range of the
   simulated noise-only samples' scores) and the GWOSC event files (:func:`astrocnn.apps.gwscan.event_report`:
   does the top window hold the merger, the event window's rank), after the same event method on
   ``--n-events`` simulated segments (:func:`astrocnn.apps.gwscan.simulated_events`); a figure of score
   against time over a spectrogram per real event (OUT/event_<name>.png);
6. the bank's fitting factors, read from ``--bank-report`` (``scripts/gw_bank.py``'s bank.json).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from astrocnn.apps.gwscan import event_report, real_data_report, simulated_events
from astrocnn.core.config import default_config
from astrocnn.core.io import write_text_atomic
from astrocnn.core.roc import roc_auc, tpr_at_fpr
from astrocnn.gw.baseline import baseline_metrics, paired_comparison, read_scores
from astrocnn.gw.events import segments_with_events
from astrocnn.gw.noise_variation import SHIFTED_PRIOR
from astrocnn.gw.plots import plot_event_scan
from astrocnn.gw.prepare import prepare_g2net
from astrocnn.gw.readers import gwosc_network
from astrocnn.gw.simulate import simulate_g2net
from astrocnn.gw.whitening import whiten_running
from astrocnn.train import evaluate, predict_set, train

# on top of default_config("detect"): a wall-time budget instead of an epoch count, all data for training
RECIPE = dict(
    train={"max_epochs": 1000, "schedule": "cosine_time", "warmup_epochs": 0.5, "batch_size": 64, "lr": 1e-3,
           "patience": 1000, "progress_bar": False},
    data={"num_workers": 1, "test_fraction": 0.0, "val_fraction": 0.04},
)
# held-out sets: (folder, seed, noise, approximant, prior, {filter bank: share of the samples it scores (None:
# all)}); the dense bank costs ~8x the default's (~0.7 s a sample on 2 cores), so on the aligned set it scores the
# first half, and on the shifted set, where mis-whitened noise, not the bank, decides the filter's AUC, only the
# default bank runs
TEST_SETS = {
    "design": ("test", 12, "design", "IMRPhenomPv2", None, {"default": None, "dense": None}),
    "shifted": ("test_shifted", 14, "varied", "IMRPhenomPv2", SHIFTED_PRIOR, {"default": None}),
    "aligned": ("test_aligned", 13, "design", "IMRPhenomD", None, {"default": None, "dense": 0.5}),
}
SNR_BINS = (0.0, 4.0, 6.0, 8.0, 10.0, 12.0, 15.0, math.inf)


def _data(args) -> None:
    R = args.out
    if not (R / "train_raw" / "training_labels.csv").exists():
        simulate_g2net(args.n_train, 11, R / "train_raw", workers=args.workers, noise="varied")
    if not (R / "train.h5").exists():
        prepare_g2net(R / "train_raw", R / "train.h5", workers=args.workers, psd="data")
    for name, (folder, seed, noise, approximant, prior, _) in TEST_SETS.items():
        if not (R / f"{folder}_raw" / "training_labels.csv").exists():
            simulate_g2net(args.n_test, seed, R / f"{folder}_raw", workers=args.workers, noise=noise,
                           approximant=approximant, prior=prior)
        if not (R / f"{folder}.h5").exists():
            prepare_g2net(R / f"{folder}_raw", R / f"{folder}.h5", workers=args.workers, psd="data")


def _train(args) -> dict:
    R = args.out
    if not (R / "run" / "metrics.json").exists():
        cfg = default_config("detect", train=dict(RECIPE["train"], max_minutes=args.minutes), data=RECIPE["data"])
        t0 = time.time()
        result = train("detect", R / "train.h5", R / "run", cfg)
        write_text_atomic(R / "training.json", json.dumps({"epochs": result.epochs, "minutes": (time.time() - t0) / 60,
                                                            "n_train": args.n_train}) + "\n")
    if not (R / "training.json").exists():  # trained by this script before it wrote training.json
        old = json.loads((R / "comparison.json").read_text())
        write_text_atomic(R / "training.json", json.dumps({"epochs": old["epochs"], "minutes": old["train_minutes"],
                                                            "n_train": old["n_train"]}) + "\n")
    return json.loads((R / "training.json").read_text())


def _mf_paths(R: Path, folder: str, bank: str) -> tuple[Path, Path]:
    if folder == "test" and bank == "default":  # the names this script used before it had more sets
        return R / "baseline.json", R / "baseline_scores.csv"
    return R / f"mf_{folder}_{bank}.json", R / f"mf_{folder}_{bank}.csv"


def _per_snr(net: dict, ref: dict) -> list[dict]:
    rows = []
    y, snr = ref["target"], ref["snr"]
    for lo, hi in zip(SNR_BINS[:-1], SNR_BINS[1:]):
        sel = (y == 1) & (snr >= lo) & (snr < hi)
        if not sel.any():
            continue
        keep = sel | (y == 0)
        rows.append({"snr": f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">={lo:g}", "n_signal": int(sel.sum()),
                     "network": roc_auc(y[keep], net[keep]), "filter": roc_auc(y[keep], ref["score"][keep])})
    return rows


def _compare(args, name: str) -> dict:
    R = args.out
    folder, _, _, _, _, banks = TEST_SETS[name]
    ev = R / f"eval_{name}" / "metrics.json"
    cnn = json.loads(ev.read_text())["metrics"] if ev.exists() else evaluate(R / "run", R / f"{folder}.h5",
                                                                              out_dir=R / f"eval_{name}")
    pred = predict_set(R / "run", R / f"{folder}.h5")
    by_id = dict(zip(pred["id"], pred["score"]))
    out = {"network": {k: cnn[k] for k in ("n", "roc_auc", "roc_auc_low", "roc_auc_high", "tpr_at_fpr_0.01")},
           "noise_scores": None, "filters": {}}
    for bank, share in banks.items():
        js, csv_path = _mf_paths(R, folder, bank)
        if not (js.exists() and csv_path.exists()):
            baseline_metrics(R / f"{folder}_raw", psd_from="data", bank=bank, out=js, scores_out=csv_path,
                             max_samples=None if share is None else int(share * args.n_test))
        mf = json.loads(js.read_text())
        ref = read_scores(csv_path)
        net = np.array([by_id[str(i)] for i in ref["id"]])
        paired = paired_comparison(pred["id"], pred["score"], ref, n_boot=2000)
        out["filters"][bank] = {"roc_auc": mf["roc_auc"], "roc_auc_low": mf["roc_auc_low"],
                                "roc_auc_high": mf["roc_auc_high"], "tpr_at_fpr_0.01": mf["tpr_at_fpr_0.01"],
                                "seconds": mf.get("seconds"), "n_templates": mf["bank"]["n_templates"],
                                "paired": paired, "per_snr": _per_snr(net, ref)}
        noise = net[ref["target"] == 0]
        out["noise_scores"] = {"median": float(np.median(noise)), "q25": float(np.quantile(noise, 0.25)),
                               "q75": float(np.quantile(noise, 0.75))}
    return out


def _events(args, report: dict) -> None:
    R = args.out
    sim_path = R / "events_simulated.json"
    if not sim_path.exists():
        write_text_atomic(sim_path, json.dumps(simulated_events(R / "run", n_events=args.n_events, seed=0)) + "\n")
    sim = json.loads(sim_path.read_text())
    report["events_simulated"] = {k: v for k, v in sim.items() if k != "events"}
    report["events_simulated"]["ranks"] = [e["event_rank"] for e in sim["events"]]
    gwosc = args.shared / "gwosc"
    if not gwosc.is_dir():
        return
    for name, (t_event, paths) in segments_with_events(gwosc.glob("*.hdf5")).items():
        r = event_report(R / "run", paths, t_event, return_scan=True)
        scan = r.pop("scan")
        net = gwosc_network(list(paths), sample_rate=2048.0)
        white, _ = whiten_running(net.strain, 2048.0, band=(20.0, 500.0), taper_s=1.0)
        plot_event_scan(white[0], 2048.0, net.gps_start, scan["gps_centre"], scan["score"], scan["valid"], t_event,
                        R / f"event_{name}.png", title=f"{name} (H1, whitened by its own PSD)")
        report["events_real"][name] = r


def _markdown(rep: dict) -> str:
    lines = ["| held-out simulated set (n) | network AUC [95%] | filter, bank (templates) | filter AUC [95%] | "
             "network - filter, paired (n) [95%] |", "|---|---|---|---|---|"]
    for name, s in rep["sets"].items():
        n = s["network"]
        for bank, f in s["filters"].items():
            p = f["paired"]
            lines.append(f"| {name} ({n['n']}) | {n['roc_auc']:.3f} [{n['roc_auc_low']:.3f}, {n['roc_auc_high']:.3f}] "
                         f"| {bank} ({f['n_templates']}) | {f['roc_auc']:.3f} [{f['roc_auc_low']:.3f}, "
                         f"{f['roc_auc_high']:.3f}] | {p['diff']:+.3f} ({p['n']}) [{p['low']:+.3f}, {p['high']:+.3f}] |")
    lines += ["", "| snr_seen | signals | network AUC | filter AUC (dense bank) |", "|---|---|---|---|"]
    for row in rep["sets"]["design"]["filters"]["dense"]["per_snr"]:
        lines.append(f"| {row['snr']} | {row['n_signal']} | {row['network']:.3f} | {row['filter']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=50000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--minutes", type=float, default=50.0, help="training wall-time budget")
    ap.add_argument("--out", type=Path, default=Path("runs/gw_section"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-events", type=int, default=20, help="simulated segments for the event method")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--bank-report", type=Path, default=Path("runs/gw_bank/bank.json"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    R = args.out
    R.mkdir(parents=True, exist_ok=True)
    _data(args)
    report: dict = {"command": "python scripts/gw_cnn_vs_mf.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()), "training": _train(args), "sets": {},
        "events_real": {}}
    for name in TEST_SETS:
        report["sets"][name] = _compare(args, name)
    g2 = real_data_report(R / "run", args.shared / "g2net", None, n_boot=2000)["g2net"]
    if g2 is not None:
        js = R / "mf_g2net_dense.json"
        if not js.exists():
            baseline_metrics(args.shared / "g2net", psd_from="data", bank="dense", out=js)
        mf = json.loads(js.read_text())
        report["g2net"] = {"network": {k: v for k, v in g2.items() if k != "scores"},
                           "filter": {k: mf[k] for k in ("n", "roc_auc", "roc_auc_low", "roc_auc_high")},
                           "simulated_noise_iqr": [report["sets"]["design"]["noise_scores"][q] for q in ("q25", "q75")]}
    _events(args, report)
    if args.bank_report.exists():
        report["bank"] = json.loads(args.bank_report.read_text())
    write_text_atomic(R / "section.json", json.dumps(report, indent=1) + "\n")
    write_text_atomic(R / "section.md", _markdown(report))
    print(_markdown(report))


if __name__ == "__main__":
    main()
