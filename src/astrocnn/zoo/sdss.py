"""The ready-made ``sdss`` model: class (qso / galaxy / star) and redshift for any SDSS spectrum.

Zoo layer. The model is one or more networks (its manifest's ``components``; see :mod:`astrocnn.zoo.registry`)
whose raw outputs are decoded in numpy (:mod:`astrocnn.zoo.decode`): the class from the class head, the
redshift from the redshift head that the manifest assigns to that class, its error, confidence and a
redrock-like ``zwarn`` (:class:`~astrocnn.spectra.zwarn.ZWarn`; ``zwarn == 0`` means "use it").

    from astrocnn import load_model
    table = load_model("sdss").predict(["spec-6001-56072-0702.fits", "spectra/"])   # an astropy Table
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.parallel import default_workers
from astrocnn.spectra.dataset import SpectraSet
from astrocnn.spectra.prepare import FileResult, prepare_file_batches, walk_inputs
from astrocnn.spectra.preprocess import Prepared, Preprocessing
from astrocnn.zoo.decode import Bins, Thresholds, redshift, softmax_log, zwarn
from astrocnn.zoo.registry import ModelInfo

log = logging.getLogger(__name__)

#: columns of the predictions table, in order
COLUMNS = ["id", "source", "class", "p_qso", "p_galaxy", "p_star", "z", "z_err", "z_conf", "zwarn", "snr",
           "coverage", "error"]
#: rows of a prepared set read at a time
SET_CHUNK = 1024


class Component(Protocol):
    """One network of a model, behind any runtime: its run configuration and its raw outputs."""

    config: dict[str, Any]

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Raw outputs for inputs (n, channels, length) float32."""


@dataclass
class Rows:
    """Predictions being assembled, in input order."""

    columns: dict[str, list] = field(default_factory=lambda: {c: [] for c in COLUMNS})

    def add_error(self, ident: str, source: str, reason: str) -> None:
        blank = {"class": "", "zwarn": 512}
        for c in COLUMNS:
            self.columns[c].append({"id": ident, "source": source, "error": reason}.get(c, blank.get(c, np.nan)))

    def add(self, values: dict[str, np.ndarray]) -> None:
        for c in COLUMNS:
            self.columns[c].extend(values[c])


class SdssModel:
    """Class and redshift for SDSS spectra from a model folder (see the module docstring).

    components : role -> :class:`Component` (PyTorch networks by default, ONNX Runtime sessions from
        :mod:`astrocnn.zoo.onnx`).
    """

    def __init__(self, info: ModelInfo, components: dict[str, Component]):
        self.info = info
        self.components = components
        m = info.manifest
        self.class_names = list(m["classes"])
        self.class_output = m["class_output"]
        self.redshift_outputs = m["redshift_outputs"]
        # per class ({"qso": {...}, ...}); classes without their own use the defaults
        self.thresholds = {name: Thresholds.from_dict(m.get("thresholds", {}).get(name, {})) for name in self.class_names}
        self.z_err_scale = float(m.get("z_err_scale", 1.0))
        first = components[self.class_output["component"]].config
        self.preprocessing = Preprocessing.from_run_input(first["input"])
        self.bins = {role: Bins.from_task(c.config["task"]) for role, c in components.items()
                     if c.config["task"].get("n_bins") and c.config["task"]["name"] != "classify"}

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name} {self.info.version} @{self.info.hash}>"

    # -- inputs ----------------------------------------------------------------------------------------
    def _prepared(self, inputs, workers: int) -> Iterator[list[FileResult]]:
        """Batches of prepared spectra (or their errors) in input order."""
        for kind, item in walk_inputs(inputs):
            if kind == "missing":
                yield [FileResult(str(item), None, item.name, error="no such file or folder")]
            elif kind == "files":
                yield from prepare_file_batches(item, self.preprocessing, workers)
            else:
                yield from self._set_rows(item)

    def _set_rows(self, path: Path) -> Iterator[list[FileResult]]:
        try:
            store = SpectraSet(path)
        except InputError as exc:
            yield [FileResult(str(path), None, path.name, error=exc.problem)]
            return
        with store:
            if store.grid != self.preprocessing.grid:
                yield [FileResult(str(path), None, path.name, error="spectra on another grid than the model's: "
                                                                      "prepare them from their files")]
                return
            coverage = store.column("coverage")
            for lo in range(0, len(store), SET_CHUNK):
                b = store.read(slice(lo, lo + SET_CHUNK))
                yield [FileResult(str(path), Prepared(b["flux"][i], b["ivar"][i], float(coverage[lo + i]),
                                                      float(store.snr[lo + i]), 0.0, 1.0), str(b["id"][i]))
                       for i in range(len(b["id"]))]

    # -- the answers -----------------------------------------------------------------------------------
    def answers(self, flux: np.ndarray, snr: np.ndarray, coverage: np.ndarray) -> dict[str, np.ndarray]:
        """Class and redshift for spectra already prepared on the model's grid: flux (n, n_pix)."""
        x = np.ascontiguousarray(np.nan_to_num(np.asarray(flux, np.float32))[:, None, :])
        raw = {role: c.outputs(x) for role, c in self.components.items()}
        p = softmax_log(raw[self.class_output["component"]][self.class_output["output"]])
        cls = p.argmax(axis=1)
        n = len(cls)
        out = {c: np.full(n, np.nan) for c in ("z", "z_err", "z_conf", "p_second")}
        best_bin, n_bins = np.zeros(n, np.int64), np.zeros(n, np.int64)
        for k, name in enumerate(self.class_names):
            sel = cls == k
            if not sel.any():
                continue
            spec = self.redshift_outputs[name]
            lp, off = (raw[spec["component"]][i][sel] for i in spec["outputs"])
            z = redshift(lp, off, self.bins[spec["component"]])
            for c in out:
                out[c][sel] = z[c]
            best_bin[sel], n_bins[sel] = z["best_bin"], self.bins[spec["component"]].n
        out["z_err"] = out["z_err"] * self.z_err_scale
        warn = np.zeros(n, dtype=np.int64)
        snr, coverage = np.asarray(snr, float), np.asarray(coverage, float)
        for k, name in enumerate(self.class_names):
            sel = cls == k
            answer = {c: out[c][sel] for c in ("z_conf", "p_second")} | {"best_bin": best_bin[sel]}
            warn[sel] = zwarn(p[sel, k], answer, snr[sel], coverage[sel], n_bins[sel], self.thresholds[name])
        probs = {f"p_{c}": p[:, self.class_names.index(c)] if c in self.class_names else np.zeros(n)
                 for c in ("qso", "galaxy", "star")}
        return {"class": np.asarray(self.class_names, dtype=object)[cls], **probs, "z": out["z"], "z_err": out["z_err"],
                "z_conf": out["z_conf"], "zwarn": warn, "p_class": p[np.arange(n), cls], "p_second": out["p_second"],
                "best_bin": best_bin, "n_bins": n_bins, "snr": np.asarray(snr, float),
                "coverage": np.asarray(coverage, float)}

    def answers_for_set(self, path: str | os.PathLike) -> dict[str, np.ndarray]:
        """:meth:`answers` for every row of a prepared set on the model's grid (for calibration and scores)."""
        parts = []
        for batch in self._set_rows(Path(path)):
            if batch[0].prepared is None:
                raise InputError(path, batch[0].error)
            parts.append(self.answers(np.stack([r.prepared.flux for r in batch]), np.array([r.prepared.snr for r in batch]),
                                      np.array([r.prepared.coverage for r in batch])))
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def predict(self, inputs: str | os.PathLike | Iterable[str | os.PathLike] | np.ndarray, *,
                workers: int | None = None, on_error: str = "skip"):
        """Class and redshift for every spectrum in ``inputs``: SDSS spec / spec-lite files, folders of them,
        prepared sets on the model's grid, or an array of spectra already prepared on it (n, 4618).

        Returns an :class:`astropy.table.Table` with the columns :data:`COLUMNS`, one row per spectrum in
        input order; a file that cannot be used gets a row with its reason in ``error`` (``zwarn`` NODATA), or,
        with ``on_error="fail"``, raises :class:`InputError` naming it.
        """
        from astropy.table import Table  # astropy's table module takes ~0.3 s to import: only when answering

        if on_error not in ("skip", "fail"):
            raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
        rows = Rows()
        if isinstance(inputs, np.ndarray):
            self._add_arrays(rows, np.atleast_2d(inputs))
        else:
            paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
            for batch in self._prepared(paths, workers or default_workers()):
                self._add_batch(rows, batch, on_error)
        table = Table({c: rows.columns[c] for c in COLUMNS})
        table.meta["model"] = f"{self.info.name}@{self.info.hash}"
        return table

    def _add_arrays(self, rows: Rows, flux: np.ndarray) -> None:
        if flux.shape[1] != self.preprocessing.grid.n:
            raise InputError(None, f"spectra have {flux.shape[1]} pixels; the model takes {self.preprocessing.grid.n} "
                                   "(the paper's grid): prepare them with astrocnn.spectra.preprocess")
        n = flux.shape[0]
        a = self.answers(flux, np.full(n, np.inf), np.ones(n))
        rows.add({**a, "id": [str(i) for i in range(n)], "source": ["array"] * n, "snr": [np.nan] * n,
                  "coverage": [np.nan] * n, "error": [""] * n})

    def _add_batch(self, rows: Rows, batch: list[FileResult], on_error: str) -> None:
        good = [r for r in batch if r.prepared is not None]
        if on_error == "fail" and len(good) < len(batch):
            bad = next(r for r in batch if r.prepared is None)
            raise InputError(bad.source, bad.error)
        a = None
        if good:
            snr = np.array([r.prepared.snr for r in good])
            coverage = np.array([r.prepared.coverage for r in good])
            a = self.answers(np.stack([r.prepared.flux for r in good]), snr, coverage)
            a.update(snr=snr, coverage=coverage)
        k = 0
        for r in batch:
            if r.prepared is None:
                rows.add_error(Path(r.source).name if r.id == r.source else r.id, r.source, r.error)
                continue
            rows.add({**{c: [a[c][k]] for c in COLUMNS if c in a}, "id": [r.id], "source": [r.source], "error": [""]})
            k += 1


def torch_components(info: ModelInfo) -> dict[str, Component]:
    """The model's networks in PyTorch (weights loaded without unpickling anything)."""
    from astrocnn.train.inference import network_outputs  # torch: only for this runtime
    from astrocnn.train.runs import load_run

    class TorchComponent:
        def __init__(self, path: Path):
            self.network, _, config = load_run(path)
            self.config = config.to_dict()

        def outputs(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
            return network_outputs(self.network, x, 256)

    return {role: TorchComponent(info.component(role)) for role in info.manifest["components"]}


def format_rows(table) -> tuple[list[str], list[list[str]]]:
    """A predictions table as CSV rows (fixed decimals; empty cells for NaN)."""
    def num(v: float, fmt: str) -> str:
        return "" if v is None or not np.isfinite(v) else format(v, fmt)

    formats: dict[str, Callable[[Any], str]] = {
        **{c: (lambda v: num(float(v), ".4f")) for c in ("p_qso", "p_galaxy", "p_star", "z_conf")},
        "z": lambda v: num(float(v), ".5f"), "z_err": lambda v: num(float(v), ".5f"),
        "snr": lambda v: num(float(v), ".2f"), "coverage": lambda v: num(float(v), ".3f"),
        "zwarn": lambda v: str(int(v)),
    }
    out = [[formats.get(c, str)(row[c]) for c in COLUMNS] for row in table]
    return list(COLUMNS), out

