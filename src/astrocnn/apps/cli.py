"""The ``astrocnn`` command: a thin layer over the Python API.

Applications layer, the top of the house: each subcommand parses its options and calls one function of the
API; nothing here computes anything. Subcommands import what they run when they run, so ``astrocnn --help``
answers without loading torch.

``create_parser()`` builds the parser and ``main(argv=None) -> int`` runs it, so tests call
``main([...])``. Errors about user input end with a one-line message and exit status 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from astrocnn.version import __version__
from astrocnn.core.errors import AstrocnnError, InputError

log = logging.getLogger("astrocnn")


def _classes(text: str) -> list[str]:
    from astrocnn.spectra.spectrum import CLASS_NAMES

    names = [c.strip().lower() for c in text.split(",") if c.strip()]
    aliases = {"quasar": "qso", "galaxies": "galaxy", "stars": "star", "qsos": "qso"}
    names = [aliases.get(c, c) for c in names]
    bad = [c for c in names if c not in CLASS_NAMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown classes {bad}; choose from {','.join(CLASS_NAMES)}")
    return names


def _add_simulate(sub) -> None:
    """``astrocnn simulate``."""
    sim = sub.add_parser("simulate", help="simulate a data set")
    sim_sub = sim.add_subparsers(dest="what", required=True)
    s = sim_sub.add_parser("spectra", help="a BOSS-like survey of quasars, galaxies and stars, prepared for training")
    s.add_argument("--n", type=int, required=True, help="number of objects")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True, help="prepared set to write (.h5)")
    s.add_argument("--classes", type=_classes, default=None, help="comma-separated subset of qso,galaxy,star")
    s.add_argument("--sdss-dir", type=Path, default=None,
                   help="also write every object as an SDSS spec-lite FITS file here, with a DR16Q-like catalog.fits")
    s.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")

    s = sim_sub.add_parser("gw", help="G2Net-like three-detector strain (Kaggle layout) with truth.csv")
    s.add_argument("--n", type=int, required=True, help="number of samples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, required=True, help="folder to write train/a/b/c/<id>.npy and the labels into")
    s.add_argument("--snr-median", type=float, default=8.0, help="median injected network SNR (lognormal)")
    s.add_argument("--snr-sigma", type=float, default=0.5, help="lognormal sigma of the injected SNR")
    s.add_argument("--approximant", default="IMRPhenomPv2", help="lalsimulation waveform (IMRPhenomPv2, IMRPhenomD)")
    s.add_argument("--positive-fraction", type=float, default=0.5)
    s.add_argument("--noise", choices=("design", "varied"), default="design",
                   help="design: every sample's noise from the design curves; varied: a PSD drawn per sample and "
                        "detector around them (tilts, bumps, lines, scales), to train a network that does not "
                        "learn one noise curve")
    s.add_argument("--workers", type=int, default=None)


def _add_prepare(sub) -> None:
    """``astrocnn prepare``."""
    prep = sub.add_parser("prepare", help="turn real files into a prepared set")
    prep_sub = prep.add_subparsers(dest="what", required=True)
    s = prep_sub.add_parser("sdss", help="SDSS spec / spec-lite FITS files or folders of them")
    s.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--catalog", type=Path, default=None, help="DR16Q-like catalogue FITS giving the labels")
    s.add_argument("--label-column", default="Z", help="catalogue redshift column (Z, Z_VI, Z_PIPE, ...)")
    s.add_argument("--class-column", default=None, help="catalogue class column (CLASS_PERSON, OBJ_CLASS, ...)")
    s.add_argument("--min-coverage", type=float, default=None, help="minimum fraction of the grid with data (0.5)")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="skip bad files and list them in FILE.rejects.csv (default), or stop at the first")
    _rerun_options(s)

    s = prep_sub.add_parser("arrays", help="spectra already on a log-wavelength grid: DR16Q-layout HDF5 files like "
                                           "the paper's, or the workshop's CSV pair (flux-*.csv with zpipe-*.csv)")
    s.add_argument("inputs", nargs="+", type=Path, metavar="FILE")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--label-column", default="z_vi", help="HDF5: the redshift dataset (z_vi, z_pipe, z_dr12q ...)")
    s.add_argument("--class", dest="cls", choices=("qso", "galaxy", "star"), default=None,
                   help="class of every spectrum (default: from the file name: quasar, galaxy or star)")
    s.add_argument("--normalise", choices=("given", "astrocnn"), default=None,
                   help="'given': the values as the files give them (HDF5: flux_norm; then predict refuses FITS "
                        "files); 'astrocnn': the flux normalised by astrocnn, zero mean and unit variance per "
                        "spectrum (HDF5: flux). Default: given when the HDF5 files have flux_norm, and for CSV")
    s.add_argument("--loglam-start", type=float, default=None, help="log10(wavelength / A) of the first pixel")
    s.add_argument("--loglam-step", type=float, default=None, help="pixel width in log10 (dex)")
    s.add_argument("--wavelength", type=Path, default=None,
                   help="file of the pixel wavelengths (.npy or text; Angstrom or log10), uniform in log10")
    s.add_argument("--min-coverage", type=float, default=None,
                   help="fraction of finite pixels below which a spectrum is bad (0.5)")
    s.add_argument("--skip-bad-rows", action="store_true",
                   help="leave bad spectra out and list them in OUT.rejects.csv (default: refuse the file)")
    s.add_argument("--force", action="store_true", help="prepare again even if OUT is up to date")

    s = prep_sub.add_parser("g2net", help="a G2Net-layout folder: whiten, band-pass and store for training")
    s.add_argument("directory", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--whitener", type=Path, default=None,
                   help="prepared TRAINING set whose whitening spectrum to use (default: estimate it from this "
                        "folder, see --psd)")
    s.add_argument("--psd", choices=("noise", "data"), default="noise",
                   help="without --whitener, the whitening spectrum of this folder: noise = the average of its "
                        "noise-only samples (reads the labels: a training set only); data = the median of all "
                        "its samples, no labels read (any set; what predict does by default)")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="skip unreadable samples and list them in FILE.rejects.csv (default), or stop at the first")
    _rerun_options(s)


def _add_baseline(sub) -> None:
    """``astrocnn baseline``."""
    base = sub.add_parser("baseline", help="classical reference methods")
    base_sub = base.add_subparsers(dest="what", required=True)
    s = base_sub.add_parser("gw", help="coincident matched filter with an aligned-spin IMRPhenomD template bank")
    s.add_argument("--data", type=Path, required=True, help="G2Net-layout folder with labels")
    s.add_argument("--psd-from", default=None,
                   help="TRAINING folder, prepared training set (.h5), 'design', or 'data' (the median PSD of all "
                        "of --data's samples, no labels read: what predict whitens a folder with) for the noise "
                        "spectrum (default: the data's own noise-only samples, which leaks labels; a warning says so)")
    s.add_argument("--bank", default="default",
                   help="template bank: 'default' (252 templates on a grid), 'dense' (the shipped stochastic bank, "
                        "scripts/gw_bank.py) or a CSV of mass1,mass2,spin1z,spin2z rows")
    s.add_argument("--max-samples", type=int, default=None)
    s.add_argument("--out", type=Path, default=None, help="metrics JSON")
    s.add_argument("--scores-out", type=Path, default=None,
                   help="per-sample scores CSV (id,target,snr,score), to compare a network with on the same samples")
    s = base_sub.add_parser("redshift", help="quasar redshifts by template fitting (PCA eigenspectra, chi2 over z)")
    s.add_argument("--data", type=Path, required=True, help="prepared set with redshifts to fit and score")
    s.add_argument("--train", type=Path, default=None, help="prepared TRAINING set to learn the templates from")
    s.add_argument("--templates", type=Path, default=None,
                   help="templates file: read if it exists, else learned from --train and written here")
    s.add_argument("--n-components", type=int, default=10)
    s.add_argument("--max-spectra", type=int, default=None, help="training spectra used for the templates")
    s.add_argument("--n", type=int, default=None, help="fit a seeded random subset of this many spectra")
    s.add_argument("--out", type=Path, default=None, help="metrics JSON")


def _add_show(sub) -> None:
    """``astrocnn show``."""
    s = sub.add_parser("show", help="plot a prepared spectrum with its lines marked")
    s.add_argument("file", type=Path)
    s.add_argument("--index", type=int, nargs="+", default=[0])
    s.add_argument("--out", type=Path, default=None, help="PNG to write (default: FILE-<index>.png)")


def _add_train_and_apply(sub) -> None:
    """``astrocnn train | evaluate | predict | bench``."""
    s = sub.add_parser("train", help="train the paper's network on a prepared set")
    s.add_argument("task", choices=("redshift", "classify", "detect", "classify_redshift"))
    s.add_argument("--data", type=Path, required=True, help="prepared set (.h5)")
    s.add_argument("--out", type=Path, required=True, help="run folder to write")
    s.add_argument("--config", type=Path, default=None, help="YAML with any of the sections task/model/data/train")
    s.add_argument("--max-epochs", type=int, default=None)
    s.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    s.add_argument("--patience", type=int, default=None, help="epochs without a better validation loss before stopping")
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--lr", type=float, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--devices", type=int, default=None, help="processes (CPU) or GPUs; > 1 runs DDP")
    s.add_argument("--accelerator", default=None, help="cpu, gpu, auto ...")
    s.add_argument("--classes", type=_classes, default=None,
                   help="classify: classes to separate (default qso,galaxy; add star for three)")
    s.add_argument("--head", choices=("bins", "mse"), default=None,
                   help="redshift: binned log(1+z) head (default) or the paper's single MSE output")
    s.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last completed epoch (state saved after every epoch, "
                        "safe against kill -9) and end as an uninterrupted run would; give the same data and "
                        "settings (a difference is refused, naming it). A finished run is left as it is; a folder "
                        "with no saved state starts a new run, so a requeued job can always pass --resume")
    s.add_argument("--force", action="store_true",
                   help="replace the run already in --out (without --resume or --force, a folder holding a run is "
                        "refused and left as it is)")

    s = sub.add_parser("evaluate", help="score a trained run on a prepared set")
    s.add_argument("run", type=Path)
    s.add_argument("--data", type=Path, required=True)
    s.add_argument("--out", type=Path, default=None, help="metrics.json to write (plots go beside it)")

    s = sub.add_parser("predict", help="apply a ready-made model (--model sdss) or a trained run to SDSS files, "
                                       "folders, prepared sets, G2Net folders or GWOSC files",
                       usage="astrocnn predict (--model NAME | RUN) INPUT... --out CSV [options]")
    s.add_argument("paths", nargs="+", type=Path, metavar="RUN_OR_INPUT",
                   help="with --model, the inputs; without, a run folder (or weights file) and then the inputs")
    s.add_argument("--model", default=None, metavar="NAME",
                   help="a ready-made model ('astrocnn models' lists them; NAME@HASH pins one; or a model folder)")
    s.add_argument("--out", type=Path, required=True, help="predictions CSV")
    s.add_argument("--batch-size", type=int, default=1024)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="give an input that cannot be used a row with the reason in 'error' (default), or stop "
                        "at the first such input with exit status 2 and no predictions file")
    s.add_argument("--psd", choices=("data", "training"), default=None,
                   help="detection runs: the noise spectrum that whitens G2Net folders and GWOSC files: data "
                        "(default) = estimated from the data being scored, no labels read (a folder: median over "
                        "its samples, at least 64; a GWOSC segment: running median Welch PSD); training = the "
                        "run's training spectrum. The 'psd' column of the output says which")

    sub.add_parser("models", help="list the ready-made models: name, version, pinned name, task, card")
    zoo = sub.add_parser("zoo", help="make a ready-made model from scratch with its recipe")
    zoo_sub = zoo.add_subparsers(dest="what", required=True)
    s = zoo_sub.add_parser("build", help="simulate, train, calibrate and score a model; write its folder and card")
    s.add_argument("name", choices=("sdss",))
    s.add_argument("--out", type=Path, required=True, help="build folder (OUT/model is the model)")
    s.add_argument("--seeds", default="0", help="training seeds, comma-separated; the first seed's model is OUT/model, "
                                                "the card gives their spread")
    s.add_argument("--scale", type=float, default=1.0, help="shrink data and epochs (< 1: a test of the recipe)")
    s.add_argument("--real", type=Path, default=Path("../shared/data/sdss"),
                   help="real spectra with an index.csv of the pipeline's answers, scored in the card (if present)")
    s.add_argument("--check", type=Path, default=None,
                   help="a model card: fail (exit 2) unless this build's held-out numbers are within its tolerances")
    s.add_argument("--card-only", action="store_true",
                   help="rewrite OUT/model's card and figure from OUT/build.json (after editing the card's notes)")
    s.add_argument("--workers", type=int, default=None)

    s = sub.add_parser("bench", help="measure throughputs on this machine (conv direct vs FFT, loader, simulators, predict)")
    s.add_argument("--quick", action="store_true", help="smaller sizes, under a minute")
    s.add_argument("--out", type=Path, default=Path("bench.json"))


def _add_export(sub) -> None:
    """``astrocnn export``."""
    s = sub.add_parser("export", help="a trained run or a ready-made model for other runtimes (ONNX)",
                       usage="astrocnn export RUN_OR_MODEL --format onnx --out OUT")
    s.add_argument("source", metavar="RUN_OR_MODEL",
                   help="a run folder, a weights file (.safetensors), a ready-made model's name or a model folder")
    s.add_argument("--format", choices=("onnx",), default="onnx", help="onnx (needs the onnx extra)")
    s.add_argument("--out", type=Path, required=True,
                   help="a run: the .onnx file to write; a model: the folder to write (one .onnx per network, the "
                        "manifest and the card), loaded by load_model(OUT, runtime='onnx')")


def _add_demo(sub) -> None:
    """``astrocnn demo``."""
    s = sub.add_parser("demo", help="the main job on built-in simulated data")
    s.add_argument("--out", type=Path, default=Path("runs/demo"))
    s.add_argument("--n", type=int, default=None, help="objects to simulate")
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--gw-n", type=int, default=6000, help="strain samples for the detection part (0 = leave it out)")
    s.add_argument("--gw-minutes", type=float, default=6.0, help="training time of the detection part")


def create_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="astrocnn", description="1D CNNs for astronomical spectra and strain.")
    p.add_argument("--version", action="version", version=f"astrocnn {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_prepare(sub)
    _add_baseline(sub)
    _add_show(sub)
    _add_train_and_apply(sub)
    _add_export(sub)
    _add_demo(sub)
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (main() may run many times in one process, e.g. in tests)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _rerun_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--force", action="store_true",
                   help="prepare again even if OUT is up to date, discarding the parts of an interrupted run")
    s.add_argument("--part-size", type=int, default=None, metavar="N",
                   help="inputs per part kept in OUT.parts/ while preparing, so an interrupted run resumes where "
                        "it stopped (default 2048)")


def _setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else (logging.WARNING if quiet else logging.INFO)
    root = logging.getLogger("astrocnn")
    root.setLevel(level)
    if not any(getattr(h, "_astrocnn", False) for h in root.handlers):
        h = _StderrHandler()
        h.setFormatter(logging.Formatter("astrocnn: %(message)s"))
        h._astrocnn = True  # type: ignore[attr-defined]
        root.addHandler(h)


def _quiet_lightning() -> None:
    """Lightning's banner lines (GPU available ..., tips) are noise for our users unless debugging.

    Called after Lightning is imported: importing it resets its loggers to INFO.
    """
    import pytorch_lightning  # noqa: F401

    level = logging.DEBUG if logging.getLogger("astrocnn").level <= logging.DEBUG else logging.WARNING
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(level)


def _cmd_simulate(args) -> int:
    if args.what == "gw":
        from astrocnn.gw.simulate import simulate_g2net

        out = simulate_g2net(args.n, args.seed, args.out, snr_median=args.snr_median, snr_sigma=args.snr_sigma,
                             approximant=args.approximant, positive_fraction=args.positive_fraction,
                             workers=args.workers, noise=args.noise)
        print(f"{out}: {args.n} samples ({args.noise} noise)")
        return 0
    from astrocnn.spectra.prepare import simulate_prepared
    from astrocnn.spectra.spectrum import CLASS_NAMES

    report = simulate_prepared(args.n, args.seed, args.out, classes=args.classes or CLASS_NAMES,
                               sdss_dir=args.sdss_dir, workers=args.workers)
    print(report.summary)
    if args.sdss_dir:
        print(f"{args.sdss_dir}: {args.n} spec-lite files and catalog.fits")
    return 0


def _cmd_prepare(args) -> int:
    if args.what == "g2net":
        from astrocnn.gw.prepare import prepare_g2net

        if args.whitener is not None and args.psd != "noise":
            raise InputError(args.whitener, "give --whitener (a training set's spectrum) or --psd data, not both")
        out = prepare_g2net(args.directory, args.out, whitener=args.whitener, workers=args.workers,
                            on_error=args.on_error, force=args.force, psd=args.psd, **_part_size(args))
        print(out)
        return 0
    if args.what == "arrays":
        return _prepare_arrays(args)
    from astrocnn.spectra.prepare import prepare_sdss
    from astrocnn.spectra.preprocess import PreprocessConfig

    config = PreprocessConfig() if args.min_coverage is None else PreprocessConfig(min_coverage=args.min_coverage)
    report = prepare_sdss(args.inputs, args.out, catalog=args.catalog, label_column=args.label_column,
                          class_column=args.class_column, config=config, workers=args.workers,
                          on_error=args.on_error, force=args.force, **_part_size(args))
    print(report.summary)
    return 0


def _prepare_arrays(args) -> int:
    from astrocnn.spectra.arrays import prepare_arrays

    if args.min_coverage is not None and not 0 <= args.min_coverage <= 1:
        raise InputError(None, f"--min-coverage must lie in [0, 1], got {args.min_coverage}")
    extra = {} if args.min_coverage is None else {"min_coverage": args.min_coverage}
    report = prepare_arrays(args.inputs, args.out, label_column=args.label_column, cls=args.cls,
                            normalisation=args.normalise, loglam_start=args.loglam_start,
                            loglam_step=args.loglam_step, wavelength=args.wavelength,
                            skip_bad_rows=args.skip_bad_rows, force=args.force, **extra)
    print(report.summary)
    return 0


def _part_size(args) -> dict:
    if args.part_size is None:
        return {}
    if args.part_size < 1:
        raise InputError(None, f"--part-size must be at least 1, got {args.part_size}")
    return {"part_size": args.part_size}


def _cmd_show(args) -> int:
    from astrocnn.spectra.plots import show_prepared

    out = show_prepared(args.file, args.index, args.out)
    print(out)
    return 0


def _train_config(args):
    import yaml

    from astrocnn.core.config import RunConfig, default_config

    sections: dict = {}
    if args.config is not None:
        RunConfig.load(args.config)  # validates the file, names it in errors
        raw = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        sections = {k: dict(raw[k]) for k in ("task", "model", "data", "train") if raw.get(k)}
    train = sections.setdefault("train", {})
    for flag, key in (("max_epochs", "max_epochs"), ("max_minutes", "max_minutes"), ("patience", "patience"),
                      ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed"), ("devices", "devices"),
                      ("accelerator", "accelerator")):
        if getattr(args, flag) is not None:
            train[key] = getattr(args, flag)
    task = sections.setdefault("task", {})
    task.pop("name", None)
    if args.classes is not None:
        task["classes"] = args.classes
    if args.head is not None:
        task["head"] = args.head
    try:
        return default_config(args.task, **sections)
    except (TypeError, ValueError) as exc:
        raise InputError(args.config, str(exc)) from exc


def _cmd_train(args) -> int:
    from astrocnn.train import train

    _quiet_lightning()
    result = train(args.task, args.data, args.out, _train_config(args), resume=args.resume, force=args.force)
    if result is not None:
        m = result.metrics
        key = result.monitor
        print(f"{result.run_dir}: best epoch {result.best_epoch} of {result.epochs}; "
              f"test {key} = {m.get(key, float('nan')):.4f} (n = {m.get('n')}); {result.wall_s:.0f} s")
        print(json.dumps({k: v for k, v in m.items() if not isinstance(v, (list, dict))}))
    return 0


def _cmd_evaluate(args) -> int:
    from astrocnn.train import evaluate

    if args.out is None:
        metrics = evaluate(args.run, args.data)
    else:
        metrics = evaluate(args.run, args.data, args.out.parent, metrics_name=args.out.name)
    print(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}))
    return 0


def _cmd_predict(args) -> int:
    from astrocnn.apps.predict import predict_inputs, predict_with_model

    if args.model is not None:
        if args.psd is not None:
            raise InputError(None, "--psd is for detection runs, not ready-made models")
        _, rows = predict_with_model(args.model, args.paths, args.out, workers=args.workers, on_error=args.on_error)
    else:
        if len(args.paths) < 2:
            raise InputError(None, "give a run folder and at least one input, or --model NAME and the inputs")
        _, rows = predict_inputs(args.paths[0], args.paths[1:], args.out, batch_size=args.batch_size,
                                 workers=args.workers, on_error=args.on_error, psd=args.psd)
    n_err = sum(1 for r in rows if r[-1])
    print(f"{args.out}: {len(rows) - n_err} predictions, {n_err} inputs could not be used")
    return 0


def _cmd_models(args) -> int:
    from astrocnn.zoo import list_models

    for info in list_models():
        card = info.card()
        print(f"{info.name}\t{info.version}\t{info.name}@{info.hash}\t{card.meta.get('task', '')}\t{info.path / 'card.md'}")
    return 0


def _cmd_zoo(args) -> int:
    from astrocnn.zoo.build import build_card, write_card
    from astrocnn.zoo.cards import check
    from astrocnn.zoo.registry import ModelCard

    if args.card_only:
        print(write_card(args.out))
        return 0
    seeds = tuple(int(v) for v in args.seeds.split(","))
    card_path = build_card(args.name, args.out, seeds=seeds, scale=args.scale, workers=args.workers, real=args.real,
                           command="astrocnn " + " ".join(sys.argv[1:]))
    print(card_path)
    if args.check is not None:
        built = json.loads((args.out / "build.json").read_text())
        bad = check(ModelCard.read(args.check), built["per_seed"][0]["heldout"])
        for line in bad:
            print(f"astrocnn: outside the card's tolerance: {line}", file=sys.stderr)
        if bad:
            return 2
        print(f"{args.out}: reproduces {args.check} within its tolerances")
    return 0


def _cmd_export(args) -> int:
    from astrocnn.zoo.onnx import export_onnx

    out = export_onnx(args.source, args.out)
    if out.is_dir():
        print(f"{out}: the model in ONNX; load it with astrocnn.zoo.load_model({str(out)!r}, runtime='onnx')")
    else:
        print(f"{out}: the network in ONNX, its configuration and decoding in the file's metadata")
    return 0


def _cmd_baseline(args) -> int:
    if args.what == "redshift":
        return _baseline_redshift(args)
    from astrocnn.gw.baseline import baseline_metrics

    m = baseline_metrics(args.data, psd_from=args.psd_from, out=args.out, max_samples=args.max_samples,
                         scores_out=args.scores_out, bank=args.bank)
    print(json.dumps({k: v for k, v in m.items() if not isinstance(v, (list, dict))}))
    return 0


def _baseline_redshift(args) -> int:
    from astrocnn.core.io import write_text_atomic
    from astrocnn.spectra.templatefit import QuasarTemplates, build_templates, evaluate_templatefit

    if args.templates is not None and args.templates.exists():
        templates = QuasarTemplates.load(args.templates)
    elif args.train is None:
        raise InputError(args.templates, "no templates file here; give --train to learn them from a training set")
    else:
        templates = build_templates(args.train, n_components=args.n_components, max_spectra=args.max_spectra)
        if args.templates is not None:
            templates.save(args.templates)
    m = evaluate_templatefit(args.data, templates, n=args.n)
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(m, indent=1, default=float) + "\n")
    print(json.dumps({k: v for k, v in m.items() if not isinstance(v, (list, dict))}))
    return 0


def _cmd_bench(args) -> int:
    from astrocnn.apps.bench import format_table, run_bench

    result = run_bench(args.out, quick=args.quick)
    print(format_table(result))
    print(f"written to {args.out}")
    return 0


def _cmd_demo(args) -> int:
    from astrocnn.apps.demo import run_demo

    _quiet_lightning()

    report = run_demo(args.out, n=args.n, seed=args.seed, gw_n=args.gw_n, gw_minutes=args.gw_minutes)
    print(report)
    return 0


_COMMANDS = {"simulate": _cmd_simulate, "prepare": _cmd_prepare, "show": _cmd_show, "demo": _cmd_demo,
             "baseline": _cmd_baseline, "bench": _cmd_bench, "train": _cmd_train, "evaluate": _cmd_evaluate, "predict": _cmd_predict,
             "models": _cmd_models, "zoo": _cmd_zoo, "export": _cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    parser = create_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        return _COMMANDS[args.command](args)
    except AstrocnnError as exc:
        print(f"astrocnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("astrocnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
