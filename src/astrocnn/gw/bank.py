"""Template banks measured and grown: how well a bank fits a population of signals, and stochastic placement
of new templates until it fits better.

Gravitational-wave domain, on top of :mod:`~astrocnn.gw.matched_filter` (the search and its templates) and
:mod:`~astrocnn.gw.simulate` (the population).

* The **fitting factor** of a signal against a bank (:func:`fitting_factors`) is the network SNR the coincident
  search (:class:`~astrocnn.gw.matched_filter.CoincidentSearch`, what ``astrocnn baseline gw`` ranks with)
  recovers from the noiseless signal as it lies in the 2-s window, divided by the signal's optimal SNR under
  the same noise weighting, band and data taper (:meth:`CoincidentSearch.optimal_snr`): 1 when a template
  matches exactly (time, phase and amplitude free per detector), and a fraction FF of the SNR otherwise, so a
  search with it sees a fraction ~FF^3 of the volume a perfect bank would.
* **Stochastic placement** (:func:`grow_bank`; Babak 2008, Harry, Allen & Sathyaprakash 2009): draw
  candidates from the aligned-spin population (masses uniform in 5-100 Msun, aligned spins uniform in
  +-0.99, the simulator's IMRPhenomD prior), and keep a candidate when its match with every template already
  in the bank is below ``min_match``. The match of two templates is their noise-weighted overlap maximised
  over time and phase (one detector, the H1 design PSD, 20-1000 Hz): the normalised modulus of the
  positive-frequency correlation. Only templates whose chirp mass is within ``exp(+-mc_window)`` of the
  candidate's are compared: a far template that matched would only make the bank denser, never sparser.

Banks are stored as CSV rows (mass1, mass2, spin1z, spin2z) (:func:`write_bank`, :func:`read_bank`); the
waveforms are regenerated from them. ``DENSE_BANK`` is the one grown by ``scripts/gw_bank.py`` and shipped.
"""
from __future__ import annotations

import collections
import csv
import logging
import math
import os
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path
from astrocnn.gw.matched_filter import BUFFER_S, CoincidentSearch, TemplateBank, make_template_bank, template_waveform
from astrocnn.gw.simulate import SAMPLE_RATE, detector_signals, draw_parameters, network_psd

log = logging.getLogger(__name__)

BANK_COLUMNS = ("mass1", "mass2", "spin1z", "spin2z")
DENSE_BANK = "dense"  # the name of the shipped bank: astrocnn/gw/banks/dense.csv


def population_signals(n: int, seed: int, approximant: str = "IMRPhenomPv2") -> tuple[np.ndarray, list]:
    """``n`` noiseless signals drawn from the simulator's population as they lie in the 2-s window:
    ((n, 3, 4096) strain at 100 Mpc, their :class:`~astrocnn.gw.simulate.SourceParameters`). Signal ``i``
    depends only on (``seed``, ``i``). ``approximant`` "IMRPhenomD" gives the aligned-spin population."""
    params = [draw_parameters(np.random.default_rng([seed, i]), approximant) for i in range(n)]
    if not params:
        return np.zeros((0, 3, 4096)), params
    return np.stack([detector_signals(p, approximant) for p in params]), params


def fitting_factors(signals: np.ndarray, bank: TemplateBank, psd: np.ndarray | None = None,
                    batch_size: int = 2) -> np.ndarray:
    """The bank's fitting factor for each noiseless signal (N, 3, 4096): (N,) in [0, 1] (see the module
    docstring). ``psd`` (3, 2049) defaults to the simulator's design PSDs."""
    search = CoincidentSearch(network_psd() if psd is None else psd, bank)
    signals = np.asarray(signals, dtype=np.float64)
    score = search.scores(signals, batch_size=batch_size)
    optimal = np.sqrt(np.sum(search.optimal_snr(signals) ** 2, axis=-1))
    return score / np.maximum(optimal, 1e-300)


def summarize(ff: np.ndarray) -> dict:
    """Percentiles of a fitting-factor distribution and the share at or above 0.97 / 0.95 / 0.9."""
    ff = np.asarray(ff, dtype=np.float64)
    q = np.percentile(ff, [1, 5, 10, 50]) if ff.size else [math.nan] * 4
    return dict(n=int(ff.size), p1=float(q[0]), p5=float(q[1]), p10=float(q[2]), median=float(q[3]),
                min=float(ff.min()) if ff.size else math.nan,
                **{f"share_ge_{t}": float(np.mean(ff >= t)) if ff.size else math.nan for t in (0.97, 0.95, 0.9)})


class _MatchIndex:
    """Whitened, unit-norm template spectra for template-to-template matches (one detector)."""

    def __init__(self, psd: np.ndarray, sample_rate: float, band: tuple[float, float]):
        self.length = int(round(BUFFER_S * sample_rate))
        f_in = np.fft.rfftfreq(2 * (psd.size - 1), 1.0 / sample_rate)
        f = np.fft.rfftfreq(self.length, 1.0 / sample_rate)
        s = np.interp(f, f_in, psd)
        w = np.zeros(f.size)
        ok = (f >= band[0]) & (f <= band[1]) & (s > 0)
        w[ok] = 1.0 / s[ok]
        self.sqrt_w = torch.as_tensor(np.sqrt(w / w.max()))
        self.spectra: list[torch.Tensor] = []
        self.log_mc: list[float] = []

    def whiten(self, wave: np.ndarray) -> torch.Tensor:
        h = torch.fft.rfft(torch.as_tensor(wave, dtype=torch.float64)) * self.sqrt_w
        return (h / torch.linalg.vector_norm(h)).to(torch.complex64)

    def add(self, spectrum: torch.Tensor, log_mc: float) -> None:
        self.spectra.append(spectrum)
        self.log_mc.append(log_mc)

    def max_match(self, spectrum: torch.Tensor, log_mc: float, mc_window: float) -> float:
        near = np.nonzero(np.abs(np.asarray(self.log_mc) - log_mc) <= mc_window)[0]
        if near.size == 0:
            return 0.0
        bank = torch.stack([self.spectra[i] for i in near])
        # positive-frequency correlation: |sum_k A_k conj(B_k) e^{2 pi i k m / L}| over every lag m
        z = torch.fft.ifft(spectrum[None] * bank.conj(), n=self.length, dim=-1) * self.length
        return float(z.abs().max())


def grow_bank(start: TemplateBank | None = None, n_max: int = 2000, min_match: float = 0.97, seed: int = 0,
              max_seconds: float = 3600.0, max_candidates: int = 200_000, mc_window: float = 0.3,
              band: tuple[float, float] = (20.0, 1000.0)) -> tuple[TemplateBank, dict]:
    """Stochastic placement (module docstring) from ``start`` (default: the 252-template default bank) until
    the bank holds ``n_max`` templates, ``max_seconds`` have passed or ``max_candidates`` were drawn.

    Returns the bank and a record: templates, candidates drawn, seconds, the acceptance rate over the last
    1000 candidates (near 0: the population is covered at ``min_match``)."""
    start = make_template_bank() if start is None else start
    fs = start.sample_rate
    index = _MatchIndex(network_psd()[0], fs, band)
    rows = [tuple(float(v) for v in r) for r in zip(start.mass1, start.mass2, start.spin1z, start.spin2z)]
    for wave, mc in zip(start.waveforms, start.chirp_mass):
        index.add(index.whiten(wave), math.log(mc))
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    drawn, recent = 0, collections.deque(maxlen=1000)
    while len(rows) < n_max and drawn < max_candidates and time.perf_counter() - t0 < max_seconds:
        p = draw_parameters(rng, "IMRPhenomD")
        row = (p.mass1, p.mass2, p.spin1z, p.spin2z)
        drawn += 1
        spec = index.whiten(template_waveform(*row, sample_rate=fs, n_samples=start.n_samples))
        log_mc = math.log(p.chirp_mass)
        keep = index.max_match(spec, log_mc, mc_window) < min_match
        recent.append(keep)
        if keep:
            rows.append(row)
            index.add(spec, log_mc)
            if len(rows) % 100 == 0:
                log.info("bank: %d templates after %d candidates (%.0f s)", len(rows), drawn, time.perf_counter() - t0)
    record = dict(templates=len(rows), start_templates=len(start), candidates=drawn, min_match=min_match,
                  seed=seed, mc_window=mc_window, band=list(band), seconds=time.perf_counter() - t0,
                  recent_acceptance=float(np.mean(recent)) if recent else math.nan)
    bank = make_template_bank(templates=rows, approximant=start.approximant, sample_rate=fs, n_samples=start.n_samples)
    return bank, record


def write_bank(path: str | os.PathLike, bank: TemplateBank) -> Path:
    """The bank's parameters as CSV (``BANK_COLUMNS``), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(BANK_COLUMNS)
            w.writerows([repr(float(v)) for v in r] for r in zip(bank.mass1, bank.mass2, bank.spin1z, bank.spin2z))
    return path


def read_bank(source: str | os.PathLike) -> TemplateBank:
    """A bank from a CSV of (mass1, mass2, spin1z, spin2z) rows, "default" (252 templates, the search's
    default) or ``DENSE_BANK`` (the shipped stochastic bank); waveforms are generated here (~10 ms each)."""
    if str(source) == "default":
        return make_template_bank()
    if str(source) == DENSE_BANK:
        source = resources.files("astrocnn.gw") / "banks" / f"{DENSE_BANK}.csv"
    path = Path(str(source))
    try:
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            header = tuple(next(reader, ()))
            if header != BANK_COLUMNS:
                raise InputError(path, f"a bank's header must be {','.join(BANK_COLUMNS)}, got {','.join(header)}")
            rows = [tuple(float(v) for v in r) for r in reader if r]
    except FileNotFoundError:
        raise InputError(path, "no such bank file") from None
    except ValueError as e:
        raise InputError(path, f"not a bank of numbers ({e})") from None
    if not rows or any(len(r) != 4 for r in rows):
        raise InputError(path, "a bank needs rows of 4 numbers (mass1, mass2, spin1z, spin2z)")
    return make_template_bank(templates=rows)
