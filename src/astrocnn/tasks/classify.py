"""Quasar / galaxy (/ star) classification from spectra: the paper's LogSoftmax head and negative
log-likelihood.

Tasks layer (see :mod:`astrocnn.tasks.base` for the interface).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F

from astrocnn.core.metrics import classification_metrics, confusion_matrix
from astrocnn.models.heads import ClassificationHead
from astrocnn.tasks.spectral import SpectraTask, class_lookup


class ClassifyTask(SpectraTask):
    """Classification into ``config.classes`` (rows of other classes are left out); NLL on log-softmax."""

    name = "classify"
    monitor = "accuracy"
    shifts = True

    @property
    def class_names(self) -> list[str]:
        return list(self.config.classes or [])

    def rows(self, z, cls, class_names):
        if cls is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(class_lookup(self.class_names, class_names)[cls.astype(np.int64) + 1] >= 0)

    def targets(self, batch, class_names):
        return class_lookup(self.class_names, class_names)[batch["cls"].astype(np.int64) + 1]

    def make_head(self, features):
        return ClassificationHead(features, len(self.class_names))

    def loss(self, output, target):
        return F.nll_loss(output, target.long(), reduction="none")

    def decode(self, output):
        prob = output.exp()
        return {"cls": prob.argmax(dim=1), "prob": prob}

    def metrics(self, pred, target, full=True):
        return classification_metrics(np.asarray(target), np.asarray(pred["cls"]), self.class_names)

    def plots(self, pred, target, out_dir):
        from astrocnn.core import plots  # matplotlib: only when drawing

        path = Path(out_dir) / "confusion.png"
        cm = confusion_matrix(np.asarray(target), np.asarray(pred["cls"]), len(self.class_names))
        plots.plot_confusion(cm, self.class_names, path)
        return [path]

    def name_predictions(self, pred):
        if "cls" in pred:
            pred["class"] = np.asarray(self.class_names, dtype=object)[pred["cls"]]
        return pred

    def test_table(self, rows, ids, pred, target):
        names = self.class_names
        columns = ["row", "id", "cls_true", "cls_pred", *[f"p_{c}" for c in names]]
        table = [[int(rows[i]), ids[i], names[int(target[i])], names[int(pred["cls"][i])],
                  *[f"{p:.4f}" for p in pred["prob"][i]]] for i in range(len(rows))]
        return columns, table

    def prediction_columns(self):
        return ["id", "source", "class", *[f"p_{c}" for c in self.class_names], "error"]

    def prediction_rows(self, ids, sources, pred):
        return [[ids[i], sources[i], pred["class"][i], *[f"{p:.4f}" for p in pred["prob"][i]], ""]
                for i in range(len(ids))]

    def describe(self):
        return f"classify ({', '.join(self.class_names)})"
