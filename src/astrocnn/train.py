"""Task-agnostic training, evaluation and prediction on PyTorch Lightning.

Python API::

    from astrocnn.train import train, load_run, evaluate, predict, predict_arrays
    from astrocnn.config import default_config

    result = train("redshift", "survey.h5", "runs/z", default_config("redshift", train={"max_epochs": 20}))
    model, task, config = load_run("runs/z")
    scores = evaluate("runs/z", "other_survey.h5")
    out = predict_arrays("runs/z", flux, ivar)          # {"z": ..., "z_conf": ...}

    # gravitational-wave detection on a prepared strain set (astrocnn.gw.store.prepare_g2net)
    result = train("detect", "g2net_train.h5", "runs/gw", default_config("detect"))
    scores = evaluate("runs/gw", "g2net_test.h5")      # roc_auc, its bootstrap interval, tpr_at_fpr_0.01, per SNR
    # raw strain: astrocnn.gw.apply.predict_gwosc / predict_g2net_dir

A run folder holds ``config.yaml`` (the :class:`~astrocnn.config.RunConfig` that built it, with the fitted
task state and the input grid), ``split.npz`` (row indices of the train/val/test split), ``history.csv``
(one row per epoch), ``best.safetensors`` and ``last.safetensors`` (weights with the configuration in
their metadata: loading never unpickles anything), ``metrics.json`` (scores on the held-out test rows),
``test_predictions.csv`` and plots. Runs on strain sets also keep the whitening PSD in the weights files
(tensor ``preprocess.whitening_psd``, see :func:`load_preprocess`) and the whitener settings in
``config.input["preprocessing"]``, so raw strain is prepared for prediction exactly as the training set was.

Distributed training (``devices > 1``) runs DDP over spawned processes; only rank 0 writes files. Each
process takes its share of every global batch (see :mod:`astrocnn.data`), so results match a
single-process run up to floating-point summation order (and dropout streams, which differ by rank).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import __version__
from .config import RunConfig, default_config
from .data import AnySet, class_names_of, is_strain, make_inputs, make_loader, open_prepared, read_inputs, split_rows
from .errors import InputError
from .io import atomic_path, write_text_atomic
from .models.cnn import CNN, Network, he_uniform_
from .tasks import Task, make_task

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "astrocnn-weights"
WEIGHTS_VERSION = "1"
HISTORY_FILE = "history.csv"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.npz"
METRICS_FILE = "metrics.json"
#: weights-file tensors under this prefix are preprocessing state (e.g. the whitening PSD), not weights
PREPROCESS_PREFIX = "preprocess."


# ----------------------------------------------------------------------------------------------------------
# building and saving networks


def build_network(config: RunConfig, task: Task | None = None) -> Network:
    """A freshly He-uniform-initialised network for ``config`` (seed torch first for reproducibility)."""
    task = task or make_task(config.task)
    body = CNN(config.model)
    net = Network(body, task.make_head(body.features))
    return he_uniform_(net)


def save_weights(network: torch.nn.Module, config: RunConfig, path: str | os.PathLike,
                 preprocess: Mapping[str, Any] | None = None) -> None:
    """Write ``network``'s weights with ``config`` in the metadata (safetensors; atomic).

    preprocess : named arrays the inputs were prepared with (strain runs: ``whitening_psd``), stored as
        tensors ``preprocess.<name>`` beside the weights so prediction can prepare new data identically.
    """
    state = {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}
    for k, v in (preprocess or {}).items():
        state[PREPROCESS_PREFIX + k] = torch.as_tensor(np.asarray(v)).contiguous().clone()
    meta = {"format": WEIGHTS_FORMAT, "format_version": WEIGHTS_VERSION, "config": config.to_json()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=meta)


def _weights_file(run: str | os.PathLike, which: str) -> Path:
    run = Path(run)
    if run.is_file():
        return run
    if not run.exists():
        raise InputError(run, "no such run folder")
    path = run / f"{which}.safetensors"
    if not path.exists():
        raise InputError(run, f"no {path.name} here: not a finished astrocnn run folder (train one with 'astrocnn train')")
    return path


def load_run(run: str | os.PathLike, which: str = "best") -> tuple[Network, Task, RunConfig]:
    """Load a trained network without unpickling anything.

    run : a run folder (its ``best`` or ``last`` weights, per ``which``) or a ``.safetensors`` file.
    Returns ``(network in eval mode, task, config)``.
    """
    path = _weights_file(run, which)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise InputError(path, f"not a readable safetensors weights file ({exc})") from exc
    if meta.get("format") != WEIGHTS_FORMAT:
        raise InputError(path, "not an astrocnn weights file (no astrocnn configuration in its metadata)")
    config = RunConfig.from_json(meta["config"])
    state = {k: v for k, v in state.items() if not k.startswith(PREPROCESS_PREFIX)}
    task = make_task(config.task)
    network = build_network(config, task)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(path, f"weights do not fit the configuration stored with them ({exc})") from exc
    network.eval()
    return network, task, config


def load_preprocess(run: str | os.PathLike, which: str = "best") -> dict[str, np.ndarray]:
    """The preprocessing arrays stored with a run's weights (strain runs: ``whitening_psd`` (C, n//2+1)
    float64); empty for spectra runs. Read without unpickling anything."""
    path = _weights_file(run, which)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k[len(PREPROCESS_PREFIX):]: f.get_tensor(k).numpy() for k in f.keys()
                    if k.startswith(PREPROCESS_PREFIX)}
    except Exception as exc:
        raise InputError(path, f"not a readable safetensors weights file ({exc})") from exc


def strain_whitener(config: RunConfig, preprocess: Mapping[str, np.ndarray]):
    """The :class:`~astrocnn.gw.transforms.GwPreprocess` (whitener + normalisation) a strain run was trained
    behind, rebuilt from ``config.input["preprocessing"]`` and the stored PSD."""
    from .gw.transforms import GwPreprocess, Whitener

    pre = config.input.get("preprocessing") or {}
    if config.input.get("kind") != "strain" or "whitener" not in pre or "whitening_psd" not in preprocess:
        raise InputError(None, "this run was not trained on a prepared strain set (no stored whitener)")
    w = Whitener.from_state(pre["whitener"], preprocess["whitening_psd"], int(config.input.get("whitening_n_fit", 1)))
    return GwPreprocess(w, pre.get("normalize", "channel"))


def check_compatible(config: RunConfig, store: AnySet, task: str | None = None) -> None:
    """Refuse a data set (or task) the network was not built for, saying what differs."""
    if task is not None and task != config.task.name:
        raise InputError(store.path, f"the model was trained for '{config.task.name}', not '{task}'")
    want_kind = config.input.get("kind", "spectra")
    have_kind = "strain" if is_strain(store) else "spectra"
    if want_kind != have_kind:
        raise InputError(store.path, f"a prepared {have_kind} set; the model was trained on {want_kind}")
    if have_kind == "strain":
        shape = [len(config.input.get("detectors", [])) or config.model.in_channels, int(config.input["length"])]
        if list(store.shape) != shape or float(store.sample_rate) != float(config.input.get("sample_rate")):
            raise InputError(store.path, f"strain of shape {tuple(store.shape)} at {store.sample_rate:g} Hz; the "
                                         f"model takes {tuple(shape)} at {config.input.get('sample_rate'):g} Hz")
        if store.preprocessing != config.input.get("preprocessing"):
            log.warning("%s: prepared with %s; the model was trained behind %s", store.path,
                        store.preprocessing, config.input.get("preprocessing"))
        return
    want = config.input.get("grid")
    have = None if store.grid is None else json.loads(store.grid.to_json())
    if want is not None and have is not None and want != have:
        raise InputError(
            store.path,
            f"spectra are on grid {_grid_text(have)}, the model was trained on {_grid_text(want)}: "
            "prepare the data on the model's grid",
        )
    n = int(config.input.get("length", config.model.length))
    if store.grid is not None and store.grid.n != n:
        raise InputError(store.path, f"spectra have {store.grid.n} pixels, the model takes {n}")


def _grid_text(g: Mapping[str, Any]) -> str:
    return f"{g['lam_min']:g}-{g['lam_max']:g} A with {g['n']} pixels"


# ----------------------------------------------------------------------------------------------------------
# the Lightning module


class TaskModule(pl.LightningModule):
    """Network + task + data for one run. Only rank 0 writes; metrics are gathered over all ranks."""

    def __init__(self, network: Network, task: Task, config: RunConfig, data_path: str, split: dict):
        super().__init__()
        self.network = network
        self.task = task
        self.run_config = config
        self.data_path = data_path
        self.split = split
        self.epoch_record: dict[str, Any] = {}
        #: preprocessing arrays saved with the weights (see :func:`save_weights`)
        self.preprocess_arrays: dict[str, np.ndarray] = {}
        self._reset_train()

    # -- data
    def setup(self, stage: str) -> None:
        tc = self.run_config.train
        torch.set_num_threads(tc.threads or max(1, (os.cpu_count() or 1) // max(1, self.trainer.world_size)))
        # identical weights on every rank came from the main process; dropout streams differ by rank
        torch.manual_seed(tc.seed + self.global_rank)

    def _loader(self, part: str, train: bool):
        tc = self.run_config.train
        batch = tc.batch_size if train else self.run_config.data.eval_batch_size * self.trainer.world_size
        return make_loader(open_prepared(self.data_path), self.split[part], self.task, self.run_config.data,
                           batch_size=batch, train=train, seed=tc.seed, rank=self.global_rank,
                           world_size=self.trainer.world_size)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    # -- steps
    def forward(self, x):
        return self.network(x)

    def _reset_train(self):
        self._train_sum = torch.zeros((), dtype=torch.float64)
        self._train_n = torch.zeros((), dtype=torch.float64)
        self._val: list[dict[str, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        per = self.task.loss(self.network(batch["x"]), batch["target"])
        w = batch["weight"]
        loss = (per * w).sum() / w.sum().clamp(min=1.0)
        self._train_sum += (per.detach() * w).sum().double().cpu()
        self._train_n += w.sum().double().cpu()
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.network(batch["x"])
        rec = {k: v.detach() for k, v in self.task.decode(out).items()}
        rec["_loss"] = self.task.loss(out, batch["target"]).detach().double()
        rec["_target"] = batch["target"]
        rec["_weight"] = batch["weight"]
        self._val.append(rec)

    def _gather(self, t: torch.Tensor) -> torch.Tensor:
        if self.trainer.world_size == 1:
            return t
        g = self.all_gather(t)
        return g.reshape(-1, *t.shape[1:])

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self._val = []
            return
        keys = self._val[0].keys()
        cat = {k: self._gather(torch.cat([r[k] for r in self._val])) for k in keys}
        self._val = []
        keep = cat.pop("_weight") > 0
        cat = {k: v[keep].cpu().numpy() for k, v in cat.items()}
        val_loss = float(cat.pop("_loss").mean())
        target = cat.pop("_target")
        train_sum = self.trainer.strategy.reduce(self._train_sum.clone(), reduce_op="sum")
        train_n = self.trainer.strategy.reduce(self._train_n.clone(), reduce_op="sum")
        self._train_sum.zero_()
        self._train_n.zero_()
        train_loss = float(train_sum / train_n) if float(train_n) > 0 else float("nan")
        scores = _flat_scores(self.task.metrics(cat, target, full=False))
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
        self.epoch_record = {"epoch": int(self.current_epoch), "train_loss": train_loss, "val_loss": val_loss,
                             "lr": float(lr), **{f"val_{k}": v for k, v in scores.items()}}
        # identical on every rank already; sync_dist only averages equal values (silences a warning)
        self.log("val_loss", val_loss, prog_bar=True, logger=False, sync_dist=True)
        mon = f"val_{self.task.monitor}"
        if mon in self.epoch_record:
            self.log(mon, self.epoch_record[mon], prog_bar=True, logger=False, sync_dist=True)

    # -- optimisation
    def configure_optimizers(self):
        tc = self.run_config.train
        params = self.network.parameters()
        if tc.weight_decay > 0:
            opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
        else:
            opt = torch.optim.Adam(params, lr=tc.lr)
        if tc.schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, tc.patience // 3))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = max(1, total // max(1, tc.max_epochs))
        warm = max(1, int(round(tc.warmup_epochs * per_epoch)))
        cosine = tc.schedule in ("cosine", "cosine_time")
        self._t_start = time.monotonic()

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if not cosine:
                return 1.0
            if tc.schedule == "cosine_time":
                frac = min(1.0, (time.monotonic() - self._t_start) / (60.0 * tc.max_minutes))
            else:
                frac = min(1.0, (step - warm) / max(1, total - warm))
            return 0.5 * (1.0 + math.cos(math.pi * frac))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

def _flat_scores(m: Mapping[str, Any]) -> dict[str, float]:
    """Scalar scores for the history: nested per-class dicts become ``name_class``; matrices are dropped."""
    out: dict[str, float] = {}
    for k, v in m.items():
        if isinstance(v, (int, float, np.integer, np.floating)):
            out[k] = float(v)
        elif isinstance(v, dict) and k in ("completeness", "purity"):
            out.update({f"{k}_{c}": float(x) for c, x in v.items()})
    return out


class RunWriter(pl.Callback):
    """Rank 0: after each epoch, append to ``history.csv``, write ``last`` and (if improved) ``best`` weights."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.rows: list[dict[str, Any]] = []
        self.best = math.inf

    def on_train_epoch_end(self, trainer, module):
        rec = dict(module.epoch_record)
        if not rec or rec.get("epoch") != trainer.current_epoch:
            return
        rec["time_s"] = round(time.time() - self._t0, 1)
        if trainer.is_global_zero:
            self.rows.append(rec)
            _write_history(self.run_dir / HISTORY_FILE, self.rows)
            save_weights(module.network, module.run_config, self.run_dir / "last.safetensors", module.preprocess_arrays)
            if rec["val_loss"] < self.best:
                self.best = rec["val_loss"]
                save_weights(module.network, module.run_config, self.run_dir / "best.safetensors",
                             module.preprocess_arrays)
            log.info("epoch %d: %s", rec["epoch"],
                     ", ".join(f"{k}={v:.4g}" for k, v in rec.items() if k not in ("epoch",) and isinstance(v, float)))

    def on_train_start(self, trainer, module):
        self._t0 = time.time()

def _write_history(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    write_text_atomic(path, buf.getvalue())


def read_history(run_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """``history.csv`` as columns of floats."""
    with open(Path(run_dir) / HISTORY_FILE, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    return {k: np.array([float(r[k]) if r.get(k) not in (None, "") else np.nan for r in rows]) for k in rows[0]}


# ----------------------------------------------------------------------------------------------------------
# training


@dataclass
class RunResult:
    """What :func:`train` returns. ``metrics`` are the test-split scores also written to ``metrics.json``."""

    run_dir: Path
    metrics: dict[str, Any]
    best_epoch: int
    epochs: int
    best_val_loss: float
    wall_s: float
    n_parameters: int
    history: dict[str, np.ndarray] = field(default_factory=dict)


def _strategy(tc) -> Any:
    if tc.devices <= 1:
        return "auto"
    if tc.strategy != "auto":
        return tc.strategy
    from pytorch_lightning.strategies import DDPStrategy

    # spawned processes work from the CLI, from scripts and from pytest alike ("ddp" re-runs sys.argv)
    return DDPStrategy(start_method="spawn", find_unused_parameters=False)


def train(task: str, data_path: str | os.PathLike, out_dir: str | os.PathLike, config: RunConfig | None = None) -> RunResult:
    """Train ``task`` (``"redshift"`` or ``"classify"`` on a spectra set, ``"detect"`` on a strain set) on a
    prepared set and write a run folder.

    The usable rows (see :meth:`Task.rows`) are split into train/val/test with ``config.data``; training
    stops when the validation loss has not improved for ``config.train.patience`` epochs (or at
    ``max_epochs`` / ``max_minutes``); the best weights are kept and scored on the test rows.
    """
    t0 = time.time()
    config = config if config is not None else default_config(task)
    if config.task.name != task:
        raise ValueError(f"task {task!r} differs from the configuration's task {config.task.name!r}")
    # a fresh copy we may fill in (input shape, fitted state, provenance)
    config = RunConfig.from_dict(config.to_dict())
    data_path = Path(data_path)
    out_dir = Path(out_dir)
    store = open_prepared(data_path)
    strain = is_strain(store)
    if not strain and store.grid is None:
        raise InputError(data_path, "this prepared set has no wavelength grid (is it a spectra set?)")
    tsk = make_task(config.task)
    rows = tsk.usable_rows(store)
    dc, tc = config.data, config.train
    if dc.max_rows and rows.size > dc.max_rows:
        rows = np.sort(np.random.default_rng([dc.split_seed, 4]).choice(rows, dc.max_rows, replace=False))
    if rows.size < 4:
        raise InputError(data_path, f"only {rows.size} rows are usable for {tsk.describe()}")
    split = split_rows(rows, dc.test_fraction, dc.val_fraction, dc.split_seed)

    # what the data dictate
    # the preprocessing is stored so predict treats new files exactly as the training set was treated
    preprocess_arrays: dict[str, np.ndarray] = {}
    if strain:
        # strain: the whitener config, normalisation and PSD travel with the run (the PSD in the weights file)
        config.input = {"kind": "strain", "length": int(store.shape[1]), "sample_rate": float(store.sample_rate),
                        "detectors": json.loads(store.attrs.get("detectors", "[]")),
                        "preprocessing": store.preprocessing,
                        "whitening_n_fit": int(store.attrs.get("whitening_n_fit", 1)),
                        "whitening_fit": str(store.attrs.get("whitening_fit", ""))}
        preprocess_arrays = {"whitening_psd": np.asarray(store.whitening_psd, dtype=np.float64)}
        config.data.inputs = ["strain"]
        config.model.in_channels = int(store.shape[0])
        config.model.length = int(store.shape[1])
    else:
        config.input = {"grid": json.loads(store.grid.to_json()), "length": int(store.grid.n),
                        "preprocess": json.loads(store.attrs.get("preprocess", "{}")),
                        "class_names": list(store.class_names)}
        config.model.in_channels = len(dc.inputs)
        config.model.length = int(store.grid.n)
    config.model = type(config.model).from_dict(config.model.to_dict())  # re-validate
    config.data.path = str(data_path)
    config.version = __version__
    if strain:  # labels only: never read the strain of the whole training side
        fit_targets = tsk.targets({"target": store.target[split["train"]], "snr": store.snr[split["train"]]}, ())
    else:
        fit_targets = tsk.targets(store.read(split["train"], fields=()), store.class_names)
    tsk.fit(fit_targets)
    config.task = tsk.config

    # with strategy="ddp" this function runs again in every re-launched process: only rank 0 writes
    writer_rank = int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0
    if writer_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir / CONFIG_FILE)
        with atomic_path(out_dir / SPLIT_FILE, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **split)
        for stale in (HISTORY_FILE, "best.safetensors", "last.safetensors", METRICS_FILE):
            (out_dir / stale).unlink(missing_ok=True)

    pl.seed_everything(tc.seed, workers=True, verbose=False)
    network = build_network(config, tsk)
    n_params = sum(p.numel() for p in network.parameters())
    log.info("%s: %d train / %d val / %d test rows; %s; %d parameters", data_path.name, split["train"].size,
             split["val"].size, split["test"].size, tsk.describe(), n_params)

    module = TaskModule(network, tsk, config, str(data_path), split)
    module.preprocess_arrays = preprocess_arrays
    writer = RunWriter(out_dir)
    from pytorch_lightning.callbacks import EarlyStopping

    callbacks = [writer, EarlyStopping(monitor="val_loss", mode="min", patience=tc.patience, min_delta=tc.min_delta,
                                       check_on_train_epoch_end=False)]
    threads_before = torch.get_num_threads()  # fit sets this process's thread count; give it back after
    if tc.threads:
        torch.set_num_threads(tc.threads)
    trainer = pl.Trainer(
        accelerator=tc.accelerator,
        devices=tc.devices,
        strategy=_strategy(tc),
        max_epochs=tc.max_epochs,
        min_epochs=tc.min_epochs,
        max_time=timedelta(minutes=tc.max_minutes) if tc.max_minutes > 0 else None,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=tc.progress_bar,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
        gradient_clip_val=tc.grad_clip or None,
        sync_batchnorm=tc.devices > 1 and config.model.norm == "batch",
        default_root_dir=str(out_dir),
        deterministic=False,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*train_dataloader.*num_workers.*")
        # Lightning's own use of a deprecated torch API (pytorch_lightning/utilities/_pytree.py)
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        try:
            trainer.fit(module)
        finally:
            torch.set_num_threads(threads_before)
    if trainer.global_rank != 0:
        store.close()
        return None  # type: ignore[return-value]  # a re-launched "ddp" process; rank 0 reports

    if not (out_dir / "best.safetensors").exists():
        raise RuntimeError(f"{out_dir}: training ended before the first validation; no weights were written")
    history = read_history(out_dir)
    best_network, _, _ = load_run(out_dir, "best")
    test_rows = split["test"] if split["test"].size else split["val"]
    pred, target = predict_rows(best_network, tsk, config, store, test_rows)
    metrics = tsk.metrics(pred, target, full=True)
    best_i = int(np.nanargmin(history["val_loss"]))
    summary = {
        "task": tsk.describe(),
        "data": str(data_path),
        "split": "test" if split["test"].size else "val",
        "n_train": int(split["train"].size), "n_val": int(split["val"].size), "n_test": int(split["test"].size),
        "epochs": int(len(history["epoch"])), "best_epoch": int(history["epoch"][best_i]),
        "best_val_loss": float(history["val_loss"][best_i]),
        "wall_s": round(time.time() - t0, 1), "n_parameters": int(n_params),
        "devices": tc.devices,
    }
    write_text_atomic(out_dir / METRICS_FILE, json.dumps({"summary": summary, "test": metrics}, indent=2) + "\n")
    _write_predictions(out_dir / "test_predictions.csv", store.ids[test_rows], test_rows, pred, target, tsk)
    _run_plots(out_dir, history, tsk, pred, target)
    log.info("%s: best epoch %d of %d; test %s = %.4f", out_dir, summary["best_epoch"], summary["epochs"],
             tsk.monitor, metrics.get(tsk.monitor, float("nan")))
    store.close()
    return RunResult(run_dir=out_dir, metrics=metrics, best_epoch=summary["best_epoch"], epochs=summary["epochs"],
                     best_val_loss=summary["best_val_loss"], wall_s=summary["wall_s"], n_parameters=n_params,
                     history=history)


def _run_plots(out_dir: Path, history, task: Task, pred, target) -> None:
    from . import plots

    try:
        plots.plot_loss_curves(history, out_dir / "loss.png")
        task.plots(pred, target, out_dir)
    except Exception as exc:  # a figure must never cost a finished training run
        warnings.warn(f"{out_dir}: plots failed ({exc})", RuntimeWarning)


def _write_predictions(path: Path, ids, rows, pred, target, task: Task) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if task.name == "detect":
        t = np.asarray(target, np.float64).reshape(-1, 2)
        w.writerow(["row", "id", "target", "snr", "score", "logit"])
        for i in range(len(rows)):
            w.writerow([int(rows[i]), ids[i], int(t[i, 0]), "" if not np.isfinite(t[i, 1]) else f"{t[i, 1]:.3f}",
                        f"{pred['score'][i]:.6g}", f"{pred['logit'][i]:.6g}"])
    elif task.name == "redshift":
        z_true = np.expm1(np.asarray(target, np.float64))
        cols = ["row", "id", "z_true", "z_pred"] + (["z_conf"] if "z_conf" in pred else [])
        w.writerow(cols)
        for i in range(len(rows)):
            extra = [f"{pred['z_conf'][i]:.4f}"] if "z_conf" in pred else []
            w.writerow([int(rows[i]), ids[i], f"{z_true[i]:.5f}", f"{pred['z'][i]:.5f}", *extra])
    else:
        names = task.class_names
        w.writerow(["row", "id", "cls_true", "cls_pred", *[f"p_{c}" for c in names]])
        for i in range(len(rows)):
            w.writerow([int(rows[i]), ids[i], names[int(target[i])], names[int(pred["cls"][i])],
                        *[f"{p:.4f}" for p in pred["prob"][i]]])
    write_text_atomic(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------------------
# inference


def _run_network(network: Network, task: Task, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Decoded predictions for inputs ``x`` (n, channels, n_pix), in batches, in inference mode."""
    parts: list[dict[str, torch.Tensor]] = []
    network.eval()
    with torch.inference_mode():
        for lo in range(0, x.shape[0], batch_size):
            parts.append(task.decode(network(torch.from_numpy(x[lo:lo + batch_size]))))
    if not parts:
        return {}
    return {k: torch.cat([p[k] for p in parts]).numpy() for k in parts[0]}


def predict_rows(network: Network, task: Task, config: RunConfig, store: AnySet, rows: np.ndarray,
                 batch_size: int | None = None, with_target: bool = True):
    """Predictions for ``rows`` of ``store`` (read in sorted chunks). Returns ``(pred, target)``."""
    rows = np.asarray(rows, dtype=np.int64)
    bs = batch_size or max(256, config.data.eval_batch_size)
    chunk = 4 * bs
    preds, targets = [], []
    for lo in range(0, rows.size, chunk):
        batch, x = read_inputs(store, rows[lo:lo + chunk], config.data.inputs)
        preds.append(_run_network(network, task, x, bs))
        if with_target:
            targets.append(task.targets(batch, class_names_of(store)))
    if not preds:
        return {}, np.zeros(0)
    pred = {k: np.concatenate([p[k] for p in preds]) for k in preds[0]}
    return pred, (np.concatenate(targets) if with_target else None)


def evaluate(run: str | os.PathLike, data_path: str | os.PathLike, out_dir: str | os.PathLike | None = None,
             split: str | None = None, metrics_name: str = METRICS_FILE) -> dict[str, Any]:
    """Score a trained run on a prepared set.

    run : run folder (its best weights) or weights file.
    data_path : prepared set with labels; every row the task can use is scored, or only the ``split``
        (``"test"``, ``"val"`` or ``"train"`` from the run's ``split.npz``) when given, which requires the
        set the run was trained on.
    out_dir : if given, ``metrics_name`` (default ``metrics.json``) and the task's plots are written there.
    """
    network, task, config = load_run(run)
    store = open_prepared(data_path)
    check_compatible(config, store)
    rows = task.usable_rows(store)
    if split is not None:
        run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
        with np.load(run_dir / SPLIT_FILE, allow_pickle=False) as npz:
            if split not in npz:
                raise InputError(run_dir / SPLIT_FILE, f"no split {split!r}; have {list(npz.keys())}")
            rows = npz[split]
        if rows.size and rows.max() >= len(store):
            raise InputError(data_path, f"split {split!r} of {run} refers to rows this set does not have")
    if rows.size == 0:
        raise InputError(data_path, f"no rows with labels usable for {task.describe()}")
    pred, target = predict_rows(network, task, config, store, rows)
    metrics = task.metrics(pred, target, full=True)
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_text_atomic(out_dir / metrics_name, json.dumps({"data": str(data_path), "metrics": metrics}, indent=2) + "\n")
        task.plots(pred, target, out_dir)
    store.close()
    return metrics


def predict(run: str | os.PathLike, data_path: str | os.PathLike, batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Predictions for every row of a prepared set: ``id``, ``row`` and the task's outputs
    (redshift: ``z``, ``z_conf``; classify: ``cls`` (index), ``class`` (name), ``prob`` (n, n_classes);
    detect, on a strain set: ``score`` (sigmoid of the logit) and ``logit``)."""
    network, task, config = load_run(run)
    store = open_prepared(data_path)
    check_compatible(config, store)
    rows = np.arange(len(store))
    pred, _ = predict_rows(network, task, config, store, rows, batch_size=batch_size, with_target=False)
    out = {"id": store.ids, "row": rows, **pred}
    store.close()
    return _add_class_names(out, task)


def predict_arrays(run: str | os.PathLike, flux: np.ndarray, ivar: np.ndarray | None = None,
                   batch_size: int = 1024, grid=None, loaded: tuple | None = None) -> dict[str, np.ndarray]:
    """Predictions for spectra already on the model's grid.

    flux, ivar : (n, n_pix) normalised flux and its inverse variance (as :func:`~astrocnn.spectra.preprocess`
        makes them). ``ivar`` is needed only by models with a ``mask`` input channel.
    grid : the spectra's :class:`LogLambdaGrid`, checked against the model's when given.
    loaded : a ``load_run`` result to reuse (avoids re-reading the weights for repeated calls).
    Returns redshift: ``z``, ``z_conf``; classify: ``cls``, ``class``, ``prob``.
    """
    network, task, config = loaded if loaded is not None else load_run(run)
    flux = np.atleast_2d(np.asarray(flux, dtype=np.float32))
    n = int(config.input.get("length", config.model.length))
    if flux.shape[1] != n:
        raise InputError(None, f"spectra have {flux.shape[1]} pixels, the model takes {n}")
    if grid is not None and config.input.get("grid") and json.loads(grid.to_json()) != config.input["grid"]:
        raise InputError(None, f"spectra are on grid {_grid_text(json.loads(grid.to_json()))}, "
                               f"the model was trained on {_grid_text(config.input['grid'])}")
    if ivar is not None:
        ivar = np.atleast_2d(np.asarray(ivar, dtype=np.float32))
        if ivar.shape != flux.shape:
            raise InputError(None, f"ivar has shape {ivar.shape}, flux has {flux.shape}")
    x = make_inputs(flux, ivar, config.data.inputs)
    return _add_class_names(_run_network(network, task, x, batch_size), task)


def _add_class_names(out: dict[str, np.ndarray], task: Task) -> dict[str, np.ndarray]:
    if task.name == "classify" and "cls" in out:
        out["class"] = np.asarray(task.class_names, dtype=object)[out["cls"]]
    return out
