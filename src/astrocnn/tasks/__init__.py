"""The learning problems: redshift and classification on spectra, detection on strain.

Tasks layer: above the domains (:mod:`astrocnn.spectra`, :mod:`astrocnn.gw`), below the trainer
(:mod:`astrocnn.train`), which knows a task only through :class:`~astrocnn.tasks.base.Task`. A new task is a
subclass registered in :data:`TASKS`; a new kind of prepared set is registered in :data:`DATASETS`.

    from astrocnn.tasks import make_task, open_dataset
    task = make_task(config.task)
    store = open_dataset("survey.h5")          # SpectraSet or StrainSet, by the file's kind
    rows = task.usable_rows(store)
"""
from __future__ import annotations

import os
from typing import Union

from astrocnn.core.config import TaskConfig
from astrocnn.core.errors import InputError
from astrocnn.core.h5sets import prepared_kind
from astrocnn.gw.dataset import StrainSet
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.tasks.base import Task, class_names_of
from astrocnn.tasks.classify import ClassifyTask
from astrocnn.tasks.detect import DetectTask
from astrocnn.tasks.joint import ClassifyRedshiftTask
from astrocnn.tasks.redshift import RedshiftTask
from astrocnn.tasks.spectral import SpectraTask

#: task name -> class
TASKS: dict[str, type[Task]] = {"redshift": RedshiftTask, "classify": ClassifyTask, "detect": DetectTask,
                                 "classify_redshift": ClassifyRedshiftTask}
#: prepared-set kind -> reader
DATASETS = {"spectra": SpectraSet, "strain": StrainSet}
#: either kind of prepared set
Dataset = Union[SpectraSet, StrainSet]


def make_task(config: TaskConfig) -> Task:
    """The task object for ``config.name``."""
    try:
        return TASKS[config.name](config)
    except KeyError:
        raise ValueError(f"unknown task {config.name!r}; known: {sorted(TASKS)}") from None


def open_dataset(path: str | os.PathLike) -> Dataset:
    """Open a prepared set as the reader its ``kind`` names (:class:`SpectraSet` or :class:`StrainSet`)."""
    kind = prepared_kind(path)
    if kind not in DATASETS:
        raise InputError(path, f"a prepared set of unknown kind {kind!r}; this astrocnn reads {sorted(DATASETS)}")
    return DATASETS[kind](path)


__all__ = ["TASKS", "DATASETS", "Dataset", "Task", "SpectraTask", "RedshiftTask", "ClassifyTask", "DetectTask",
           "ClassifyRedshiftTask",
           "make_task", "open_dataset", "class_names_of"]
