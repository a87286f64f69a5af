"""What the spectra tasks (redshift, classification) share: reading prepared spectra sets, their input
channels, augmentation, the grid check, and the prediction table's first columns.

Tasks layer, on the spectra domain (:mod:`astrocnn.spectra.dataset`, :mod:`astrocnn.spectra.preprocess`).
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import numpy as np

from astrocnn.core.config import DataConfig, RunConfig
from astrocnn.core.errors import InputError
from astrocnn.spectra.preprocess import Preprocessing, files_problem, normalisation_of, same_normalisation
from astrocnn.tasks.base import Task


def class_lookup(wanted: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Map a set's class indices (+1 so -1 'unknown' maps to slot 0) to indices into ``wanted`` (-1 = not used)."""
    lut = np.full(len(class_names) + 1, -1, dtype=np.int64)
    for i, name in enumerate(class_names):
        if name in wanted:
            lut[i + 1] = list(wanted).index(name)
    return lut


def make_inputs(flux: np.ndarray, ivar: np.ndarray | None, inputs: Sequence[str]) -> np.ndarray:
    """Stack the network's input channels: (n, n_pix) arrays -> (n, len(inputs), n_pix) float32.

    ``"flux"`` is the normalised flux (non-finite values as 0); ``"mask"`` is 1 where ``ivar > 0``.
    """
    chans = []
    for name in inputs:
        if name == "flux":
            chans.append(np.nan_to_num(np.asarray(flux, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0))
        elif name == "mask":
            if ivar is None:
                raise ValueError("the 'mask' input channel needs ivar")
            chans.append((np.asarray(ivar) > 0).astype(np.float32))
        else:
            raise ValueError(f"unknown input channel {name!r}")
    return np.stack(chans, axis=1)


def grid_text(g: Mapping[str, Any]) -> str:
    """A stored grid in words: ``"3600-10325 A with 4618 pixels"``."""
    return f"{g['lam_min']:g}-{g['lam_max']:g} A with {g['n']} pixels"


class SpectraTask(Task):
    """Base of the tasks that read prepared spectra sets (:class:`~astrocnn.spectra.dataset.SpectraSet`)."""

    kind = "spectra"
    #: training augmentation may shift spectra along the grid (classification: the class does not move
    #: with the lines; a redshift would)
    shifts = False

    # -- which rows
    def rows(self, z: np.ndarray | None, cls: np.ndarray | None, class_names: Sequence[str]) -> np.ndarray:
        """Usable row indices given the set's label columns."""
        raise NotImplementedError

    def usable_rows(self, store) -> np.ndarray:
        self.check_data(store)
        return self.rows(store.z, store.cls, store.class_names)

    def check_data(self, store) -> None:
        super().check_data(store)
        if store.grid is None:
            raise InputError(store.path, "this prepared set has no wavelength grid (is it a spectra set?)")

    def read_labels(self, store, rows):
        return store.read(rows, fields=())

    # -- inputs
    def _fields(self, data: DataConfig, augment: bool) -> tuple[str, ...]:
        return ("flux", "ivar") if ("mask" in data.inputs or augment) else ("flux",)

    def read_inputs(self, store, rows, data):
        if "strain" in data.inputs:
            raise InputError(store.path, "the run takes strain, this is a spectra set")
        batch = store.read(rows, fields=self._fields(data, False))
        return batch, make_inputs(batch["flux"], batch.get("ivar"), data.inputs)

    def augments(self, data: DataConfig) -> bool:
        return data.aug_noise > 0 or (self.shifts and data.aug_shift > 0)

    def read_training_inputs(self, store, rows, data, seed, epoch):
        if not self.augments(data):
            return self.read_inputs(store, rows, data)
        batch = store.read(rows, fields=self._fields(data, True))
        flux, ivar = batch["flux"].copy(), batch["ivar"]
        for i, row in enumerate(rows):
            rng = np.random.default_rng([seed, 3, epoch, int(row)])
            if data.aug_noise > 0:
                good = ivar[i] > 0
                sigma = np.where(good, 1.0 / np.sqrt(np.where(good, ivar[i], 1.0)), 0.0)
                flux[i] += rng.uniform(0, data.aug_noise) * sigma * rng.standard_normal(flux.shape[1]).astype(np.float32)
            if self.shifts and data.aug_shift > 0:
                s = int(rng.integers(-data.aug_shift, data.aug_shift + 1))
                flux[i] = np.roll(flux[i], s)
        return batch, make_inputs(flux, ivar, data.inputs)

    def configure_inputs(self, store, config: RunConfig) -> dict[str, np.ndarray]:
        config.input = {"grid": json.loads(store.grid.to_json()), "length": int(store.grid.n),
                        "preprocess": json.loads(store.attrs.get("preprocess", "{}")),
                        "class_names": list(store.class_names)}
        config.model.in_channels = len(config.data.inputs)
        config.model.length = int(store.grid.n)
        return {}

    def check_compatible(self, config: RunConfig, store) -> None:
        super().check_compatible(config, store)
        want = config.input.get("grid")
        have = None if store.grid is None else json.loads(store.grid.to_json())
        if want is not None and have is not None and want != have:
            raise InputError(store.path, f"spectra are on grid {grid_text(have)}, the model was trained on "
                                         f"{grid_text(want)}: prepare the data on the model's grid")
        n = int(config.input.get("length", config.model.length))
        if store.grid is not None and store.grid.n != n:
            raise InputError(store.path, f"spectra have {store.grid.n} pixels, the model takes {n}")
        want = config.input.get("preprocess") or {}
        have = json.loads(store.attrs.get("preprocess", "{}"))
        if not same_normalisation(want, have):
            raise InputError(store.path, f"the spectra carry {normalisation_of(have)}, the model was trained on "
                                         f"{normalisation_of(want)}: prepare them the same way")

    def input_transform(self, config: RunConfig, arrays: Mapping[str, np.ndarray] | None = None) -> Preprocessing:
        """The run's :class:`~astrocnn.spectra.preprocess.Preprocessing`: its grid and preprocessing settings.

        Raises :class:`InputError` (no file named) for a run trained on a flux astrocnn cannot make from a
        spectrum file (one kept as its files gave it, see :mod:`astrocnn.spectra.arrays`)."""
        record = config.input.get("preprocess") or {}
        problem = files_problem(record)
        if problem:
            raise InputError(None, problem)
        return Preprocessing.from_run_input(config.input)
