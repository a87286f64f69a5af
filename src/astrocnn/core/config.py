"""Run configuration: one dataclass per concern, one YAML file per run.

A :class:`RunConfig` holds everything that built a run: the network (:class:`~astrocnn.models.CNNConfig`),
the task (:class:`TaskConfig`, including what the task learned from the training data such as target
statistics), the data handling (:class:`DataConfig`) and the optimisation (:class:`TrainConfig`). It is
written to ``config.yaml`` in the run folder and embedded in every checkpoint, and is read back with
``yaml.safe_load`` only: a configuration is data, never code.

Core layer: knows no domain, no task and no trainer.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from astrocnn.core.errors import InputError
from astrocnn.core.io import write_text_atomic
from astrocnn.core.metrics import DEFAULT_Z_BINS
from astrocnn.models.cnn import CNNConfig

TASKS = ("redshift", "classify", "detect", "classify_redshift")
REDSHIFT_HEADS = ("bins", "mse")
SCHEDULES = ("cosine", "cosine_time", "constant", "plateau")
INPUTS = ("flux", "mask", "strain")
DEFAULT_SNR_BINS = (0.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0)
#: lower redshift edge of the classify_redshift task's bins: -1500 km/s, room for stars' radial velocities
CLASSIFY_REDSHIFT_Z_MIN = -0.005

#: Network defaults of the "detect" task, for (3, 4096) strain (H1, L1, V1; 2 s at 2048 Hz). The paper's
#: kernels (500, 200, 10 pixels on 4618 spectral pixels) are "reshaped" to what a 2-s chirp in the
#: 20-500 Hz band needs: 64 samples (31 ms, two cycles at 64 Hz) in the first layer, then 32, 16 and 8 after
#: pooling by 4, 4 and 4 (each reaching further back in time), i.e. the paper's coarse-to-fine ordering with
#: one block more; 25 positions of 64 channels (1600 features) feed a dense layer of 64. Batch normalisation
#: is not in the paper; with it this network reached validation AUC 0.857 after one epoch on 48k samples
#: (README "Gravitational waves"). Direct convolution throughout: at kernels <= 64 it is faster than the FFT
#: on a CPU (``astrocnn bench``).
DETECT_MODEL = {"in_channels": 3, "length": 4096, "kernels": [64, 32, 16, 8], "channels": [32, 32, 64, 64],
                "pools": [4, 4, 4, 2], "dense": [64], "norm": "batch", "fft_min_kernel": 128}
#: Data defaults of the "detect" task: strain input, and the augmentation the README's numbers were trained
#: with (sign flips, H1/L1 swaps, per-detector delays of up to 8 samples = 4 ms), so `astrocnn train detect`
#: trains as they were trained.
DETECT_DATA = {"inputs": ["strain"], "aug_flip": True, "aug_swap": True, "aug_delay": 8}


def _from_dict(cls, d: Mapping[str, Any] | None, where: str):
    d = dict(d or {})
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {where} settings {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d)


@dataclass
class TaskConfig:
    """What is learned and how it is scored.

    name : ``"redshift"``, ``"classify"``, ``"classify_redshift"`` (class and redshift from one network with
        two heads) or ``"detect"`` (gravitational-wave detection on strain sets).
    classes : classify: the classes to separate, in output order (default quasar and galaxy as in the
        paper; add ``"star"`` for three classes). Rows of other classes are left out of the data.
        classify_redshift: likewise (default quasar, galaxy and star).
        redshift: the classes whose rows are used (default quasars only; ``None`` = every row with a z).
    head : redshift only: ``"bins"`` (our default: cross-entropy over ``n_bins`` bins of log(1+z) plus
        an in-bin offset) or ``"mse"`` (the paper's: one output, MSE on standardised log(1+z)).
    z_min, z_max : redshift range of the binned head; targets outside are clipped to it.
    n_bins : number of bins uniform in log(1+z) between ``z_min`` and ``z_max``.
    label_sigma : width (in bins) of the Gaussian the true bin is smeared over for the cross-entropy
        (0 = one-hot); neighbouring bins are near-misses, not wrong answers.
    offset_window : the in-bin offset is trained on the true bin and this many bins either side, so the
        offset is right even when the arg-max lands next to the true bin.
    offset_weight : weight of the offset loss beside the cross-entropy.
    z_bins : bin edges for per-bin redshift scores.
    snr_bins : detect only: lower edges of the injected-SNR bins the ROC AUC is given per (positives in the
        bin against all negatives); the last bin is open-ended.
    n_boot : detect only: bootstrap replicates for the 95% interval of the test ROC AUC (0 = none).
    state : fitted on the training rows (target mean/std for the MSE head); filled in by training.
    """

    name: str = "redshift"
    classes: list[str] | None = field(default_factory=lambda: ["__default__"])
    head: str = "bins"
    z_min: float = 0.0
    z_max: float = 6.0
    n_bins: int = 500
    label_sigma: float = 1.0
    offset_window: int = 2
    offset_weight: float = 1.0
    z_bins: list[float] = field(default_factory=lambda: list(DEFAULT_Z_BINS))
    snr_bins: list[float] = field(default_factory=lambda: list(DEFAULT_SNR_BINS))
    n_boot: int = 1000
    state: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.name!r}")
        if self.classes == ["__default__"]:
            self.classes = {"classify": ["qso", "galaxy"], "detect": None,
                            "classify_redshift": ["qso", "galaxy", "star"]}.get(self.name, ["qso"])
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]
        if self.name in ("classify", "classify_redshift") and (self.classes is None or len(self.classes) < 2):
            raise ValueError(f"classification needs at least two classes, got {self.classes}")
        if self.head not in REDSHIFT_HEADS:
            raise ValueError(f"redshift head must be one of {REDSHIFT_HEADS}, got {self.head!r}")
        if not (-1.0 < self.z_min < self.z_max):
            raise ValueError(f"need -1 < z_min < z_max, got z_min={self.z_min}, z_max={self.z_max}")
        self.z_bins = [float(v) for v in self.z_bins]
        self.snr_bins = [float(v) for v in self.snr_bins]
        if any(b <= a for a, b in zip(self.snr_bins, self.snr_bins[1:])):
            raise ValueError(f"snr_bins must increase, got {self.snr_bins}")


@dataclass
class DataConfig:
    """How a prepared set becomes batches.

    path : the prepared set the run was trained on (provenance; set by training).
    test_fraction : share of usable rows held out for the final test (seeded, default 0.1 as the paper).
    val_fraction : share of the remaining training side used for validation / early stopping.
    split_seed : seed of the split (independent of the training seed, so runs with different training
        seeds share a test set).
    inputs : input channels: ``"flux"`` (the paper's) and optionally ``"mask"`` (1 where ivar > 0); for strain
        sets (the ``detect`` task) ``["strain"]``: the set's detectors, as prepared.
    num_workers : data-loader worker processes per training process (HDF5 reads happen there).
    eval_batch_size : batch size for validation and prediction.
    aug_noise : training augmentation: add Gaussian noise of up to this many times each pixel's own
        sigma (uniform per spectrum; 0 = off), i.e. lower the S/N by up to a factor sqrt(1 + aug_noise^2).
    aug_shift : training augmentation for classification only: shift spectra by up to this many pixels.
    aug_flip : strain training augmentation: flip the sign of all detectors of a sample with probability 1/2
        (the same signal seen with the polarisation angle turned by 90 degrees).
    aug_swap : strain training augmentation: swap the first two detectors (H1, L1) with probability 1/2
        (the two LIGO detectors have nearly the same noise and orientation; G2Net's winners used it).
    aug_delay : strain training augmentation: roll each detector independently by up to this many samples
        (default 0; ~10 ms = 20 samples is the H1-L1 light-travel time), so the network does not learn one
        fixed set of arrival delays. ``default_config("detect")`` switches on ``aug_flip``, ``aug_swap`` and
        ``aug_delay = 8`` (:data:`DETECT_DATA`).
    max_rows : use at most this many usable rows (seeded subset; 0 = all). For quick experiments.
    """

    path: str = ""
    test_fraction: float = 0.1
    val_fraction: float = 0.1
    split_seed: int = 0
    inputs: list[str] = field(default_factory=lambda: ["flux"])
    num_workers: int = 1
    eval_batch_size: int = 256
    aug_noise: float = 0.0
    aug_shift: int = 0
    aug_flip: bool = False
    aug_swap: bool = False
    aug_delay: int = 0
    max_rows: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= self.test_fraction < 1.0 and 0.0 < self.val_fraction < 1.0):
            raise ValueError(
                f"need 0 <= test_fraction < 1 and 0 < val_fraction < 1, got {self.test_fraction}, {self.val_fraction}"
            )
        bad = [i for i in self.inputs if i not in INPUTS]
        if bad or not self.inputs or ("strain" in self.inputs and len(self.inputs) > 1):
            raise ValueError(f"inputs must be a non-empty list of 'flux', 'mask', or just ['strain'], got {self.inputs}")


@dataclass
class TrainConfig:
    """Optimisation and hardware.

    batch_size : global batch; with ``devices`` processes each takes ``batch_size / devices`` rows of every
        batch, so a run on 2 processes sees exactly the batches of a run on 1.
    lr, weight_decay : Adam (the paper's optimiser); weight decay is decoupled (AdamW) when > 0.
    schedule : ``"cosine"`` (linear warm-up for ``warmup_epochs``, then cosine decay to 0 at
        ``max_epochs``), ``"cosine_time"`` (the same over ``max_minutes`` of wall time: for a fixed time
        budget on a given machine; not reproducible across machines), ``"constant"``, or ``"plateau"``
        (halve when the validation loss stalls).
    max_epochs, min_epochs : epoch limits.
    patience, min_delta : the paper's convergence rule: stop when the validation loss has not improved by
        ``min_delta`` for ``patience`` epochs; the best weights are kept.
    max_minutes : stop after this much wall time (0 = no limit); the best weights are still kept.
    devices, accelerator, strategy : hardware; ``strategy="auto"`` uses DDP over spawned processes when
        ``devices > 1`` (works from scripts, the CLI and pytest alike).
    threads : torch threads per process (0 = the machine's cores divided by ``devices``).
    seed : seeds the weights (identically on every process) and the shuffling; augmentation and dropout
        use ``seed + rank``-independent per-row streams where possible.
    grad_clip : clip the gradient norm (0 = off).
    progress_bar : show Lightning's progress bar.
    """

    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    max_epochs: int = 15
    min_epochs: int = 0
    patience: int = 5
    min_delta: float = 0.0
    max_minutes: float = 0.0
    devices: int = 1
    accelerator: str = "cpu"
    strategy: str = "auto"
    threads: int = 0
    seed: int = 0
    grad_clip: float = 0.0
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.batch_size < 1 or self.batch_size % max(1, self.devices):
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a positive multiple of devices ({self.devices}): "
                "the global batch is split evenly across processes"
            )
        if self.schedule == "cosine_time" and self.max_minutes <= 0:
            raise ValueError("schedule 'cosine_time' needs max_minutes > 0")
        if self.patience < 1 or self.max_epochs < 1:
            raise ValueError(f"need patience >= 1 and max_epochs >= 1, got {self.patience}, {self.max_epochs}")


@dataclass
class RunConfig:
    """Everything that built a run. ``input`` (grid and length) is filled in from the data by training."""

    task: TaskConfig = field(default_factory=TaskConfig)
    model: CNNConfig = field(default_factory=CNNConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    input: dict[str, Any] = field(default_factory=dict)
    version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown configuration sections {sorted(unknown)}; known: {sorted(known)}")
        return cls(
            task=_from_dict(TaskConfig, d.get("task"), "task"),
            model=CNNConfig.from_dict(d.get("model") or {}),
            data=_from_dict(DataConfig, d.get("data"), "data"),
            train=_from_dict(TrainConfig, d.get("train"), "train"),
            input=dict(d.get("input") or {}),
            version=str(d.get("version", "")),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "RunConfig":
        return cls.from_dict(json.loads(text))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def save(self, path: str | os.PathLike) -> None:
        write_text_atomic(path, self.to_yaml())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConfig":
        """Read a YAML (or JSON) run configuration; raises :class:`InputError` naming the file."""
        path = Path(path)
        try:
            d = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(path, "no such configuration file") from exc
        except yaml.YAMLError as exc:
            raise InputError(path, f"not valid YAML ({exc})") from exc
        if not isinstance(d, dict):
            raise InputError(path, "a configuration must be a mapping of sections (task, model, data, train)")
        try:
            return cls.from_dict(d)
        except (TypeError, ValueError) as exc:
            raise InputError(path, str(exc)) from exc


def default_config(task: str = "redshift", /, **sections: Mapping[str, Any]) -> RunConfig:
    """The default configuration for ``task``, with per-section overrides, e.g.
    ``default_config("classify", task={"classes": ["qso", "galaxy", "star"]}, train={"max_epochs": 5})``.
    ``default_config("detect")`` starts from :data:`DETECT_MODEL` and :data:`DETECT_DATA` (strain input, sign
    flips, H1/L1 swaps, delays of up to 8 samples)."""
    d: dict[str, Any] = {"task": {"name": task}}
    if task == "detect":
        d["model"] = dict(DETECT_MODEL)
        d["data"] = dict(DETECT_DATA)
    if task == "classify_redshift":
        # stars sit at z ~ 0 with radial velocities of either sign
        d["task"]["z_min"] = CLASSIFY_REDSHIFT_Z_MIN
    for name, values in sections.items():
        d.setdefault(name, {}).update(values)
    d["task"]["name"] = task
    return RunConfig.from_dict(d)
