"""Label-free noise PSDs from the data being scored: the median over a folder's 2-s samples.

Gravitational-wave domain. A matched filter keeps its statistic calibrated on any noise by whitening with a
PSD estimated from the data themselves; :func:`folder_psd` gives a detector network the same footing for a
folder of G2Net-layout samples, without looking at a single label (the noise-only average of the design
notes used the labels, which leaks them into an evaluation). Long segments (GWOSC files) have their own
running estimate, :func:`~astrocnn.gw.whitening.whiten_running`.

The estimator: one periodogram per sample through the whitener's fit window (Hann for padded whiteners:
a Welch estimate with a single 2-s segment, so the PSD keeps the 0.5 Hz grid the whitener divides by),
then, bin by bin, the MEDIAN over samples divided by its exact bias. Why the median and not the mean:

* every sample enters, signals included; a loud signal (or a glitch in real data) raises a mean in the
  bins it covers in proportion to its SNR squared, one sample is enough in a small folder, while a median
  moves only by the share of samples that are loud. On 400 simulated samples (seed 5), half of them with
  signals of median SNR 20, the PSD at 20-30 Hz came out 24% high with the mean and 16% with the median;
  at the default median SNR of 8 both were 5% high.
* for Gaussian noise each bin of a windowed periodogram is exponentially distributed (a complex Gaussian's
  squared modulus), so the median of N of them has a known expectation, sum_{i<k} 1 / (N - i) times the
  mean for the k-th smallest (:func:`median_bias`), and a known spread; averaging Welch segments within a
  sample first would make the distribution, and so the bias, depend on the window's overlap.
* its price: a relative error per bin of ~1.44 / sqrt(N) (:func:`median_relative_error`), against
  1 / sqrt(N) for the mean: the median needs about twice the samples. Hence :data:`MIN_SAMPLES`.

The estimate does not depend on the order of the files: samples are taken in the order of their ids, and a
median does not depend on the order of what it is taken over.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.gw.readers import G2NetIndex, load_g2net_samples
from astrocnn.gw.whitening import Whitener

log = logging.getLogger(__name__)

#: Fewest samples a label-free PSD is estimated from: 64 give a per-bin error of 18% (1.44 / sqrt(64)), ~9%
#: in the whitened amplitude of each bin, what a mean over 32 samples would give.
MIN_SAMPLES = 64
#: Most samples read for one estimate (evenly spread over the folder's ids): 2048 give 3.2% per bin, and
#: their periodograms fill ~100 MB.
MAX_SAMPLES = 2048


def median_bias(n: int) -> float:
    """E[sample median] / mean for ``n`` independent exponential variables, exactly: the k-th smallest of n
    has expectation sum_{i=0}^{k-1} 1 / (n - i); an even count averages the two middle ones (as np.median)."""
    if n < 1:
        raise ValueError(f"need at least one sample, got {n}")
    inv = 1.0 / (n - np.arange(n))
    k = (n + 1) // 2
    return float(inv[:k].sum()) if n % 2 else float(inv[:k].sum() + 0.5 * inv[k])


def median_relative_error(n: int) -> float:
    """Standard deviation / expectation of the bias-corrected median of ``n`` exponential variables, exactly
    (order statistics of exponentials are sums of independent exponentials): ~1.44 / sqrt(n)."""
    inv = 1.0 / (n - np.arange(n))
    k = (n + 1) // 2
    var = float((inv[:k] ** 2).sum()) if n % 2 else float((inv[:k] ** 2).sum() + 0.25 * inv[k] ** 2)
    return float(np.sqrt(var)) / median_bias(n)


def median_psd(periodograms: np.ndarray) -> np.ndarray:
    """The bias-corrected median over axis 0 of periodograms (N, C, F): an unbiased PSD for Gaussian noise."""
    p = np.asarray(periodograms, dtype=np.float64)
    return np.median(p, axis=0) / median_bias(p.shape[0])


def spread_rows(n_total: int, max_rows: int) -> np.ndarray:
    """At most ``max_rows`` row numbers evenly spread over ``0 .. n_total - 1`` (all when there are fewer)."""
    if n_total <= max_rows:
        return np.arange(n_total)
    return np.unique(np.round(np.linspace(0, n_total - 1, max_rows)).astype(np.int64))


@dataclass
class DataPsd:
    """A label-free PSD estimate: ``psd`` (C, n//2+1) in 1/Hz, from ``n`` samples of ``source``."""

    psd: np.ndarray
    n: int
    source: str

    @property
    def digest(self) -> str:
        """First 8 hex digits of the SHA-256 of the PSD's bytes: equal digests, equal estimates."""
        return hashlib.sha256(np.ascontiguousarray(self.psd, dtype=np.float64).tobytes()).hexdigest()[:8]

    def describe(self) -> str:
        # no digest here: its last bits depend on the machine's FFT, and the description goes into tables
        return f"data: median of {self.n} samples of {self.source}"


def folder_psd(index: G2NetIndex, whitener: Whitener, *, min_samples: int = MIN_SAMPLES,
               max_samples: int = MAX_SAMPLES, batch_size: int = 256, workers: int = 4,
               on_error: str = "fail") -> DataPsd:
    """The label-free PSD of an indexed G2Net-layout folder: every sample (at most ``max_samples``, evenly
    spread over the ids), signals or not, through ``whitener``'s fit window, median per bin, bias removed.

    ``whitener`` gives the window and the grid (its own PSD is not used). Fewer than ``min_samples`` readable
    samples raise :class:`InputError` naming the folder. ``on_error="skip"`` leaves unreadable samples out.
    """
    rows = spread_rows(len(index), max_samples)
    pgrams, n_bad = [], 0
    for lo in range(0, rows.size, batch_size):
        raw, _, bad = load_g2net_samples([index.paths[i] for i in rows[lo: lo + batch_size]], workers, on_error)
        n_bad += len(bad)
        if len(raw):
            pgrams.append(whitener.periodograms(raw).numpy())
    n = sum(len(p) for p in pgrams)
    if n < min_samples:
        raise InputError(index.root, f"{n} readable samples; a PSD estimated from the data needs at least "
                                     f"{min_samples} (use the training PSD instead)")
    est = DataPsd(median_psd(np.concatenate(pgrams)), n, str(index.root))
    log.info("%s: noise PSD estimated from the data, median of %d samples (%.0f%% per bin)%s", index.root, n,
             100 * median_relative_error(n), f"; {n_bad} unreadable ones left out" if n_bad else "")
    return est


def data_whitener(index: G2NetIndex, template: Whitener, **kwargs) -> tuple[Whitener, DataPsd]:
    """A whitener configured as ``template`` whose PSD is :func:`folder_psd` of the folder (``kwargs`` are
    its keywords): ``(whitener, estimate)``."""
    est = folder_psd(index, template, **kwargs)
    return Whitener.from_state(template.config(), est.psd, est.n), est
