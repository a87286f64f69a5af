"""Recipes that make the ready-made models from scratch: ``astrocnn zoo build sdss --out DIR``.

Zoo layer. A build simulates its data, trains the model's networks, assembles the model folder
(:mod:`astrocnn.zoo.registry`), sets the warning thresholds and the redshift-error scale on a calibration
survey, scores the model on a held-out survey and on the real files beside the repository, and writes the
card. ``--seeds 0,1,2`` trains the recipe once per training seed and puts the spread of the numbers in the
card; ``--check CARD`` compares a build with a card's numbers within the card's tolerances. The shipped
models are what this produced (their cards say the command, the duration and the machine).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from astrocnn.core.config import default_config
from astrocnn.core.errors import InputError
from astrocnn.core.io import write_text_atomic
from astrocnn.core.metrics import dv_kms
from astrocnn.spectra.prepare import simulate_prepared
from astrocnn.spectra.templatefit import build_templates, evaluate_templatefit
from astrocnn.train import train

from astrocnn.version import __version__
from astrocnn.zoo.decode import Thresholds
from astrocnn.zoo.cards import sdss_card
from astrocnn.zoo.evaluate import (choose_thresholds, flag_curves, plot_flag_curves, real_files, score_model, truth_of,
                                   z_err_scale)
from astrocnn.zoo.registry import CARD, MANIFEST, MODEL_FORMAT, MODEL_FORMAT_VERSION, file_sha256, read_model
from astrocnn.zoo.sdss import SdssModel, torch_components

log = logging.getLogger(__name__)

CLASSES = ["qso", "galaxy", "star"]

#: the sdss recipe: data (objects, simulation seed), networks (role -> task, configuration sections), which
#: output answers what, and the targets of the warning flags. A classifier followed by per-class redshift
#: networks won over one network with both heads at equal epochs (docs/training-experiments.md, "The
#: ready-made sdss model"): the galaxies' redshifts gain most from their own network's finer bins.
EPOCHS = {"max_epochs": 8, "patience": 8}
SDSS_RECIPE: dict[str, Any] = {
    "name": "sdss",
    "version": "1.0",
    "data": {"train": (40000, 101), "calibrate": (20000, 103), "heldout": (10000, 102)},
    "components": {
        "classifier": ("classify", {"task": {"classes": CLASSES}, "train": dict(EPOCHS)}),
        "z_qso": ("redshift", {"train": dict(EPOCHS)}),
        # galaxies and stars: 500 bins over -0.005 < z < 1.5, 550 km/s wide (the quasars' are 1170 km/s)
        "z_lowz": ("redshift", {"task": {"classes": ["galaxy", "star"], "z_min": -0.005, "z_max": 1.5},
                                "train": dict(EPOCHS)}),
    },
    "class_output": {"component": "classifier", "output": 0},
    "redshift_outputs": {"qso": {"component": "z_qso", "outputs": [0, 1]},
                         "galaxy": {"component": "z_lowz", "outputs": [0, 1]},
                         "star": {"component": "z_lowz", "outputs": [0, 1]}},
    # an answer is flagged when it is less sure than 99.5% of the right answers of its class on the calibration
    # survey (20,000 objects, so that the 0.5% tail holds ~60 right quasars): at 1% the flags took two right
    # BOSS epochs of a real quasar whose answers were less sure than the simulation's (docs/training-experiments.md)
    "flag_quantile": 0.005,
}
RECIPES = {"sdss": SDSS_RECIPE}
#: the figure beside the card: purity and completeness against the fraction flagged (held-out survey)
FLAG_FIGURE = "flag_curve.png"


def _simulate(out: Path, recipe: dict, scale: float, workers: int | None) -> dict[str, Path]:
    paths = {}
    for part, (n, seed) in recipe["data"].items():
        paths[part] = out / "data" / f"{part}_{seed}.h5"
        if not paths[part].exists():
            simulate_prepared(max(300, int(n * scale)), seed, paths[part], workers=workers)
    return paths


def _train_components(out: Path, recipe: dict, data: Path, seed: int, scale: float) -> dict[str, Path]:
    runs = {}
    for role, (task, sections) in recipe["components"].items():
        sections = {k: dict(v) for k, v in sections.items()}
        tr = sections.setdefault("train", {})
        tr.update(seed=seed, progress_bar=False)
        if scale < 1:
            tr["max_epochs"] = max(1, int(round(tr.get("max_epochs", 15) * scale)))
        runs[role] = out / "runs" / f"{role}-seed{seed}"
        # resume: a build that was stopped goes on where it was; a finished run with these settings is kept
        train(task, data, runs[role], default_config(task, **sections), resume=True)
    return runs


def assemble(model_dir: Path, recipe: dict, runs: dict[str, Path], extra: dict[str, Any]) -> Path:
    """The model folder: each component's best weights under a name carrying their hash, and the manifest."""
    model_dir.mkdir(parents=True, exist_ok=True)
    components = {}
    for role, run in runs.items():
        digest = file_sha256(run / "best.safetensors")
        name = f"{role}-{digest[:12]}.safetensors"
        shutil.copyfile(run / "best.safetensors", model_dir / name)
        components[role] = {"file": name, "sha256": digest}
    manifest = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "name": recipe["name"],
                "version": recipe["version"], "kind": "sdss", "classes": CLASSES, "components": components,
                "class_output": recipe["class_output"], "redshift_outputs": recipe["redshift_outputs"], **extra}
    write_text_atomic(model_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return model_dir


def calibrate(model_dir: Path, recipe: dict, calibration: Path) -> dict[str, Any]:
    """Warning thresholds and the z_err scale, set on the calibration survey and written into the manifest."""
    info = read_model(model_dir)
    model = SdssModel(info, torch_components(info))
    raw = model.answers_for_set(calibration)
    truth = truth_of(calibration)
    thresholds, achieved = choose_thresholds(raw, truth, Thresholds(), quantile=recipe["flag_quantile"])
    qso = (truth["class"] == "qso") & (raw["class"] == "qso")
    scale = z_err_scale(raw["z"][qso], raw["z_err"][qso] / model.z_err_scale, truth["z"][qso])
    per_class = {name: asdict(t) for name, t in thresholds.items()}
    manifest = dict(info.manifest, thresholds=per_class, z_err_scale=scale)
    write_text_atomic(model_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return {"thresholds": per_class, "z_err_scale": scale, "on_calibration": achieved}


def heldout_scores(model_dir: Path, heldout: Path) -> dict[str, Any]:
    """The model's scores on a held-out survey (see :func:`astrocnn.zoo.evaluate.score_model`)."""
    info = read_model(model_dir)
    model = SdssModel(info, torch_components(info))
    raw, truth = model.answers_for_set(heldout), truth_of(heldout)
    return {**score_model(raw, truth), "flags": flag_curves(raw, truth)}


def galaxy_baseline(train_set: Path, heldout: Path, z_max: float = 1.5) -> dict[str, Any]:
    """The classical yardstick for galaxy redshifts: template fitting (:mod:`astrocnn.spectra.templatefit`)
    with eigenspectra learned from the training galaxies, on every held-out galaxy."""
    templates = build_templates(train_set, classes=("galaxy",), z_max=z_max)
    result, fit, z_true = evaluate_templatefit(heldout, templates, classes=("galaxy",), z_max=z_max, return_fit=True)
    adv = np.abs(dv_kms(fit.z, z_true))
    return {"n": int(z_true.size), "median_abs_dv_kms": float(np.median(adv)),
            "frac_dv_lt_1000": float(np.mean(adv < 1000.0)), "cpu_seconds_per_spectrum": result["cpu_seconds_per_spectrum"],
            "n_templates": templates.n_components}


def build(name: str, out: str | os.PathLike, *, seeds: tuple[int, ...] = (0,), scale: float = 1.0,
          workers: int | None = None) -> dict[str, Any]:
    """Run recipe ``name`` into folder ``out``: ``out/model`` is the model of the first seed, ``out/build.json``
    what every seed scored. ``scale`` < 1 shrinks the data and epochs (a test of the recipe, not a model)."""
    if name not in RECIPES:
        raise InputError(None, f"no recipe {name!r}; recipes: {sorted(RECIPES)}")
    recipe, out, t0 = RECIPES[name], Path(out), time.time()
    data = _simulate(out, recipe, scale, workers)
    per_seed = []
    for seed in seeds:
        t_seed = time.time()
        runs = _train_components(out, recipe, data["train"], seed, scale)
        model_dir = assemble(out / ("model" if seed == seeds[0] else f"model-seed{seed}"), recipe, runs,
                             {"training_seed": seed, "astrocnn_version": __version__})
        cal = calibrate(model_dir, recipe, data["calibrate"])
        per_seed.append({"seed": seed, "model": str(model_dir), "calibration": cal,
                         "heldout": heldout_scores(model_dir, data["heldout"]), "seconds": time.time() - t_seed})
    baselines = {"galaxy_templatefit": galaxy_baseline(data["train"], data["heldout"])} if scale >= 1 else {}
    doc = {"recipe": name, "seeds": list(seeds), "scale": scale, "data": {k: str(v) for k, v in data.items()},
           "baselines": baselines,
           "data_spec": {k: {"n": max(300, int(n * scale)), "seed": s} for k, (n, s) in recipe["data"].items()},
           "per_seed": per_seed, "seconds": time.time() - t0, "machine": machine()}
    write_text_atomic(out / "build.json", json.dumps(doc, indent=1, default=float) + "\n")
    return doc


#: the prose of the sdss card (the numbers come from the build)
SDSS_NOTES = {
    "intended_use": "Class (quasar, galaxy or star) and redshift for SDSS and BOSS spectra, with no training: for "
                    "a first look at a folder of spectra, for choosing targets, and for teaching. Use the answers with "
                    "`zwarn == 0`; the others say why not in their bits (`astrocnn.spectra.zwarn.ZWarn`). Not for "
                    "spectra outside 3600-10325 A or of other instruments without checking first.",
    "training": "Trained only on astrocnn's simulated survey (quasars 60%, galaxies 30%, stars 10%; BOSS and "
                "SDSS-I/II instruments), never on real spectra. The warning thresholds and the z_err scale were set "
                "on a separate simulated calibration survey; every number below is on a third, held-out one.",
    "real": "Every labelled file gets the pipeline's class. The two quasar redshifts that are wrong are flagged "
            "(`zwarn` != 0), and each has a reason. **6001-56072-0707** (BOSS, pipeline z = 2.428) is a weak-line "
            "quasar: a blue continuum with a faint Lyman-alpha and almost no CIV, unlike any simulated quasar; the "
            "model reads one weak line as another (1 + z of its answer and the pipeline's differ by 1.25, between "
            "CIII]/CIV = 1.23 and CIV/Ly-alpha = 1.27), with a strong second solution. **1325-52762-0133**, the "
            "SDSS-I epoch of quasar RM017 (z = 0.456), starts at 3795 A, so its one strong broad line, MgII at "
            "4075 A, lies 280 A from the blue end on a red host-galaxy continuum; the model takes it for CIV "
            "(2798/1549 = 1.81; 1 + z of its answer over the pipeline's: 1.79) with a low `z_conf`. The three BOSS "
            "epochs of the same quasar, which start at 3600 A, are right and unflagged.",
    "limitations": "The simulation is the model's whole world: parametric stars (no stellar library), an Fe II "
                   "pseudo-template, no label noise, a simpler sky than BOSS. Broad-absorption-line quasars, "
                   "low S/N and SDSS-I spectra (less blue coverage) are where it errs most; see the tables.",
}


def build_card(name: str, out: str | os.PathLike, *, seeds: tuple[int, ...] = (0,), scale: float = 1.0,
               workers: int | None = None, real: str | os.PathLike | None = None, command: str = "") -> Path:
    """:func:`build`, then the card of ``out/model`` with the real files in ``real`` (a folder of SDSS spectra
    with an ``index.csv`` of the pipeline's answers) scored as they come. Returns the card's path."""
    doc = build(name, out, seeds=seeds, scale=scale, workers=workers)
    model_dir = Path(out) / "model"
    info = read_model(model_dir)
    rows = None
    if real is not None and Path(real).is_dir():
        model = SdssModel(info, torch_components(info))
        rows = real_files(model.predict([real], workers=workers), Path(real) / "index.csv")
    doc.update(command=command, version=RECIPES[name]["version"], hash=info.hash)
    write_text_atomic(Path(out) / "build.json", json.dumps({**doc, "real": rows}, indent=1, default=float) + "\n")
    return write_card(out)


def training_seconds(runs: Path) -> float:
    """The training time of every run of a build, from each run's history (the time since its start at its
    last epoch), so that a build resumed over several invocations still states its whole cost."""
    total = 0.0
    for history in sorted(runs.glob("*/history.csv")):
        lines = history.read_text().splitlines()
        if len(lines) > 1:
            head, last = lines[0].split(","), lines[-1].split(",")
            total += float(last[head.index("time_s")]) if "time_s" in head else 0.0
    return total


def write_card(out: str | os.PathLike) -> Path:
    """The card and the flag figure of ``out/model`` from what the build recorded in ``out/build.json``, with
    today's hand-written notes: rewriting the prose needs no retraining or rescoring."""
    record = Path(out) / "build.json"
    if not record.exists():
        raise InputError(record, "no build here to write a card from: run astrocnn zoo build first")
    doc = json.loads(record.read_text())
    doc["training_s"] = training_seconds(Path(out) / "runs")
    model_dir = Path(out) / "model"
    flags = doc["per_seed"][0]["heldout"]["flags"]
    plot_flag_curves(flags["curves"], flags["operating"], model_dir / FLAG_FIGURE)
    card = sdss_card(doc, doc.get("real"), SDSS_NOTES)
    card.write(model_dir / CARD)
    return model_dir / CARD


def machine() -> dict[str, Any]:
    """What ran the build: platform, processor count, torch version and threads."""
    import torch  # already loaded by training

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": str(torch.__version__), "threads": torch.get_num_threads()}
