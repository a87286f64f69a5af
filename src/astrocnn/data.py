"""Batches from a prepared HDF5 set, for one process or several (DDP).

Reading one spectrum at a time from HDF5 is slow, so the unit of work is a batch: :class:`BatchSampler`
yields, for each step, the array of row indices this process reads, and :class:`SpectraBatches` reads
them in one sorted call to :meth:`PreparedSet.read` (inside a data-loader worker process) and returns
ready tensors. The data loader is built with ``batch_size=None`` so batches pass through untouched.

Distributed runs: every process draws the same permutation (seeded by ``seed`` and the epoch), cuts it into
the same global batches, and takes every ``world_size``-th row of each batch starting at its ``rank``. The
union over processes of step ``i`` is therefore exactly global batch ``i`` of a single-process run, and
with gradients averaged by DDP the optimisation sees the same batches. Evaluation batches are padded
(with rows flagged ``weight = 0``) so every process runs the same number of equal-sized steps.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator, Sequence, Union

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import DataConfig
from .errors import InputError
from .gw.store import StrainSet
from .store import PreparedSet
from .tasks import Task

#: marks a padding slot in a batch index array
PAD = -1

#: either kind of prepared set
AnySet = Union[PreparedSet, StrainSet]


def prepared_kind(path: str | os.PathLike) -> str:
    """The ``kind`` attribute of a prepared set: ``"spectra"`` or ``"strain"``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        with h5py.File(path, "r") as h5:
            kind = h5.attrs.get("kind", "spectra")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from exc
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def open_prepared(path: str | os.PathLike) -> AnySet:
    """Open a prepared set as the class its ``kind`` names: :class:`PreparedSet` (spectra) or
    :class:`~astrocnn.gw.store.StrainSet` (strain)."""
    return StrainSet(path) if prepared_kind(path) == "strain" else PreparedSet(path)


def is_strain(store: Any) -> bool:
    return isinstance(store, StrainSet)


def class_names_of(store: AnySet) -> tuple[str, ...]:
    return tuple(getattr(store, "class_names", ()))


def read_inputs(store: AnySet, rows: np.ndarray, inputs: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read ``rows`` of a prepared set: (the batch as read, the network inputs (n, channels, n) float32).

    Strain sets give their prepared (whitened, band-passed, normalised) detector channels as they are.
    """
    if is_strain(store):
        if list(inputs) != ["strain"]:
            raise InputError(store.path, f"a strain set gives the input ['strain'], the run wants {list(inputs)}")
        batch = store.read(np.asarray(rows, dtype=np.int64))
        return batch, np.ascontiguousarray(batch["strain"], dtype=np.float32)
    if "strain" in inputs:
        raise InputError(store.path, "the run takes strain, this is a spectra set")
    fields = ("flux", "ivar") if "mask" in inputs else ("flux",)
    batch = store.read(rows, fields=fields)
    return batch, make_inputs(batch["flux"], batch.get("ivar"), inputs)


def split_rows(rows: np.ndarray, test_fraction: float, val_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Seeded split of ``rows`` into sorted ``train``, ``val`` and ``test`` index arrays.

    ``test`` takes ``round(test_fraction * n)`` rows; ``val`` takes ``round(val_fraction * rest)`` of the others.
    """
    rows = np.asarray(rows, dtype=np.int64)
    perm = rows[np.random.default_rng([seed, 1]).permutation(rows.size)]
    n_test = int(round(test_fraction * rows.size))
    n_val = int(round(val_fraction * (rows.size - n_test)))
    test, val, train = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    if train.size == 0 or val.size == 0:
        raise ValueError(
            f"{rows.size} usable rows are too few for a split with test_fraction={test_fraction}, "
            f"val_fraction={val_fraction}"
        )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


class BatchSampler(Sampler):
    """Yields this process's share of each global batch as an int64 index array.

    rows : the row indices to draw from.
    batch_size : the global batch (all processes together); must be a multiple of ``world_size``.
    shuffle : draw a new seeded permutation every epoch (call :meth:`set_epoch`); otherwise keep order.
    drop_last : drop a final incomplete global batch (training); otherwise pad it with :data:`PAD`.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False):
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not a multiple of world_size {world_size}")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self.rows.size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        rows = self.rows
        if self.shuffle:
            rows = rows[np.random.default_rng([self.seed, 2, self.epoch]).permutation(rows.size)]
        for i in range(len(self)):
            batch = rows[i * self.batch_size:(i + 1) * self.batch_size]
            if batch.size < self.batch_size:
                # pad to a multiple of world_size so every process gets the same count
                short = -batch.size % self.world_size
                batch = np.concatenate([batch, np.full(short, PAD, dtype=np.int64)])
            yield batch[self.rank::self.world_size]


def make_inputs(flux: np.ndarray, ivar: np.ndarray | None, inputs: Sequence[str]) -> np.ndarray:
    """Stack the network's input channels: (n, n_pix) arrays -> (n, len(inputs), n_pix) float32."""
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


class SpectraBatches(Dataset):
    """``dataset[index_array]`` -> one batch: ``x`` (b, channels, n_pix), ``target``, ``weight``, ``row``.

    Padding slots (:data:`PAD`) read row 0 and get ``weight = 0``. With ``augment=True`` (training), noise
    and shifts from ``config`` are drawn from a stream seeded by (seed, epoch, row), so a row's augmentation
    does not depend on which process or worker reads it.
    """

    def __init__(self, store: AnySet, task: Task, config: DataConfig, *, augment: bool = False, seed: int = 0):
        self.store = store
        self.task = task
        self.config = config
        self.strain = is_strain(store)
        self.augment = augment and (config.aug_noise > 0 or config.aug_shift > 0) and not self.strain
        self.augment_strain = augment and self.strain and (config.aug_flip or config.aug_swap or config.aug_delay > 0)
        self.seed = seed
        self.epoch = 0
        self.class_names = class_names_of(store)
        self.fields = ("flux", "ivar") if ("mask" in config.inputs or self.augment) else ("flux",)

    def __len__(self) -> int:  # not used by the sampler-driven loader
        return len(self.store)

    def __getitem__(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        pad = idx == PAD
        if self.strain:
            batch, x = read_inputs(self.store, np.where(pad, 0, idx), self.config.inputs)
            if self.augment_strain:
                x = self._augment_strain(x, np.where(pad, 0, idx))
            return {
                "x": torch.from_numpy(x),
                "target": torch.from_numpy(np.asarray(self.task.targets(batch, self.class_names))),
                "weight": torch.from_numpy((~pad).astype(np.float32)),
                "row": torch.from_numpy(idx),
            }
        batch = self.store.read(np.where(pad, 0, idx), fields=self.fields)
        flux, ivar = batch["flux"], batch.get("ivar")
        if self.augment:
            flux = self._augment(flux, ivar, np.where(pad, 0, idx))
        x = make_inputs(flux, ivar, self.config.inputs)
        target = self.task.targets(batch, self.class_names)
        return {
            "x": torch.from_numpy(x),
            "target": torch.from_numpy(np.asarray(target)),
            "weight": torch.from_numpy((~pad).astype(np.float32)),
            "row": torch.from_numpy(idx),
        }

    def _augment(self, flux: np.ndarray, ivar: np.ndarray, rows: np.ndarray) -> np.ndarray:
        flux = flux.copy()
        for i, row in enumerate(rows):
            rng = np.random.default_rng([self.seed, 3, self.epoch, int(row)])
            if self.config.aug_noise > 0:
                good = ivar[i] > 0
                sigma = np.where(good, 1.0 / np.sqrt(np.where(good, ivar[i], 1.0)), 0.0)
                flux[i] += rng.uniform(0, self.config.aug_noise) * sigma * rng.standard_normal(flux.shape[1]).astype(np.float32)
            if self.config.aug_shift > 0 and self.task.name == "classify":
                s = int(rng.integers(-self.config.aug_shift, self.config.aug_shift + 1))
                flux[i] = np.roll(flux[i], s)
        return flux


    def _augment_strain(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Sign flips, H1/L1 swaps and per-detector delays (see :class:`~astrocnn.config.DataConfig`), drawn
        from a stream seeded by (seed, epoch, row) like the spectra's augmentation."""
        x = x.copy()
        c = self.config
        for i, row in enumerate(rows):
            rng = np.random.default_rng([self.seed, 4, self.epoch, int(row)])
            flip, swap, delays = rng.random() < 0.5, rng.random() < 0.5, rng.integers(-c.aug_delay, c.aug_delay + 1, x.shape[1])
            if c.aug_flip and flip:
                x[i] = -x[i]
            if c.aug_swap and swap and x.shape[1] >= 2:
                x[i, [0, 1]] = x[i, [1, 0]]
            if c.aug_delay > 0:
                for d, shift in enumerate(delays):
                    if shift:
                        x[i, d] = np.roll(x[i, d], int(shift))
        return x


class _EpochAwareSampler(BatchSampler):
    """Passes the epoch on to the dataset, whose augmentation streams depend on it.

    Works with worker processes because each epoch's iterator re-sends the dataset state only when the
    workers are re-created; we therefore run workers non-persistent (fresh each epoch) when augmenting.
    """

    def __init__(self, *args, dataset: SpectraBatches | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.dataset is not None:
            self.dataset.epoch = int(epoch)


def make_loader(store: AnySet, rows: np.ndarray, task: Task, config: DataConfig, *, batch_size: int,
                train: bool, seed: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """A data loader over ``rows`` yielding this process's batches (see the module docstring)."""
    dataset = SpectraBatches(store, task, config, augment=train, seed=seed)
    sampler = _EpochAwareSampler(rows, batch_size, shuffle=train, seed=seed, rank=rank, world_size=world_size,
                                 drop_last=train and rows.size >= batch_size, dataset=dataset)
    workers = max(0, int(config.num_workers))
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,
        # every new iterator draws a seed for its workers; from its own generator it leaves torch's global one
        # (dropout) alone, so the global stream depends only on the training itself, not on when Lightning
        # happens to create iterators -- which differs between a resumed and an uninterrupted run
        generator=torch.Generator().manual_seed(int(seed)),
        num_workers=workers,
        # fresh workers each epoch pick up the epoch for augmentation; otherwise keep them
        persistent_workers=workers > 0 and not (dataset.augment or dataset.augment_strain),
        prefetch_factor=4 if workers > 0 else None,
    )
