"""Batches from a prepared set, for one process or several (DDP): the trainer's data loader.

Trainer layer: it reads through the task (:meth:`~astrocnn.tasks.base.Task.read_inputs` and
:meth:`~astrocnn.tasks.base.Task.read_training_inputs`), so it works for any kind of prepared set.

Reading one row at a time from HDF5 is slow, so the unit of work is a batch: :class:`BatchSampler` yields, for
each step, the array of row indices this process reads, and :class:`Batches` has the task read them in one
sorted call (inside a data-loader worker process) and returns ready tensors. The data loader is built with
``batch_size=None`` so batches pass through untouched.

Distributed runs: every process draws the same permutation (seeded by ``seed`` and the epoch), cuts it into
the same global batches, and takes every ``world_size``-th row of each batch starting at its ``rank``. The
union over processes of step ``i`` is therefore exactly global batch ``i`` of a single-process run, and
with gradients averaged by DDP the optimisation sees the same batches. Evaluation batches are padded
(with rows flagged ``weight = 0``) so every process runs the same number of equal-sized steps.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from astrocnn.core.config import DataConfig
from astrocnn.tasks import Task, class_names_of

#: marks a padding slot in a batch index array
PAD = -1


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
    batches : when given, told the epoch too (its augmentation streams depend on it).
    """

    def __init__(self, rows: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, batches: "Batches | None" = None):
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
        self.batches = batches

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if self.batches is not None:
            # with worker processes this reaches them because workers are re-created every epoch when
            # augmenting (see make_loader)
            self.batches.epoch = int(epoch)

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


class Batches(Dataset):
    """``batches[index_array]`` -> one batch: ``x`` (b, channels, length), ``target``, ``weight``, ``row``.

    Padding slots (:data:`PAD`) read row 0 and get ``weight = 0``. With ``augment=True`` (training) the task
    reads with its augmentation, seeded by (seed, epoch, row).
    """

    def __init__(self, store, task: Task, config: DataConfig, *, augment: bool = False, seed: int = 0):
        self.store = store
        self.task = task
        self.config = config
        self.augment = augment and task.augments(config)
        self.seed = seed
        self.epoch = 0
        self.class_names = class_names_of(store)

    def __len__(self) -> int:  # not used by the sampler-driven loader
        return len(self.store)

    def __getitem__(self, idx: np.ndarray) -> dict[str, torch.Tensor]:
        idx = np.asarray(idx, dtype=np.int64)
        pad = idx == PAD
        rows = np.where(pad, 0, idx)
        if self.augment:
            batch, x = self.task.read_training_inputs(self.store, rows, self.config, self.seed, self.epoch)
        else:
            batch, x = self.task.read_inputs(self.store, rows, self.config)
        return {
            "x": torch.from_numpy(x),
            "target": torch.from_numpy(np.asarray(self.task.targets(batch, self.class_names))),
            "weight": torch.from_numpy((~pad).astype(np.float32)),
            "row": torch.from_numpy(idx),
        }


def make_loader(store, rows: np.ndarray, task: Task, config: DataConfig, *, batch_size: int, train: bool,
                seed: int = 0, rank: int = 0, world_size: int = 1) -> DataLoader:
    """A data loader over ``rows`` yielding this process's batches (see the module docstring)."""
    batches = Batches(store, task, config, augment=train, seed=seed)
    sampler = BatchSampler(rows, batch_size, shuffle=train, seed=seed, rank=rank, world_size=world_size,
                           drop_last=train and rows.size >= batch_size, batches=batches)
    workers = max(0, int(config.num_workers))
    return DataLoader(
        batches,
        sampler=sampler,
        batch_size=None,
        # every new iterator draws a seed for its workers; from its own generator it leaves torch's global one
        # (dropout) alone, so the global stream depends only on the training itself, not on when Lightning
        # happens to create iterators -- which differs between a resumed and an uninterrupted run
        generator=torch.Generator().manual_seed(int(seed)),
        num_workers=workers,
        # fresh workers each epoch pick up the epoch for augmentation; otherwise keep them
        persistent_workers=workers > 0 and not batches.augment,
        prefetch_factor=4 if workers > 0 else None,
    )
