"""Gravitational-wave detection in three-detector strain: one logit, binary cross-entropy.

Tasks layer, on the gravitational-wave domain: the task reads prepared strain sets
(:class:`~astrocnn.gw.dataset.StrainSet`) and supplies their whitener (:meth:`DetectTask.input_transform`),
so the trainer never meets a GW module.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from astrocnn.core.config import DataConfig, RunConfig
from astrocnn.core.errors import InputError
from astrocnn.core.metrics import detection_metrics
from astrocnn.core.roc import roc_curve
from astrocnn.gw.whitening import GwPreprocess, Whitener
from astrocnn.models.heads import ScalarHead
from astrocnn.tasks.base import Task

log = logging.getLogger(__name__)


class DetectTask(Task):
    """Gravitational-wave detection on prepared strain sets (:class:`~astrocnn.gw.dataset.StrainSet`).

    One output, a logit, trained with binary cross-entropy on the label (1 signal, 0 noise only; rows with an
    unknown label, -1, are left out). :meth:`decode` gives ``score`` = sigmoid(logit) and ``logit``. The
    target array the trainer passes around is (n, 2) float32: the label and the injected network SNR (NaN
    when unknown), so the metrics can be given per SNR bin; only the label enters the loss.
    """

    name = "detect"
    kind = "strain"
    monitor = "roc_auc"

    # -- data
    def usable_rows(self, store) -> np.ndarray:
        self.check_data(store)
        return np.flatnonzero(np.asarray(store.target) >= 0)

    def read_labels(self, store, rows):
        # labels only: the strain of the whole training side is never read to fit the task
        return {"target": store.target[rows], "snr": store.snr[rows]}

    def read_inputs(self, store, rows, data):
        if list(data.inputs) != ["strain"]:
            raise InputError(store.path, f"a strain set gives the input ['strain'], the run wants {list(data.inputs)}")
        batch = store.read(np.asarray(rows, dtype=np.int64))
        return batch, np.ascontiguousarray(batch["strain"], dtype=np.float32)

    def augments(self, data: DataConfig) -> bool:
        return bool(data.aug_flip or data.aug_swap or data.aug_delay > 0)

    def read_training_inputs(self, store, rows, data, seed, epoch):
        """Sign flips, H1/L1 swaps and per-detector delays (see :class:`~astrocnn.core.config.DataConfig`)."""
        batch, x = self.read_inputs(store, rows, data)
        if not self.augments(data):
            return batch, x
        x = x.copy()
        for i, row in enumerate(rows):
            rng = np.random.default_rng([seed, 4, epoch, int(row)])
            flip, swap = rng.random() < 0.5, rng.random() < 0.5
            delays = rng.integers(-data.aug_delay, data.aug_delay + 1, x.shape[1])
            if data.aug_flip and flip:
                x[i] = -x[i]
            if data.aug_swap and swap and x.shape[1] >= 2:
                x[i, [0, 1]] = x[i, [1, 0]]
            if data.aug_delay > 0:
                for d, shift in enumerate(delays):
                    if shift:
                        x[i, d] = np.roll(x[i, d], int(shift))
        return batch, x

    def configure_inputs(self, store, config: RunConfig) -> dict[str, np.ndarray]:
        # the whitener settings, normalisation and PSD travel with the run (the PSD in the weights file)
        config.input = {"kind": "strain", "length": int(store.shape[1]), "sample_rate": float(store.sample_rate),
                        "detectors": json.loads(store.attrs.get("detectors", "[]")),
                        "preprocessing": store.preprocessing,
                        "whitening_n_fit": int(store.attrs.get("whitening_n_fit", 1)),
                        "whitening_fit": str(store.attrs.get("whitening_fit", ""))}
        config.data.inputs = ["strain"]
        config.model.in_channels = int(store.shape[0])
        config.model.length = int(store.shape[1])
        return {"whitening_psd": np.asarray(store.whitening_psd, dtype=np.float64)}

    def check_compatible(self, config: RunConfig, store) -> None:
        super().check_compatible(config, store)
        shape = [len(config.input.get("detectors", [])) or config.model.in_channels, int(config.input["length"])]
        if list(store.shape) != shape or float(store.sample_rate) != float(config.input.get("sample_rate")):
            raise InputError(store.path, f"strain of shape {tuple(store.shape)} at {store.sample_rate:g} Hz; the "
                                         f"model takes {tuple(shape)} at {config.input.get('sample_rate'):g} Hz")
        if store.preprocessing != config.input.get("preprocessing"):
            log.warning("%s: prepared with %s; the model was trained behind %s", store.path,
                        store.preprocessing, config.input.get("preprocessing"))

    def input_transform(self, config: RunConfig, arrays: Mapping[str, np.ndarray]) -> GwPreprocess:
        """The :class:`~astrocnn.gw.whitening.GwPreprocess` (whitener + normalisation) the run was trained
        behind, rebuilt from ``config.input["preprocessing"]`` and the stored PSD (``arrays["whitening_psd"]``)."""
        pre = config.input.get("preprocessing") or {}
        if config.input.get("kind") != "strain" or "whitener" not in pre or "whitening_psd" not in arrays:
            raise InputError(None, "this run was not trained on a prepared strain set (no stored whitener)")
        w = Whitener.from_state(pre["whitener"], arrays["whitening_psd"], int(config.input.get("whitening_n_fit", 1)))
        return GwPreprocess(w, pre.get("normalize", "channel"))

    # -- labels
    def targets(self, batch, class_names):
        label = np.asarray(batch["target"], dtype=np.float32)
        snr = batch.get("snr")
        snr = np.full(label.shape, np.nan, np.float32) if snr is None else np.asarray(snr, dtype=np.float32)
        return np.stack([label, snr], axis=-1)

    # -- network
    def make_head(self, features):
        return ScalarHead(features)

    def loss(self, output, target):
        return F.binary_cross_entropy_with_logits(output, target[..., 0].to(output.dtype), reduction="none")

    def decode(self, output):
        return {"score": torch.sigmoid(output), "logit": output}

    # -- results
    def metrics(self, pred, target, full=True):
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        return detection_metrics(target[:, 0], np.asarray(pred["logit"]), target[:, 1],
                                 snr_bins=self.config.snr_bins if full else (),
                                 n_boot=self.config.n_boot if full else 0)

    def plots(self, pred, target, out_dir):
        from astrocnn.core import plots  # matplotlib: only when drawing
        from astrocnn.gw.plots import plot_efficiency_vs_snr

        out_dir = Path(out_dir)
        target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
        y = target[:, 0] == 1
        logit = np.asarray(pred["logit"], dtype=np.float64)
        paths = []
        if y.any() and (~y).any():
            fpr, tpr, _ = roc_curve(y, logit)
            plots.plot_roc(fpr, tpr, out_dir / "roc.png", auc=detection_metrics(y, logit, n_boot=0)["roc_auc"])
            paths.append(out_dir / "roc.png")
            if np.isfinite(target[y, 1]).any():
                plot_efficiency_vs_snr(target[y, 1], logit[y], logit[~y], out_dir / "efficiency_vs_snr.png")
                paths.append(out_dir / "efficiency_vs_snr.png")
        return paths

    def test_table(self, rows, ids, pred, target):
        t = np.asarray(target, np.float64).reshape(-1, 2)
        columns = ["row", "id", "target", "snr", "score", "logit"]
        table = [[int(rows[i]), ids[i], int(t[i, 0]), "" if not np.isfinite(t[i, 1]) else f"{t[i, 1]:.3f}",
                  f"{pred['score'][i]:.6g}", f"{pred['logit'][i]:.6g}"] for i in range(len(rows))]
        return columns, table

    def prediction_columns(self):
        # psd: which noise PSD whitened the input (data: estimated from the data scored, label-free; training:
        # the run's; prepared set: the set's own), so a table says on what footing its scores stand
        return ["id", "source", "gps_centre", "score", "logit", "valid", "psd", "error"]

    def prediction_rows(self, ids, sources, pred):
        gps, valid, psd = pred.get("gps_centre"), pred.get("valid"), pred.get("psd")
        return [[ids[i], sources[i], "" if gps is None else f"{gps[i]:.4f}", f"{pred['score'][i]:.6f}",
                 f"{pred['logit'][i]:.4f}", "" if valid is None else int(bool(valid[i])),
                 "" if psd is None else psd[i], ""] for i in range(len(ids))]

    def describe(self):
        return "detect (gravitational-wave signal vs noise; one logit, binary cross-entropy)"
