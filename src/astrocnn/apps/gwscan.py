"""Apply a trained detection run (task ``detect``) to raw strain: GWOSC segments and G2Net folders.

Applications layer: the trainer's inference (:mod:`astrocnn.train`) on the gravitational-wave domain's
readers and whitening (:mod:`astrocnn.gw`).

    from astrocnn.apps.gwscan import predict_gwosc, predict_g2net_dir

    out = predict_gwosc("runs/detect", ["H-H1_LOSC_4_V2-1126259446-32.hdf5", "L-L1_LOSC_4_V2-1126259446-32.hdf5"])
    out["gps_centre"], out["score"]          # one score per 2-s window, 0.25 s apart
    out = predict_g2net_dir("runs/detect", "g2net/")   # id, score, logit (and target where labelled)
    out["psd"]                                # which noise PSD whitened them

Which PSD whitens the data (``psd``): by default (``"data"``) one estimated from the data being scored, with
no label read, as a matched filter does: G2Net-layout samples (:func:`predict_g2net_dir`) are whitened with
the median PSD of their folder (:func:`~astrocnn.gw.psd.folder_psd`, at least 64 samples), real strain
(:func:`predict_gwosc`) as a whole segment with its own running median Welch PSD
(:func:`~astrocnn.gw.whitening.whiten_running`), resampled to the run's rate and only then cut into windows
of the training length. ``"training"`` whitens with the run's stored training PSD instead, exactly as
:func:`~astrocnn.gw.prepare.prepare_g2net` prepared the training set (right for noise like the training
noise, wrong for any other). Either way the run's window, band-pass and normalisation are used, and every
result says in ``psd`` which PSD it was.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from astrocnn.core.errors import InputError
from astrocnn.core.roc import bootstrap_auc
from astrocnn.gw.events import segments_with_events
from astrocnn.gw.psd import data_whitener
from astrocnn.gw.readers import gwosc_network, load_g2net_samples, read_g2net
from astrocnn.gw.whitening import RUNNING_SPAN_S, GwPreprocess, Normalize, sliding_windows, tukey, whiten_running
from astrocnn.train import load_input_transform, load_run, run_network

log = logging.getLogger(__name__)


def _load(run, loaded):
    network, task, config = loaded if loaded is not None else load_run(run)
    if task.name != "detect" or config.input.get("kind") != "strain":
        raise InputError(run, f"a '{task.name}' run; scoring strain needs a 'detect' run trained on a strain set")
    return network, task, config


PSD_CHOICES = ("data", "training")


def _check_psd(psd: str) -> None:
    if psd not in PSD_CHOICES:
        raise ValueError(f"psd must be one of {PSD_CHOICES}, got {psd!r}")


def _training_psd(config) -> str:
    where = config.input.get("whitening_fit") or "the run's stored PSD"
    return f"training: {where}"


def _scores(network, task, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    out = run_network(network, task, np.ascontiguousarray(x, dtype=np.float32), batch_size)
    if not out:
        return {"score": np.zeros(0, np.float32), "logit": np.zeros(0, np.float32)}
    return out


def _windows(run, loaded, strain: np.ndarray, gps_start: float, n: int, rate: float, step_s: float, psd: str,
             fftlength: float, span_s: float, taper_s: float) -> tuple[np.ndarray, np.ndarray, str]:
    """The network inputs of every window of a segment, their GPS centres and which PSD whitened them."""
    _, _, config = loaded
    pre = config.input.get("preprocessing") or {}
    wcfg = pre.get("whitener") or {}
    if psd == "training":
        windows, centres = sliding_windows(strain, gps_start, rate, window_s=n / rate, step_s=step_s)
        module = load_input_transform(run, loaded)
        with torch.no_grad():
            x = np.concatenate([module(torch.as_tensor(windows[lo: lo + 256])).numpy()
                                for lo in range(0, len(windows), 256)]) if len(windows) else windows
        return x, centres, _training_psd(config)
    band = wcfg.get("band", (20.0, 500.0))
    band = None if band is None else (float(band[0]), float(band[1]))
    white, how = whiten_running(strain, rate, fftlength=fftlength, span_s=span_s, band=band,
                                order=int(wcfg.get("order", 4)), taper_s=taper_s)
    windows, centres = sliding_windows(white, gps_start, rate, window_s=n / rate, step_s=step_s)
    # the run's own window over the data (none for padded whiteners; Tukey for those stored before padding)
    x = windows * tukey(n, float(wcfg.get("alpha", 0.2)))[None, None, :]
    with torch.no_grad():
        x = Normalize(pre.get("normalize", "channel"))(torch.as_tensor(x)).numpy()
    return x, centres, how


def scan_strain(
    run: str | os.PathLike,
    strain: np.ndarray,
    gps_start: float,
    *,
    sample_rate: float = 2048.0,
    step_s: float = 0.25,
    psd: str = "data",
    fftlength: float = 4.0,
    span_s: float = RUNNING_SPAN_S,
    taper_s: float = 1.0,
    batch_size: int = 256,
    loaded: tuple | None = None,
) -> dict[str, np.ndarray]:
    """Score a continuous multi-detector segment ``strain`` (C, N) at the run's sample rate in sliding windows.

    What :func:`predict_gwosc` does once the files are read (see it for ``psd`` and the other arguments);
    ``valid`` here only says the window lies clear of the segment's end tapers.
    """
    _check_psd(psd)
    loaded = _load(run, loaded)
    network, task, config = loaded
    rate = float(config.input.get("sample_rate", 2048.0))
    if abs(rate - float(sample_rate)) > 1e-9:
        raise ValueError(f"strain at {sample_rate} Hz; the run takes {rate} Hz (resample first)")
    n = int(config.input["length"])
    strain = np.asarray(strain, dtype=np.float64)
    if strain.ndim != 2 or strain.shape[0] != config.model.in_channels or strain.shape[1] < n:
        raise ValueError(f"strain must be ({config.model.in_channels}, >= {n}), got {strain.shape}")
    x, centres, how = _windows(run, loaded, strain, gps_start, n, rate, step_s, psd, fftlength, span_s, taper_s)
    out = _scores(network, task, x, batch_size)
    starts = np.round((centres - gps_start) * rate - n / 2).astype(np.int64)
    edge = taper_s * rate
    valid = (starts >= edge) & (starts + n <= strain.shape[1] - edge)
    return {"gps_centre": np.asarray(centres, dtype=np.float64), "score": out["score"], "logit": out["logit"],
            "valid": valid, "psd": np.full(len(centres), how, dtype=object)}


def predict_gwosc(
    run: str | os.PathLike,
    paths: Sequence[str | os.PathLike],
    step_s: float = 0.25,
    *,
    psd: str = "data",
    fftlength: float = 4.0,
    span_s: float = RUNNING_SPAN_S,
    taper_s: float = 1.0,
    missing: str = "noise",
    seed: int = 0,
    require: Sequence[str] = ("DATA",),
    batch_size: int = 256,
    loaded: tuple | None = None,
) -> dict[str, np.ndarray]:
    """Score a GWOSC segment (one file per detector) in sliding windows with a ``detect`` run.

    paths : GWOSC HDF5 files, one per detector, combined by :func:`~astrocnn.gw.readers.gwosc_network`
        (a missing detector is filled per ``missing``/``seed``; DQ-failed seconds per ``require`` are zeroed).
    step_s : seconds between window starts; the window is the run's input length (2 s).
    psd : ``"data"`` (default): the segment whitened with its own running median Welch PSD
        (:func:`~astrocnn.gw.whitening.whiten_running`: ``fftlength``-s FFTs over the ``span_s`` s around
        each stretch, Tukey taper of ``taper_s`` at the segment's ends), then cut; ``"training"``: windows
        of raw strain through the run's stored whitener (its training PSD).
    loaded : a :func:`~astrocnn.train.load_run` result to reuse.

    Returns arrays, one entry per window in time order: ``gps_centre`` (GPS time of the window's centre),
    ``score`` (sigmoid of the logit), ``logit``, ``valid`` (every real detector's samples in the window
    pass the DQ requirement and the window lies clear of the segment's end tapers) and ``psd`` (which PSD).
    """
    _check_psd(psd)
    loaded = _load(run, loaded)
    config = loaded[2]
    rate = float(config.input.get("sample_rate", 2048.0))
    n = int(config.input["length"])
    net = gwosc_network(list(paths), sample_rate=rate, missing=missing, seed=seed, require=require)
    if net.strain.shape[0] != config.model.in_channels:
        raise InputError(paths[0], f"{net.strain.shape[0]} detectors; the model takes {config.model.in_channels}")
    if net.strain.shape[1] < n:
        raise InputError(paths[0], f"{net.duration:.2f} s of shared data; the model needs windows of {n / rate:g} s")
    out = scan_strain(run, net.strain, net.gps_start, sample_rate=rate, step_s=step_s, psd=psd, fftlength=fftlength,
                      span_s=span_s, taper_s=taper_s, batch_size=batch_size, loaded=loaded)
    # validity: DQ of the real detectors over the window, as well as clear of the whitening tapers
    real = np.flatnonzero(net.available)
    good = net.valid[real].all(axis=0) if real.size else np.ones(net.strain.shape[1], bool)
    bad_cum = np.r_[0, np.cumsum(~good)]
    starts = np.round((out["gps_centre"] - net.gps_start) * rate - n / 2).astype(np.int64)
    out["valid"] &= (bad_cum[starts + n] - bad_cum[starts]) == 0
    log.info("%d windows of %g s over %.1f s from GPS %.3f; max score %.4g (%s)", len(starts), n / rate,
             net.duration, net.gps_start, float(out["score"].max()) if len(starts) else float("nan"), out["psd"][0])
    return out


def predict_g2net_dir(
    run: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    split: str | None = None,
    batch_size: int = 256,
    workers: int = 4,
    loaded: tuple | None = None,
    on_error: str = "fail",
    psd: str = "data",
) -> dict[str, np.ndarray]:
    """Score every sample of a raw G2Net-layout folder with a ``detect`` run.

    Samples are whitened, band-passed and normalised as the training set was, with the noise PSD ``psd``:
    ``"data"`` (default) the label-free median PSD of this folder's own samples
    (:func:`~astrocnn.gw.psd.folder_psd`; a folder of fewer than 64 readable samples raises
    :class:`InputError`), ``"training"`` the run's stored training PSD. Returns ``id``, ``path``, ``score``,
    ``logit``, ``target`` (-1 where unlabelled), ``snr`` (NaN where unknown), ``psd`` (which PSD) and
    ``error`` (empty, or why the sample could not be used), sorted by id.
    on_error : ``"fail"`` (default) raises :class:`InputError` at the first unreadable sample; ``"skip"``
        gives it NaN scores and its reason in ``error``, and scores the rest.
    """
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    _check_psd(psd)
    network, task, config = _load(run, loaded)
    module = load_input_transform(run, (network, task, config))
    index = read_g2net(directory, split=split)
    how = _training_psd(config)
    if psd == "data":
        whitener, est = data_whitener(index, module.whitener, workers=max(1, int(workers)), on_error=on_error)
        module, how = GwPreprocess(whitener, module.normalize.mode), est.describe()
    n = int(config.input["length"])
    score = np.full(len(index), np.nan, np.float32)
    logit = np.full(len(index), np.nan, np.float32)
    error = np.full(len(index), "", dtype=object)
    for lo in range(0, len(index), batch_size):
        raw, good, bad = load_g2net_samples(index.paths[lo:lo + batch_size], max(1, int(workers)), on_error)
        for i, problem in bad:
            error[lo + i] = problem
        if not good:
            continue
        if raw.shape[1:] != (config.model.in_channels, n):
            raise InputError(index.paths[lo], f"samples of shape {raw.shape[1:]}; the model takes "
                                              f"({config.model.in_channels}, {n})")
        with torch.no_grad():
            x = module(torch.as_tensor(raw)).numpy()
        out = _scores(network, task, x, batch_size)
        sel = lo + np.asarray(good)
        score[sel] = out["score"]
        logit[sel] = out["logit"]
    n_bad = int((error != "").sum())
    log.info("%s: scored %d samples%s", directory, len(index) - n_bad, f", {n_bad} could not be read" if n_bad else "")
    return {"id": np.asarray(index.ids, dtype=object), "path": np.array([str(p) for p in index.paths], dtype=object),
            "score": score, "logit": logit, "target": np.asarray(index.target),
            "snr": np.asarray(index.snr, dtype=np.float64), "psd": np.full(len(index), how, dtype=object),
            "error": error}


HOLD_TOLERANCE_S = 0.25  # the top window "holds the merger" when it places it this close to the true time


def locate_event(scan: dict[str, np.ndarray], gps_event: float, window_s: float = 2.0,
                 merger_offset_s: float = 0.7, tolerance_s: float = HOLD_TOLERANCE_S) -> dict:
    """Where a known merger at ``gps_event`` ranks in a scan (:func:`scan_strain`, :func:`predict_gwosc`).

    The window "at the merger position the training samples had" is the one whose centre lies
    ``merger_offset_s`` before the merger (1.7 s into a 2-s window, the middle of the simulator's 1.5-1.9 s).
    Returns ``n_windows`` (valid ones), ``top_window_gps``, ``top_score``, ``top_minus_event_s``,
    ``top_merger_gps`` (where the top window places the merger: its centre + ``merger_offset_s``),
    ``holds_merger`` (that lies within ``tolerance_s`` of the event), ``event_in_top_window`` (the merger lies
    anywhere in the top window), ``event_window_gps``, ``event_score``, ``event_rank`` (1 = the highest score
    of the valid windows), ``median_score`` and ``psd``.
    """
    centres, scores = scan["gps_centre"][scan["valid"]], scan["score"][scan["valid"]]
    if centres.size == 0:
        raise ValueError("no valid window (data-quality gaps or too short a segment)")
    top = int(np.argmax(scores))
    ev = int(np.argmin(np.abs(centres - (gps_event - merger_offset_s))))
    top_merger = float(centres[top] + merger_offset_s)
    return {
        "n_windows": int(centres.size), "top_window_gps": float(centres[top]), "top_score": float(scores[top]),
        "top_minus_event_s": float(centres[top] - gps_event), "top_merger_gps": top_merger,
        "holds_merger": bool(abs(top_merger - gps_event) <= tolerance_s),
        "event_in_top_window": bool(abs(centres[top] - gps_event) < window_s / 2),
        "event_window_gps": float(centres[ev]), "event_score": float(scores[ev]),
        "event_rank": int((scores > scores[ev]).sum()) + 1, "median_score": float(np.median(scores)),
        "psd": str(scan["psd"][0]),
    }


def event_report(run: str | os.PathLike, paths: Sequence[str | os.PathLike], gps_event: float, *,
                 step_s: float = 0.25, merger_offset_s: float = 0.7, loaded: tuple | None = None,
                 psd: str = "data", return_scan: bool = False) -> dict:
    """Score a GWOSC segment with :func:`predict_gwosc` and say where its known event ranks
    (:func:`locate_event`); with ``return_scan`` the scan itself too, under ``scan``."""
    loaded = _load(run, loaded)
    out = predict_gwosc(run, paths, step_s=step_s, loaded=loaded, psd=psd)
    config = loaded[2]
    window_s = int(config.input["length"]) / float(config.input.get("sample_rate", 2048.0))
    try:
        report = locate_event(out, gps_event, window_s, merger_offset_s)
    except ValueError as e:
        raise InputError(paths[0], str(e)) from None
    if return_scan:
        report["scan"] = out
    return report


def simulated_events(run: str | os.PathLike, n_events: int = 20, seed: int = 0, *,
                     snr_range: tuple[float, float] = (8.0, 20.0), duration_s: float = 64.0,
                     step_s: float = 0.25, psd: str = "data", loaded: tuple | None = None) -> dict:
    """The event method (:func:`locate_event` over a :func:`scan_strain` scan) on simulated segments with a
    known merger, before it is trusted on real files.

    Each of ``n_events`` segments is ``duration_s`` of design-curve noise in H1, L1 and V1 with one signal of
    the simulator's population (IMRPhenomPv2) whose network optimal SNR is uniform in ``snr_range`` and whose
    merger is uniform in the middle third of the segment; segment ``i`` depends only on (``seed``, ``i``).
    Returns ``events`` (per segment: the SNR, the merger's GPS time and :func:`locate_event`'s answer) and
    ``share_holding`` (the share whose top window holds the merger), ``median_rank`` and ``top1_share``.
    """
    from astrocnn.gw import simulate as sim

    loaded = _load(run, loaded)
    rate = sim.SAMPLE_RATE
    n = int(round(duration_s * rate))
    weights_psd = sim.network_psd(n, rate)
    config = loaded[2]
    window_s = int(config.input["length"]) / float(config.input.get("sample_rate", 2048.0))
    events = []
    for i in range(n_events):
        rng = np.random.default_rng([seed, i, 7])
        params = sim.draw_parameters(rng)
        params.t_merger = float(rng.uniform(duration_s / 3, 2 * duration_s / 3))
        signal = sim.detector_signals(params, "IMRPhenomPv2", n_samples=n)
        snr = float(rng.uniform(*snr_range))
        signal *= snr / float(np.sqrt(np.sum(sim.optimal_snr(signal, psd=weights_psd) ** 2)))
        strain = sim.simulate_noise(rng, n=n) + signal
        gps_start = float(sim.GPS_REFERENCE)
        scan = scan_strain(run, strain, gps_start, sample_rate=rate, step_s=step_s, psd=psd, loaded=loaded)
        found = locate_event(scan, gps_start + params.t_merger, window_s)
        events.append({"snr": snr, "gps_merger": gps_start + params.t_merger, "chirp_mass": params.chirp_mass,
                       **found})
    ranks = np.array([e["event_rank"] for e in events])
    return {"n_events": n_events, "seed": seed, "snr_range": list(snr_range), "duration_s": duration_s,
            "share_holding": float(np.mean([e["holds_merger"] for e in events])) if events else float("nan"),
            "median_rank": float(np.median(ranks)) if events else float("nan"),
            "top1_share": float(np.mean(ranks == 1)) if events else float("nan"), "events": events}


def real_data_report(run: str | os.PathLike, g2net_dir: str | os.PathLike | None = None,
                     gwosc_dir: str | os.PathLike | None = None, *, step_s: float = 0.25, n_boot: int = 1000,
                     loaded: tuple | None = None, psd: str = "data") -> dict:
    """A detection run on real data as it comes: labelled G2Net samples and GWOSC event files.

    ``psd``: which noise PSD whitens the data (:func:`predict_g2net_dir`, :func:`predict_gwosc`).
    Returns ``g2net`` (``n``, ``n_signal``, ``roc_auc`` with its bootstrap ``roc_auc_low``/``roc_auc_high``,
    ``psd``, ``median_noise_score`` (of the noise-only samples)
    and per-sample ``scores`` {id: [target, score]}; None without both classes or folder) and ``gwosc``
    ({event name: :func:`event_report` plus ``files`` and ``gps_event``} for every group of files sharing
    a GPS span that holds an event of :data:`~astrocnn.gw.events.KNOWN_EVENTS`).
    """
    loaded = _load(run, loaded)
    report: dict = {"g2net": None, "gwosc": {}}
    if g2net_dir is not None and Path(g2net_dir).is_dir():
        g2 = predict_g2net_dir(run, g2net_dir, loaded=loaded, psd=psd)
        y = np.asarray(g2["target"])
        if (y == 1).any() and (y == 0).any():
            b = bootstrap_auc(y, g2["score"], n_boot=n_boot)
            report["g2net"] = {"n": int(y.size), "n_signal": int((y == 1).sum()), "roc_auc": b["auc"],
                               "roc_auc_low": b["low"], "roc_auc_high": b["high"], "psd": str(g2["psd"][0]),
                               "median_noise_score": float(np.median(g2["score"][y == 0])),
                               "scores": {str(i): [int(t), round(float(s), 4)]
                                          for i, t, s in zip(g2["id"], y, g2["score"])}}
    if gwosc_dir is not None and Path(gwosc_dir).is_dir():
        for name, (t_event, paths) in segments_with_events(Path(gwosc_dir).glob("*.hdf5")).items():
            report["gwosc"][name] = {"files": [p.name for p in paths], "gps_event": t_event,
                                     **event_report(run, paths, t_event, step_s=step_s, loaded=loaded, psd=psd)}
    return report
