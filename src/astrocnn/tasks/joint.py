"""Class and redshift from one network: a classification head and a binned log(1+z) head on shared features.

Tasks layer (see :mod:`astrocnn.tasks.base` for the interface). The loss is the classification's negative
log-likelihood plus the binned redshift loss of :class:`~astrocnn.tasks.redshift.RedshiftBins`; every row
with a class among ``config.classes`` and a finite redshift is used. Its scores are the classification's and,
per true class, the redshift's (quasars judged within 6000 km/s, galaxies and stars within 1000 km/s).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch.nn.functional as F

from astrocnn.core.config import TaskConfig
from astrocnn.core.metrics import C_KMS, classification_metrics, confusion_matrix, dv_kms, redshift_metrics
from astrocnn.models.heads import ClassAndBinsHead
from astrocnn.tasks.redshift import RedshiftBins
from astrocnn.tasks.spectral import SpectraTask, class_lookup

#: |dv| below which a redshift counts as right, per class (quasars: the paper's 6000 km/s)
DV_LIMITS_KMS = {"qso": 6000.0, "galaxy": 1000.0, "star": 1000.0}


class ClassifyRedshiftTask(SpectraTask):
    """One network, two answers: the class (LogSoftmax + NLL, the paper's) and the redshift (binned head).

    Targets are (n, 2) float32: the class index into ``config.classes`` and ``log(1 + z)``.
    """

    name = "classify_redshift"
    monitor = "accuracy"
    shifts = False  # a shift moves the redshift

    def __init__(self, config: TaskConfig):
        super().__init__(config)
        self.bins = RedshiftBins(config)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.classes or [])

    def rows(self, z, cls, class_names):
        if z is None or cls is None:
            return np.zeros(0, dtype=np.int64)
        known = class_lookup(self.class_names, class_names)[cls.astype(np.int64) + 1] >= 0
        return np.flatnonzero(known & np.isfinite(z) & (z > -1))

    def targets(self, batch, class_names):
        cls = class_lookup(self.class_names, class_names)[batch["cls"].astype(np.int64) + 1]
        return np.stack([cls.astype(np.float32), np.log1p(batch["z"].astype(np.float64)).astype(np.float32)], axis=-1)

    def make_head(self, features):
        return ClassAndBinsHead(features, len(self.class_names), self.config.n_bins)

    def loss(self, output, target):
        class_log_prob, z_log_prob, offset = output
        return F.nll_loss(class_log_prob, target[:, 0].long(), reduction="none") + \
            self.bins.loss(z_log_prob, offset, target[:, 1])

    def decode(self, output):
        class_log_prob, z_log_prob, offset = output
        prob = class_log_prob.exp()
        return {"cls": prob.argmax(dim=1), "prob": prob, **self.bins.decode(z_log_prob, offset)}

    def name_predictions(self, pred):
        if "cls" in pred:
            pred["class"] = np.asarray(self.class_names, dtype=object)[pred["cls"]]
        return pred

    def metrics(self, pred, target, full=True):
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        true_cls = target[:, 0].astype(np.int64)
        m = classification_metrics(true_cls, np.asarray(pred["cls"]), self.class_names)
        z_true, z_pred = np.expm1(target[:, 1]), np.asarray(pred["z"], dtype=np.float64)
        for i, name in enumerate(self.class_names):
            sel = true_cls == i
            r = redshift_metrics(z_pred[sel], z_true[sel], bins=self.config.z_bins)
            if not full or name != "qso":  # redshift bins are a quasar's yardstick
                r.pop("per_bin")
            limit = DV_LIMITS_KMS.get(name, 1000.0)
            r[f"frac_dv_lt_{limit:.0f}"] = float(np.mean(np.abs(dv_kms(z_pred[sel], z_true[sel])) < limit)) \
                if sel.any() else float("nan")
            m[f"z_{name}"] = r
        return m

    def plots(self, pred, target, out_dir):
        from astrocnn.core import plots  # matplotlib: only when drawing
        from astrocnn.spectra import plots as spectra_plots

        out_dir = Path(out_dir)
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        cm = confusion_matrix(target[:, 0].astype(np.int64), np.asarray(pred["cls"]), len(self.class_names))
        plots.plot_confusion(cm, self.class_names, out_dir / "confusion.png")
        spectra_plots.plot_z_pred_vs_true(np.expm1(target[:, 1]), np.asarray(pred["z"]), out_dir / "z_pred_vs_true.png")
        return [out_dir / "confusion.png", out_dir / "z_pred_vs_true.png"]

    def test_table(self, rows, ids, pred, target):
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        names = self.class_names
        columns = ["row", "id", "cls_true", "cls_pred", *[f"p_{c}" for c in names], "z_true", "z_pred", "z_conf"]
        table = [[int(rows[i]), ids[i], names[int(target[i, 0])], names[int(pred["cls"][i])],
                  *[f"{p:.4f}" for p in pred["prob"][i]], f"{np.expm1(target[i, 1]):.5f}", f"{pred['z'][i]:.5f}",
                  f"{pred['z_conf'][i]:.4f}"] for i in range(len(rows))]
        return columns, table

    def prediction_columns(self):
        return ["id", "source", "class", *[f"p_{c}" for c in self.class_names], "z_pred", "z_conf", "error"]

    def prediction_rows(self, ids, sources, pred):
        return [[ids[i], sources[i], pred["class"][i], *[f"{p:.4f}" for p in pred["prob"][i]], f"{pred['z'][i]:.5f}",
                 f"{pred['z_conf'][i]:.4f}", ""] for i in range(len(ids))]

    def describe(self):
        return (f"classify_redshift ({', '.join(self.class_names)}; {self.config.n_bins} log(1+z) bins of "
                f"{C_KMS * self.bins.width:.0f} km/s)")
