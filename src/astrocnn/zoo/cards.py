"""Model cards written from what a build measured, and builds checked against a card.

Zoo layer. The card of a spectra model (:func:`sdss_card`) says what the model is for, what it was trained on
and with which command, how it scored on a held-out simulated survey (per class, per redshift bin, per S/N
bin, with and without the warning flag), how it answered on the real files beside the repository, how much its
numbers moved between training seeds, and where it fails. Its front matter holds the headline numbers and
their tolerances, which :func:`check` applies to a new build.
"""
from __future__ import annotations

import json
import math
from typing import Any, Sequence

import numpy as np

from astrocnn.zoo.registry import ModelCard

#: the card's headline numbers: name -> path into a build's held-out scores
HEADLINE = {
    "accuracy": ("accuracy",),
    "qso_frac_dv_lt_6000": ("qso", "frac_dv_lt_6000"),
    "qso_frac_zwarn_0": ("qso", "frac_zwarn_0"),
    "qso_catastrophic_in_zwarn_0": ("qso", "catastrophic_in_zwarn_0"),
    "qso_median_abs_dv_kms": ("qso", "median_abs_dv_kms"),
    "galaxy_frac_dv_lt_1000": ("galaxy", "frac_dv_lt_1000"),
    "galaxy_median_abs_dv_kms": ("galaxy", "median_abs_dv_kms"),
    "star_frac_dv_lt_1000": ("star", "frac_dv_lt_1000"),
}
#: the smallest tolerance of each headline number, whatever the seeds' spread (fractions; km/s for medians)
MIN_TOLERANCE = {"qso_median_abs_dv_kms": 25.0, "galaxy_median_abs_dv_kms": 25.0}
DEFAULT_MIN_TOLERANCE = 0.003


def headline(scores: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, path in HEADLINE.items():
        v: Any = scores
        for key in path:
            v = v.get(key, {}) if isinstance(v, dict) else {}
        out[name] = float(v) if isinstance(v, (int, float)) else float("nan")
    return out


def spread(per_seed: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation and range of each headline number over the seeds, and the tolerance a new
    build must meet: the larger of three standard deviations, the range, and :data:`MIN_TOLERANCE`."""
    rows = [headline(s["heldout"]) for s in per_seed]
    out = {}
    for name in HEADLINE:
        v = np.array([r[name] for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        if not v.size:
            continue
        std = float(v.std(ddof=1)) if v.size > 1 else 0.0
        tol = max(3 * std, float(v.max() - v.min()), MIN_TOLERANCE.get(name, DEFAULT_MIN_TOLERANCE))
        out[name] = {"mean": float(v.mean()), "std": std, "min": float(v.min()), "max": float(v.max()),
                     "tolerance": tol}
    return out


def check(card: ModelCard, scores: dict[str, Any]) -> list[str]:
    """The headline numbers of a new build (its held-out ``scores``) that lie outside the card's tolerances,
    each as one line; empty when the build reproduces the card."""
    expected = card.meta.get("metrics", {})
    tol = card.meta.get("tolerances", {})
    got = headline(scores)
    bad = []
    for name, want in expected.items():
        if name not in tol or not math.isfinite(float(want)):
            continue
        if not abs(got.get(name, float("nan")) - float(want)) <= float(tol[name]):
            bad.append(f"{name}: {got.get(name):.4g}, the card says {float(want):.4g} +- {float(tol[name]):.3g}")
    return bad


def _pct(v: Any, digits: int = 2) -> str:
    return "-" if v is None or not np.isfinite(float(v)) else f"{100 * float(v):.{digits}f}%"


def _num(v: Any, fmt: str = ".0f") -> str:
    return "-" if v is None or not np.isfinite(float(v)) else format(float(v), fmt)


def _class_table(scores: dict[str, Any]) -> list[str]:
    lines = ["| class | n | class completeness / purity | right redshift (all) | with zwarn = 0 | share zwarn = 0 | "
             "median \\|dv\\| (km/s) |", "|---|---|---|---|---|---|---|"]
    for name, limit in (("qso", 6000), ("galaxy", 1000), ("star", 1000)):
        c = scores.get(name)
        if not c:
            continue
        lines.append(f"| {name} (\\|dv\\| < {limit} km/s) | {c['n']} | {_pct(c['completeness'])} / {_pct(c['purity'])} | "
                     f"{_pct(c[f'frac_dv_lt_{limit}'])} | {_pct(c[f'frac_dv_lt_{limit}_zwarn_0'])} | "
                     f"{_pct(c['frac_zwarn_0'], 1)} | {_num(c['median_abs_dv_kms'])} |")
    return lines


def _binned_table(rows: list[dict], key: str, limit: int) -> list[str]:
    lines = [f"| {key} | n | right redshift | with zwarn = 0 | share zwarn = 0 |", "|---|---|---|---|---|"]
    for r in rows:
        hi = r[f"{key}_hi"]
        label = f"{r[f'{key}_lo']:g}-{hi:g}" if hi is not None else f">= {r[f'{key}_lo']:g}"
        lines.append(f"| {label} | {r['n']} | {_pct(r[f'frac_dv_lt_{limit}'])} | {_pct(r[f'frac_dv_lt_{limit}_zwarn_0'])} | "
                     f"{_pct(r['frac_zwarn_0'], 1)} |")
    return lines


def real_table(rows: list[dict]) -> list[str]:
    lines = ["| file | pipeline | model class (p) | model z +- z_err | z_conf | zwarn | \\|dv\\| (km/s) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        pipe = f"{r['pipeline_class'].upper() or '-'} {_num(r['pipeline_z'], '.4f')}"
        if r["error"]:
            lines.append(f"| {r['file']} | {pipe} | could not be used: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['file']} | {pipe} | {r['class']} ({r['p_class']:.3f}) | {r['z']:.4f} +- {r['z_err']:.4f} | "
                     f"{r['z_conf']:.3f} | {r['zwarn']} | {_num(r['dv_kms'])} |")
    return lines


def _flag_lines(flags: dict[str, Any] | None) -> list[str]:
    """The purity / completeness figure and the ``zwarn == 0`` operating point of each class, in words."""
    if not flags:
        return []
    words = [f"{name}: {_pct(op['fraction_flagged'])} flagged, purity {_pct(op['purity'])}, completeness "
             f"{_pct(op['completeness'])}" for name, op in flags["operating"].items()]
    return ["Purity (right redshifts among the answers kept) and completeness (right and kept, among all) against the "
            "fraction flagged, as a cut on z_conf sweeps (lines); the dots are the model's own `zwarn == 0` choice ("
            + "; ".join(words) + "):", "", "![purity and completeness against the fraction flagged](flag_curve.png)", ""]


def sdss_card(build: dict[str, Any], real_rows: list[dict] | None, notes: dict[str, str]) -> ModelCard:
    """The card of a build of the ``sdss`` recipe (``build`` as :func:`astrocnn.zoo.build.build` returns it);
    ``notes`` holds the prose sections written by hand (intended use, limitations, the real files' story)."""
    first = build["per_seed"][0]
    scores = first["heldout"]
    meta = {
        "name": "sdss", "version": build.get("version", "1.0"), "hash": build.get("hash", ""),
        "task": "class (qso, galaxy, star) and redshift of an SDSS / BOSS spectrum",
        "inputs": "SDSS spec / spec-lite FITS files (BOSS 3600-10400 A, SDSS-I/II 3800-9200 A), prepared on the "
                  "paper's grid of 4618 pixels, 3600-10325 A",
        "outputs": "class, p_qso, p_galaxy, p_star, z, z_err, z_conf, zwarn (0 = use it)",
        "training_data": "simulated BOSS/SDSS-like surveys (astrocnn.spectra.simulate), objects and seeds: "
                         + ", ".join(f"{part} {v['n']} (seed {v['seed']})" for part, v in build["data_spec"].items()),
        "command": build.get("command", ""), "duration_s": round(float(build["seconds"])), "machine": build["machine"],
        "training_seeds": build["seeds"], "metrics": headline(scores),
        "tolerances": {k: v["tolerance"] for k, v in spread(build["per_seed"]).items()},
        "licence": "BSD-3-Clause (the weights, as the code)",
    }
    meta = json.loads(json.dumps(meta, default=str))  # plain data for YAML
    body = ["", f"# `sdss` {meta['version']}: class and redshift for SDSS spectra", "", notes.get("intended_use", ""), "",
            "## How it was made", "", notes.get("training", ""), "", f"```bash\n{meta['command']}\n```", "",
            (f"Training took {build['training_s'] / 60:.0f} min in all (the runs' own clocks, over resumed "
             f"invocations); the last invocation {meta['duration_s'] / 60:.0f} min, " if build.get("training_s") else "Built in "
             f"{meta['duration_s'] / 60:.0f} min ") + f"on {build['machine'].get('processor')} "
            f"({build['machine'].get('cpus')} CPUs, torch {build['machine'].get('torch')}).", "",
            "## Held-out simulated survey", "", *_class_table(scores), "", *_flag_lines(scores.get("flags")),
            "Quasars by redshift:", "", *_binned_table(scores["qso"].get("per_z", []), "z", 6000), "",
            "Quasars by S/N per pixel:", "", *_binned_table(scores["qso"].get("per_snr", []), "snr", 6000), ""]
    base = build.get("baselines", {}).get("galaxy_templatefit")
    if base and "galaxy" in scores:
        body += [f"Galaxies against template fitting on the same {base['n']} held-out galaxies "
                 f"({base['n_templates']} eigenspectra learned from the training galaxies, "
                 f"{1e3 * base['cpu_seconds_per_spectrum']:.1f} ms of CPU per spectrum): median \\|dv\\| "
                 f"{_num(scores['galaxy']['median_abs_dv_kms'])} km/s (model) against {_num(base['median_abs_dv_kms'])} "
                 f"km/s (templates); within 1000 km/s {_pct(scores['galaxy']['frac_dv_lt_1000'])} against "
                 f"{_pct(base['frac_dv_lt_1000'])}.", ""]
    for name in ("galaxy", "star"):
        if name in scores:
            body += [f"{'Galaxies' if name == 'galaxy' else 'Stars'} by S/N per pixel:", "", *_binned_table(scores[name]["per_snr"], "snr", 1000), ""]
    body += ["## Spread over training seeds", "", "| number | mean | std | min | max | tolerance |", "|---|---|---|---|---|---|"]
    for name, v in spread(build["per_seed"]).items():
        body.append(f"| {name} | {v['mean']:.4g} | {v['std']:.2g} | {v['min']:.4g} | {v['max']:.4g} | {v['tolerance']:.2g} |")
    if real_rows:
        body += ["", "## Real spectra, as they come", "", *real_table(real_rows), "", notes.get("real", "")]
    body += ["", "## Limitations", "", notes.get("limitations", ""), ""]
    return ModelCard(meta, "\n".join(body))
