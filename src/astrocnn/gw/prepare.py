"""From a G2Net-layout folder to a prepared strain set: fit the whitening spectrum, whiten, band-pass, store.

Gravitational-wave domain: the reader (:mod:`~astrocnn.gw.readers`), the whitener
(:mod:`~astrocnn.gw.whitening`) and the prepared-set format (:mod:`~astrocnn.gw.dataset`) put together, on the
core's re-runnable parts (:mod:`astrocnn.core.parts`), as :mod:`astrocnn.spectra.prepare` does for spectra.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from astrocnn.core.errors import InputError
from astrocnn.core.parts import (DEFAULT_PART_SIZE, FINGERPRINT_ATTR, PrepareReport, Parts, canonical, file_signature,
                                 fingerprint, rejects_path)
from astrocnn.gw.dataset import FORMAT_VERSION, StrainSet, StrainWriter
from astrocnn.gw.psd import MAX_SAMPLES, data_whitener
from astrocnn.gw.readers import G2NetIndex, load_g2net_samples, read_g2net
from astrocnn.gw.whitening import PAD_S, GwPreprocess, Whitener
from astrocnn.version import __version__

log = logging.getLogger(__name__)


def fit_whitener(index: G2NetIndex, *, alpha: float = 0.0, band: tuple[float, float] | None = (20.0, 500.0),
                 order: int = 4, pad: float = PAD_S, max_samples: int | None = None, batch_size: int = 512,
                 workers: int = 1, on_error: str = "fail") -> Whitener:
    """Fit a :class:`Whitener` on the noise-only (target 0) samples of an indexed G2Net folder.

    ``on_error="skip"`` leaves unreadable samples out of the fit (``"fail"``: the first one raises)."""
    noise = np.nonzero(index.target == 0)[0]
    if max_samples is not None:
        noise = noise[:max_samples]
    if noise.size == 0:
        raise InputError(index.root, "no noise-only (target 0) samples to fit the whitening PSD on; "
                         "pass the training set's whitener")
    w = Whitener(alpha=alpha, band=band, order=order, pad=pad)
    n_bad = 0
    for lo in range(0, noise.size, batch_size):
        rows, _, bad = load_g2net_samples([index.paths[i] for i in noise[lo: lo + batch_size]], workers, on_error)
        n_bad += len(bad)
        w.partial_fit(rows)
    if not w.fitted:
        raise InputError(index.root, "none of the noise-only (target 0) samples could be read to fit the whitening PSD")
    log.info("%s: whitening PSD fitted on %d noise-only samples%s", index.root, int(w.n_fit),
             f" ({n_bad} unreadable ones left out)" if n_bad else "")
    return w


def _part_key(index: G2NetIndex, lo: int, hi: int, truth_cols: Sequence[str]) -> str:
    return fingerprint([[file_signature(index.paths[i]), str(index.ids[i]), int(index.target[i]),
                         float(index.snr[i]), [str(index.truth[c][i]) for c in truth_cols]] for i in range(lo, hi)])


def _given_whitener(whitener: Whitener | str | os.PathLike, normalize: str) -> tuple[Whitener, Any, str, str]:
    """A whitener passed in (fitted, or a prepared training set's): ``(whitener, settings, source, normalize)``."""
    if isinstance(whitener, Whitener):
        if not whitener.fitted:
            raise RuntimeError("the Whitener passed to prepare_g2net is not fitted")
        settings = {"given": whitener.config(), "n_fit": int(whitener.n_fit),
                    "psd": hashlib.sha256(whitener.psd.numpy().tobytes()).hexdigest()}
        return whitener, settings, "given Whitener", normalize
    ref_path = Path(whitener)
    with StrainSet(ref_path) as ref:
        return (ref.whitener(), {"from": file_signature(ref_path)},
                f"{ref.attrs.get('whitening_fit', '')} (via {ref_path})", ref.preprocessing.get("normalize", normalize))


def _fitted_here(job: Parts, index: G2NetIndex, out: Path, fit: dict, workers: int, on_error: str
                 ) -> tuple[Whitener, str]:
    """The whitener fitted on this folder (its noise-only samples, or all of them without labels) and where
    its PSD came from; or the one an interrupted run fitted and kept."""
    kept = job.load_arrays("whitener")
    if kept is not None:
        whitener = Whitener.from_state(json.loads(str(kept["config"])), kept["psd"], int(kept["n_fit"]))
        log.info("%s: whitening PSD taken from the interrupted run (%d samples)", out, int(whitener.n_fit))
        return whitener, str(kept["source"])
    settings = dict(alpha=fit["alpha"], band=fit["band"], order=fit["order"], pad=fit["pad"])
    if fit["psd"] == "data":
        whitener, est = data_whitener(index, Whitener(**settings), max_samples=fit["fit_max"] or MAX_SAMPLES,
                                      workers=workers, on_error=on_error)
        source = est.describe()
    else:
        whitener = fit_whitener(index, **settings, max_samples=fit["fit_max"], workers=workers, on_error=on_error)
        source = f"noise-only samples of {index.root}"
    job.save_arrays("whitener", {"psd": whitener.psd.numpy(), "n_fit": np.array(int(whitener.n_fit)),
                                 "config": np.array(json.dumps(whitener.config())), "source": np.array(source)})
    return whitener, source


def _prepare_part(index: G2NetIndex, lo: int, hi: int, module: GwPreprocess, truth_cols: Sequence[str],
                  batch_size: int, workers: int, on_error: str) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Samples ``lo:hi`` of the folder whitened: the part's columns and its rejected samples."""
    strain, ids, target, snr, truth, rejected = [], [], [], [], {c: [] for c in truth_cols}, []
    for b_lo in range(lo, hi, batch_size):
        b_hi = min(hi, b_lo + batch_size)
        raw, good, bad = load_g2net_samples(index.paths[b_lo:b_hi], workers, on_error)
        rejected += [(str(index.paths[b_lo + j]), problem) for j, problem in bad]
        if not good:
            continue
        with torch.no_grad():
            strain.append(module(torch.as_tensor(raw)).numpy().astype(np.float32))
        sel = np.asarray(good) + b_lo
        ids += [str(x) for x in index.ids[sel]]
        target.append(index.target[sel])
        snr.append(index.snr[sel])
        for c in truth_cols:
            truth[c] += [str(x) for x in index.truth[c][sel]]
        log.info("prepared %d/%d samples", b_hi, len(index))
    w = module.whitener
    columns = {
        "strain": np.concatenate(strain) if strain else np.zeros((0, w.n_detectors, w.n_samples), np.float32),
        "id": np.array(ids, dtype=object),
        "target": np.concatenate(target).astype(np.int8) if target else np.zeros(0, np.int8),
        "snr": np.concatenate(snr).astype(np.float32) if snr else np.zeros(0, np.float32),
        **{f"truth/{c}": np.array(v, dtype=object) for c, v in truth.items()},
    }
    return columns, rejected


def _merge(job: Parts, report: PrepareReport, index: G2NetIndex, module: GwPreprocess, source: str, source_fit: str,
           truth_cols: Sequence[str]) -> None:
    """Every part done: write them into the output in order, with the whitening spectrum, then the rejects."""
    kept = sum(job.rows(i) for i in range(job.n))
    report.rejected = job.rejected()
    if kept == 0:
        job.discard()
        raise InputError(index.root, f"none of the {len(index)} samples could be used "
                                     f"(first: {report.rejected[0][0]}: {report.rejected[0][1]})")
    w = module.whitener
    with StrainWriter(report.out, sample_rate=w.sample_rate, n_samples=w.n_samples, preprocessing=module.config(),
                      whitening_psd=w.psd.numpy(), whitening_fit=source_fit, whitening_n_fit=int(w.n_fit),
                      source=source, truth_columns={c: ("U" if c == "approximant" else "f") for c in truth_cols},
                      attrs={FINGERPRINT_ATTR: job.key, "snr_column": index.snr_column},
                      expected_rows=kept) as writer:
        for i in range(job.n):
            cols, _ = job.read(i)
            if len(cols["id"]):
                writer.append(cols["strain"], list(cols["id"]), cols["target"], cols["snr"],
                              {c: list(cols[f"truth/{c}"]) for c in truth_cols})
        report.kept = len(writer)
    report.write_rejects()
    job.complete()


def _checked(directory, whitener, on_error: str, psd: str, part_size: int | None) -> int:
    """prepare_g2net's choices checked; the part size to use."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if psd not in ("noise", "data"):
        raise ValueError(f"psd must be 'noise' or 'data', got {psd!r}")
    if whitener is not None and psd != "noise":
        raise InputError(directory, "give either a whitener to use or psd='data' to estimate one here, not both")
    part_size = DEFAULT_PART_SIZE if part_size is None else int(part_size)
    if part_size < 1:
        raise ValueError(f"part_size must be at least 1, got {part_size}")
    return part_size


def prepare_g2net(
    directory: str | os.PathLike,
    out: str | os.PathLike,
    whitener: Whitener | str | os.PathLike | None = None,
    workers: int | None = None,
    *,
    normalize: str = "channel",
    alpha: float = 0.0,
    band: tuple[float, float] | None = (20.0, 500.0),
    order: int = 4,
    pad: float = PAD_S,
    fit_max: int | None = None,
    batch_size: int = 256,
    split: str | None = None,
    on_error: str = "fail",
    force: bool = False,
    part_size: int | None = None,
    psd: str = "noise",
) -> Path:
    """Whiten, band-pass and normalise every sample of a G2Net-layout folder into a prepared set at ``out``.

    ``whitener``: None fits one on ``directory`` itself: with ``psd="noise"`` (default) the average PSD of its
    noise-only samples (a TRAINING set; at most ``fit_max``), with ``psd="data"`` the label-free median PSD
    of all its samples (:func:`~astrocnn.gw.psd.folder_psd`; any set, evaluation sets included, since no
    label is read). Otherwise pass the training set's :class:`Whitener` or its prepared file, so the
    evaluation labels never shape the preprocessing. ``workers`` threads read the .npy files (default 4).
    ``on_error``: ``"fail"`` (default) raises :class:`InputError` at the first unreadable sample and writes
    nothing; ``"skip"`` leaves such samples out and lists them with their reason in ``<out stem>.rejects.csv``.

    Re-runnable like :func:`~astrocnn.spectra.prepare.prepare_sdss` (:mod:`astrocnn.core.parts`): samples are
    prepared in parts of ``part_size`` (default 2048) kept in ``<out>.parts/`` with the fitted whitener, so
    an interrupted run started again skips what was done and writes the same file as an uninterrupted
    run; an up-to-date ``out`` is left alone unless ``force``. Returns ``out``.
    """
    part_size = _checked(directory, whitener, on_error, psd, part_size)
    out = Path(out)
    index = read_g2net(directory, split=split)
    n_threads = 4 if workers is None else max(1, int(workers))
    fit = None
    if whitener is None:
        fit = {"alpha": alpha, "band": band, "order": order, "pad": pad, "fit_max": fit_max, "psd": psd}
        whitener_settings: Any = {"fit": fit}
        source_fit = ""
    else:
        whitener, whitener_settings, source_fit, normalize = _given_whitener(whitener, normalize)
    truth_cols = [c for c in index.truth if c not in ("target", index.snr_column)]
    bounds = [(lo, min(len(index), lo + part_size)) for lo in range(0, len(index), part_size)]
    try:
        part_keys = [_part_key(index, lo, hi, truth_cols) for lo, hi in bounds]
    except OSError as exc:
        raise InputError(getattr(exc, "filename", None), f"cannot read ({exc.strerror or exc})") from exc
    settings = canonical({
        "job": "prepare g2net", "directory": str(directory), "split": split, "whitener": whitener_settings,
        "normalize": normalize, "batch_size": batch_size, "on_error": on_error, "part_size": part_size,
        "truth_columns": truth_cols, "format_version": FORMAT_VERSION, "astrocnn_version": __version__,
        "torch": torch.__version__,
    })
    report = PrepareReport(out=out, rejects_csv=rejects_path(out), unit="samples")
    with Parts(out, settings, part_keys, part_sizes=[hi - lo for lo, hi in bounds], what="samples", force=force,
               siblings=[report.rejects_csv]) as job:
        if job.up_to_date:
            if job.all_done:
                report.rejected = job.rejected()
                report.write_rejects()
            log.info("%s is up to date with its inputs and settings: nothing to do (--force prepares it again)", out)
            job.complete()
            return out
        if fit is not None:
            whitener, source_fit = _fitted_here(job, index, out, fit, n_threads, on_error)
        module = GwPreprocess(whitener, normalize)
        for i in job.todo:
            job.write(i, *_prepare_part(index, *bounds[i], module, truth_cols, batch_size, n_threads, on_error))
        _merge(job, report, index, module, str(directory), source_fit, truth_cols)
    if report.rejected:
        log.warning("%s: %d of %d samples could not be used (reasons in %s)", out, len(report.rejected),
                    len(index), report.rejects_csv)
    return out
