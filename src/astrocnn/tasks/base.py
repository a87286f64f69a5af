"""The task interface: everything that differs between learning problems, so the trainer needs to know none.

Tasks layer, on top of the domains (a task knows its prepared-set format, its inputs and their transforms)
and under the trainer (:mod:`astrocnn.train`), which calls only these methods:

- data: :meth:`Task.check_data`, :meth:`Task.usable_rows`, :meth:`Task.read_labels`,
  :meth:`Task.read_inputs` (inference) and :meth:`Task.read_training_inputs` (with augmentation),
  :meth:`Task.augments`, :meth:`Task.configure_inputs` (what the data fix in the run's configuration, and
  the arrays stored with the weights, e.g. a whitening spectrum), :meth:`Task.check_compatible`,
  :meth:`Task.input_transform` (how raw inputs become network inputs);
- labels: :meth:`Task.targets` (a batch's labels -> the array the loss takes), :meth:`Task.fit` (target
  statistics learned on the training rows, kept in ``config.state``);
- network: :meth:`Task.make_head`, :meth:`Task.loss` (per sample), :meth:`Task.decode` (outputs -> named
  prediction tensors), :meth:`Task.name_predictions`;
- results: :meth:`Task.metrics` (``monitor`` names the headline score), :meth:`Task.plots`,
  :meth:`Task.test_table` (``test_predictions.csv``), :meth:`Task.prediction_columns` and
  :meth:`Task.prediction_rows` (``astrocnn predict``), :meth:`Task.describe`.

A new task subclasses :class:`Task` (or :class:`~astrocnn.tasks.spectral.SpectraTask` for spectra) and is
registered in :data:`astrocnn.tasks.TASKS`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch.nn as nn
from torch import Tensor

from astrocnn.core.config import DataConfig, RunConfig, TaskConfig
from astrocnn.core.errors import InputError


def class_names_of(store: Any) -> tuple[str, ...]:
    """The class names a prepared set's ``cls`` indices refer to (none for strain sets)."""
    return tuple(getattr(store, "class_names", ()))


class Task:
    """Base class; see the module docstring for the interface."""

    name: str = ""
    #: the ``kind`` of prepared set the task reads (``"spectra"`` or ``"strain"``)
    kind: str = ""
    #: headline validation score and whether larger is better
    monitor: str = ""
    monitor_mode: str = "max"

    def __init__(self, config: TaskConfig):
        self.config = config

    # -- data -------------------------------------------------------------------------------------------
    def check_data(self, store) -> None:
        """Refuse a prepared set this task cannot read, in one line naming it."""
        have = getattr(store, "kind", "spectra")
        if have != self.kind:
            raise InputError(store.path, f"the {self.name} task needs a prepared {self.kind} set, not a {have} set")

    def usable_rows(self, store) -> np.ndarray:
        """Row indices of a prepared set that have the labels this task learns from."""
        raise NotImplementedError

    def read_labels(self, store, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The labels of ``rows`` only (no inputs): what :meth:`targets` takes."""
        raise NotImplementedError

    def read_inputs(self, store, rows: np.ndarray, data: DataConfig) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Read ``rows``: ``(the batch as read, the network inputs (n, channels, length) float32)``."""
        raise NotImplementedError

    def augments(self, data: DataConfig) -> bool:
        """Whether :meth:`read_training_inputs` changes the inputs under these settings (default: never)."""
        return False

    def read_training_inputs(self, store, rows: np.ndarray, data: DataConfig, seed: int, epoch: int
                             ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """:meth:`read_inputs` with the training augmentation, drawn from streams seeded by (seed, epoch, row)
        so a row's augmentation does not depend on which process or worker reads it."""
        return self.read_inputs(store, rows, data)

    def configure_inputs(self, store, config: RunConfig) -> dict[str, np.ndarray]:
        """Fill in what the data fix in a run's configuration (``config.input``, the network's input channels
        and length); return the arrays to keep with the weights (e.g. a whitening spectrum)."""
        raise NotImplementedError

    def check_compatible(self, config: RunConfig, store) -> None:
        """Refuse a prepared set the network of ``config`` was not built for, saying what differs."""
        want = config.input.get("kind", "spectra")
        have = getattr(store, "kind", "spectra")
        if want != have:
            raise InputError(store.path, f"a prepared {have} set; the model was trained on {want}")

    def input_transform(self, config: RunConfig, arrays: Mapping[str, np.ndarray]) -> Any:
        """How raw inputs become network inputs for a run, rebuilt from its configuration and stored arrays."""
        raise NotImplementedError

    # -- labels -------------------------------------------------------------------------------------------
    def fit(self, targets: np.ndarray) -> "Task":
        """Learn what the task needs from the training targets (default: nothing). Returns self."""
        return self

    def targets(self, batch: Mapping[str, np.ndarray], class_names: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    # -- network ------------------------------------------------------------------------------------------
    def make_head(self, features: int) -> nn.Module:
        raise NotImplementedError

    def loss(self, output: Any, target: Tensor) -> Tensor:
        """Per-sample loss, shape (batch,)."""
        raise NotImplementedError

    def decode(self, output: Any) -> dict[str, Tensor]:
        raise NotImplementedError

    def name_predictions(self, pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Decoded predictions (numpy) with the names a reader wants added (default: as they are)."""
        return pred

    # -- results ------------------------------------------------------------------------------------------
    def metrics(self, pred: Mapping[str, np.ndarray], target: np.ndarray, full: bool = True) -> dict[str, Any]:
        raise NotImplementedError

    def plots(self, pred: Mapping[str, np.ndarray], target: np.ndarray, out_dir: str | os.PathLike) -> list[Path]:
        return []

    def test_table(self, rows: np.ndarray, ids: Sequence[str], pred: Mapping[str, np.ndarray], target: np.ndarray
                   ) -> tuple[list[str], list[list[Any]]]:
        """The held-out predictions beside their labels: ``(columns, rows)`` of ``test_predictions.csv``."""
        raise NotImplementedError

    def prediction_columns(self) -> list[str]:
        """Columns of ``astrocnn predict``'s CSV; the last is always ``error``."""
        raise NotImplementedError

    def prediction_rows(self, ids: Sequence[str], sources: Sequence[str], pred: Mapping[str, np.ndarray]
                        ) -> list[list[Any]]:
        """One CSV row per prediction, in :meth:`prediction_columns` order (``error`` empty)."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name
