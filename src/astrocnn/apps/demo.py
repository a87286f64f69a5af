"""``astrocnn demo``: the main job on the built-in simulated data, ending in ``report.md``.

Simulates a survey and a held-out survey, trains the redshift and the quasar/galaxy networks, scores
them on the held-out spectra, runs the simulated spectra through the real-file path, predicts the real
SDSS spectra beside the repository when they are there; then the detection task at small scale (simulated
G2Net-like strain, the CNN against the matched filter on the same samples, the real G2Net samples and
GWOSC events when they are there); and writes a report with metrics and plots.
Sized to finish within 15 minutes on a 2-core CPU. Applications layer.

The demo owns its output folder: run again, it replaces its earlier runs there.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from astrocnn.apps.gwscan import real_data_report
from astrocnn.apps.predict import predict_inputs
from astrocnn.core.config import default_config
from astrocnn.core.io import write_text_atomic
from astrocnn.gw.baseline import baseline_metrics, paired_comparison, read_scores
from astrocnn.gw.prepare import prepare_g2net
from astrocnn.gw.simulate import simulate_g2net
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.spectra.plots import show_prepared
from astrocnn.spectra.prepare import prepare_sdss, simulate_prepared
from astrocnn.train import evaluate, predict_set, train
from astrocnn.zoo import list_models, load_model

log = logging.getLogger(__name__)

#: Where the demo looks for the few real SDSS spectra shipped beside the repository (optional).
DEFAULT_REAL_SDSS = Path("../shared/data/sdss")
#: ... and for real strain: G2Net samples and GWOSC event files (optional).
DEFAULT_REAL_G2NET = Path("../shared/data/g2net")
DEFAULT_REAL_GWOSC = Path("../shared/data/gwosc")


def _demo_detect(out: Path, seed: int, n: int, minutes: float, real_g2net: Path, real_gwosc: Path) -> dict:
    """The detection task at small scale, as the recipe (scripts/gw_cnn_vs_mf.py) does it: simulate training
    strain with noise of a PSD drawn per sample and held-out strain with design noise, whiten each set with
    its own label-free PSD, train the detector for ``minutes``, score the held-out samples with it and with
    the matched filter (the same label-free PSD) and compare the two on the same samples; then apply the
    network to the real G2Net samples and GWOSC event files when they are there."""
    data = out / "data"
    timings = {}
    t0 = time.perf_counter()
    simulate_g2net(n, seed, data / "gw-train", workers=2, noise="varied")
    simulate_g2net(max(n // 10, 200), seed + 1000, data / "gw-heldout", workers=2)
    train_set = prepare_g2net(data / "gw-train", data / "gw-train.h5", workers=2, psd="data")
    held_set = prepare_g2net(data / "gw-heldout", data / "gw-heldout.h5", workers=2, psd="data")
    timings["simulate + prepare gw"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = default_config("detect", train={"max_epochs": 1000, "patience": 1000, "schedule": "cosine_time",
                                          "max_minutes": minutes, "warmup_epochs": 0.5, "progress_bar": False},
                         data={"num_workers": 0}, task={"n_boot": 500})
    result = train("detect", train_set, out / "detect", cfg, force=True)
    timings["train detect"] = time.perf_counter() - t0
    held = evaluate(out / "detect", held_set, out / "detect" / "heldout")
    t0 = time.perf_counter()
    mf_scores = out / "detect" / "matched-filter-scores.csv"
    # the filter on the same footing as the network: the held-out folder's own label-free PSD (the training
    # set's average over varied noise is not the held-out noise's curve)
    mf = baseline_metrics(data / "gw-heldout", psd_from="data", out=out / "detect" / "matched-filter.json",
                          n_boot=500, scores_out=mf_scores)
    timings["matched filter"] = time.perf_counter() - t0
    net = predict_set(out / "detect", held_set)
    paired = paired_comparison(net["id"], net["score"], read_scores(mf_scores), n_boot=500)
    real = real_data_report(out / "detect", real_g2net, real_gwosc)
    return {"result": result, "heldout": held, "mf": mf, "paired": paired, "timings": timings,
            "real_g2net": real["g2net"], "gwosc": real["gwosc"]}


def _detect_lines(d: dict, real_g2net: Path, real_gwosc: Path) -> list[str]:
    res, held, mf, pair = d["result"], d["heldout"], d["mf"], d["paired"]
    lines = [
        "",
        "## Gravitational-wave detection (G2Net-like strain, network SNR ~ lognormal median 8)",
        "",
        "Trained on noise of a PSD drawn per sample; held-out samples with design-curve noise, each set whitened "
        "with its own noise spectrum estimated without labels.",
        "",
        "| | CNN | matched filter (252 templates) |",
        "|---|---|---|",
        f"| held-out n | {held['n']} | {mf['n']} |",
        f"| ROC AUC [95%] | {_fmt(held['roc_auc'], 3)} [{_fmt(held.get('roc_auc_low'), 3)}, "
        f"{_fmt(held.get('roc_auc_high'), 3)}] | {_fmt(mf['roc_auc'], 3)} [{_fmt(mf.get('roc_auc_low'), 3)}, "
        f"{_fmt(mf.get('roc_auc_high'), 3)}] |",
        f"| TPR at 1% FPR | {_fmt(held.get('tpr_at_fpr_0.01'), 3)} | {_fmt(mf.get('tpr_at_fpr_0.01'), 3)} |",
        "",
        f"AUC difference CNN - matched filter on the same {pair['n']} samples: {pair['diff']:+.3f} "
        f"[{pair['low']:+.3f}, {pair['high']:+.3f}] (95%, paired bootstrap).",
        "",
        f"A small-scale run: {res.epochs} epochs in {d['timings']['train detect']:.0f} s on few samples, hence "
        "short of the full-scale result (see docs/gravitational-waves.md). Run folder: `detect/`.",
        "",
        "![roc](detect/heldout/roc.png) ![efficiency](detect/heldout/efficiency_vs_snr.png)",
    ]
    if d["real_g2net"]:
        g = d["real_g2net"]
        lines += ["", f"Real G2Net samples in `{real_g2net}` ({g['n']}, whitened with their own noise spectrum): "
                      f"ROC AUC {_fmt(g['roc_auc'], 3)} [{_fmt(g['roc_auc_low'], 3)}, {_fmt(g['roc_auc_high'], 3)}]; "
                      f"median score of the noise-only ones {_fmt(g['median_noise_score'], 3)}."]
    if d["gwosc"]:
        lines += ["", f"Real LIGO strain in `{real_gwosc}` (2-s windows every 0.25 s, each segment whitened with its "
                      "own noise estimate):", "",
                  "| event | windows | top window places the merger at (s from the event) | holds the merger "
                  "(within 0.25 s) | event score (rank) | median score |",
                  "|---|---|---|---|---|---|"]
        for name, e in d["gwosc"].items():
            lines.append(f"| {name} | {e['n_windows']} | {e['top_merger_gps'] - e['gps_event']:+.2f} | "
                         f"{'yes' if e['holds_merger'] else 'no'} | {e['event_score']:.3f} ({e['event_rank']}) | "
                         f"{e['median_score']:.3f} |")
    return lines


def _pick_examples(ds, want=(("qso", 0.0, 1.0), ("qso", 1.0, 2.2), ("qso", 2.2, 6.0), ("galaxy", 0, 2), ("star", -1, 1))):
    picks = []
    for name, lo, hi in want:
        if name not in ds.class_names:
            continue
        c = ds.class_names.index(name)
        hit = np.flatnonzero((ds.cls == c) & (ds.z >= lo) & (ds.z < hi))
        if hit.size:
            picks.append(int(hit[np.argmax(ds.snr[hit])]))
    return picks


def _fmt(x, digits=4):
    return "-" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}f}"


def _demo_spectra(out: Path, n: int, seed: int, epochs: int, timings: dict) -> dict:
    """Simulate the survey and a held-out survey (written as SDSS files and read back), train both networks
    and score them on the held-out spectra."""
    data = out / "data"
    t0 = time.perf_counter()
    sim = simulate_prepared(n, seed, data / "survey.h5")
    held = simulate_prepared(max(n // 5, 200), seed + 1000, data / "heldout.h5", sdss_dir=data / "heldout-sdss")
    timings["simulate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = prepare_sdss([data / "heldout-sdss"], data / "heldout-from-fits.h5",
                        catalog=data / "heldout-sdss" / "catalog.fits", class_column="CLASS_PERSON")
    timings["prepare"] = time.perf_counter() - t0
    ds = SpectraSet(sim.out)
    show_prepared(sim.out, _pick_examples(ds), out / "spectra.png")
    runs = {}
    for task in ("redshift", "classify"):
        t0 = time.perf_counter()
        cfg = default_config(task, train={"max_epochs": epochs, "patience": 3, "progress_bar": False})
        result = train(task, sim.out, out / task, cfg, force=True)
        timings[f"train {task}"] = time.perf_counter() - t0
        # held-out survey, read back from its FITS files: the path real data take
        held_metrics = evaluate(out / task, fits.out, out / task / "heldout", metrics_name="metrics.json")
        runs[task] = (result, held_metrics)
    return {"n_held": len(SpectraSet(held.out)), "fits": fits, "ds": ds, "runs": runs}


def _spectra_lines(d: dict, n: int, seed: int, timings: dict) -> list[str]:
    (z_res, z_held), (c_res, c_held) = d["runs"]["redshift"], d["runs"]["classify"]
    fits, ds = d["fits"], d["ds"]
    lines = [
        "# astrocnn demo",
        "",
        f"Simulated {n} objects (seed {seed}) for training and {d['n_held']} held-out objects "
        f"(seed {seed + 1000}), written as SDSS spec-lite files with a DR16Q-like catalogue and read back "
        f"through `prepare sdss` ({fits.summary}). "
        "Classes: " + ", ".join(f"{name} {int((ds.cls == i).sum())}" for i, name in enumerate(ds.class_names)) + ".",
        "",
        "![examples](spectra.png)",
        "",
        "## Redshift (quasars, 0 < z < 5.5)",
        "",
        "| | training split (test 10%) | held-out survey |",
        "|---|---|---|",
        f"| n | {z_res.metrics['n']} | {z_held['n']} |",
        f"| fraction \\|dv\\| < 6000 km/s (paper's accuracy) | {_fmt(z_res.metrics['frac_dv_lt_6000'])} | "
        f"{_fmt(z_held['frac_dv_lt_6000'])} |",
        f"| fraction \\|dv\\| < 12000 km/s | {_fmt(z_res.metrics['frac_dv_lt_12000'])} | {_fmt(z_held['frac_dv_lt_12000'])} |",
        f"| median \\|dv\\| (km/s) | {_fmt(z_res.metrics['median_abs_dv_kms'], 0)} | {_fmt(z_held['median_abs_dv_kms'], 0)} |",
        f"| NMAD of dz/(1+z) | {_fmt(z_res.metrics['nmad'], 5)} | {_fmt(z_held['nmad'], 5)} |",
        "",
        f"{z_res.epochs} epochs (best {z_res.best_epoch}), {z_res.n_parameters} parameters, "
        f"{timings['train redshift']:.0f} s. Run folder: `redshift/`.",
        "",
        "![loss](redshift/loss.png) ![z](redshift/heldout/z_pred_vs_true.png)",
        "",
        "## Quasar / galaxy classification",
        "",
        "| | training split (test 10%) | held-out survey |",
        "|---|---|---|",
        f"| n | {c_res.metrics['n']} | {c_held['n']} |",
        f"| accuracy | {_fmt(c_res.metrics['accuracy'])} | {_fmt(c_held['accuracy'])} |",
    ]
    for name in c_held.get("completeness", {}):
        lines.append(f"| {name} completeness / purity | {_fmt(c_res.metrics['completeness'][name])} / "
                     f"{_fmt(c_res.metrics['purity'][name])} | {_fmt(c_held['completeness'][name])} / "
                     f"{_fmt(c_held['purity'][name])} |")
    return lines + [
        "",
        f"{c_res.epochs} epochs (best {c_res.best_epoch}), {timings['train classify']:.0f} s. Run folder: `classify/`.",
        "",
        "![confusion](classify/heldout/confusion.png)",
    ]


def _real_sdss_lines(out: Path, real: Path) -> list[str]:
    """Both networks applied to the real SDSS files beside the repository, with the pipeline's answers."""
    if not real.is_dir():
        return []
    real_rows = [predict_inputs(out / task, [real], out / f"real-sdss-{task}.csv") for task in ("redshift", "classify")]
    rep = prepare_sdss([real], out / "data" / "real-sdss.h5")
    show_prepared(rep.out, list(range(len(SpectraSet(rep.out)))), out / "real-sdss.png")
    truth = {}
    idx = real / "index.csv"
    if idx.exists():
        with open(idx, newline="") as fh:
            for r in csv.DictReader(fh):
                truth[Path(r["file"]).name] = r
    (_, zr), (_, cr) = real_rows
    ready = _ready_made(real)
    lines = ["", f"## Real SDSS spectra in `{real}` (as they come; the networks saw only simulations)", "",
             "Trained here: the redshift and quasar/galaxy networks above. Ready-made: the shipped `sdss` model "
             f"({ready['model'] if ready else 'not installed'}; class, z, zwarn; zwarn 0 = use it).", "",
             "| file | pipeline class | pipeline z | trained: z | trained: class | p(qso) | ready-made: class | "
             "ready-made: z | zwarn | error |", "|---|---|---|---|---|---|---|---|---|---|"]
    for a, b in zip(zr, cr):
        name = Path(a[1]).name
        t = truth.get(name, {})
        r = (ready or {}).get(name, {})
        lines.append(f"| {name} | {t.get('cls', '')} | {t.get('z', '')} | {a[2]} | {b[2]} | {b[3]} | {r.get('class', '-')} | "
                     f"{r.get('z', '-')} | {r.get('zwarn', '-')} | {a[-1] or b[-1]} |")
    return lines + ["", "![real](real-sdss.png)"]


def _ready_made(real: Path) -> dict | None:
    """The shipped ``sdss`` model's answers on the real files, by file name (None when no model is shipped)."""
    if not any(info.name == "sdss" for info in list_models()):
        return None
    table = load_model("sdss").predict([real])
    out: dict = {"model": table.meta["model"]}
    for row in table:
        out[Path(str(row["source"])).name] = {"class": row["class"], "z": f"{row['z']:.4f}", "zwarn": int(row["zwarn"])}
    return out


def run_demo(out: str | os.PathLike, n: int | None = None, seed: int = 1, real_sdss: str | os.PathLike | None = None,
             epochs: int = 8, gw_n: int = 6000, gw_minutes: float = 6.0, real_g2net: str | os.PathLike | None = None,
             real_gwosc: str | os.PathLike | None = None) -> Path:
    """Run the demo into folder ``out``; returns ``out/report.md``. ``gw_n = 0`` leaves out detection."""
    out = Path(out)
    n = n or 10000
    timings: dict[str, float] = {}
    spectra = _demo_spectra(out, n, seed, epochs, timings)
    lines = _spectra_lines(spectra, n, seed, timings)
    lines += _real_sdss_lines(out, Path(real_sdss) if real_sdss is not None else DEFAULT_REAL_SDSS)
    detect = None
    if gw_n:
        g2 = Path(real_g2net) if real_g2net is not None else DEFAULT_REAL_G2NET
        gwosc = Path(real_gwosc) if real_gwosc is not None else DEFAULT_REAL_GWOSC
        detect = _demo_detect(out, seed, gw_n, gw_minutes, g2, gwosc)
        timings.update(detect["timings"])
        lines += _detect_lines(detect, g2, gwosc)
    lines += ["", "## Timings (s)", "", " | ".join(f"{k} {v:.0f}" for k, v in timings.items())]
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    (z_res, z_held), (c_res, c_held) = spectra["runs"]["redshift"], spectra["runs"]["classify"]
    write_text_atomic(out / "demo.json", json.dumps({
        "redshift": {"test": z_res.metrics, "heldout": z_held}, "classify": {"test": c_res.metrics, "heldout": c_held},
        **({"detect": {"heldout": detect["heldout"], "matched_filter": detect["mf"], "paired": detect["paired"],
                       "real_g2net": detect["real_g2net"],
                       "gwosc": detect["gwosc"]}} if detect else {}),
        "timings_s": timings}, indent=1, default=float) + "\n")
    return report
