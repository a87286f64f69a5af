"""Whitening, band-pass and scaling of strain, as torch modules whose state lives in buffers.

A batch of strain is ``(batch, detector, time)``; for G2Net samples (N, 3, 4096) at 2048 Hz. Everything is
done in the frequency domain in one FFT pair per call, vectorised over the batch:

* :class:`Whitener` - extend each series at both ends by its own linear prediction and taper the extension
  (the taper lies in the padding, so the data are never multiplied by anything: a merger at the end of the
  window keeps its SNR), divide by the amplitude spectral density of the noise (fitted on noise-only TRAINING
  samples, or estimated label-free from the data being scored, :mod:`~astrocnn.gw.psd`), and (by default)
  a zero-phase 20-500 Hz Butterworth band-pass; then crop back to the window. Fitted state (the PSD) is a
  buffer, so it goes into ``state_dict`` and a checkpoint; using it before :meth:`Whitener.fit` raises.
  Whiteners stored before the padding existed (no ``pad`` in their config) are rebuilt as they were: a
  Tukey window over the data, no padding (:data:`LEGACY`).
* :func:`whiten_array` - the same whitening in numpy (for worker processes that should not run torch) and
  :func:`whitened_snr`, the optimal SNR of a noise-free signal as the whitener delivers it.
* :class:`Normalize` - per-sample scaling.
* :func:`whiten_long_segment`, :func:`whiten_running` and :func:`sliding_windows` - for long real segments
  (GWOSC): whiten the whole segment with its own median-averaged Welch PSD (one for a segment up to a minute,
  a running one around each stretch beyond), then cut 2-s windows.

The band-pass multiplies the spectrum by |H(f)|^2 of a Butterworth filter: exactly the magnitude response of
``scipy.signal.sosfiltfilt`` with the same filter, i.e. zero phase. It acts circularly, which is harmless
on the tapered, padded series; away from the ends it equals sosfiltfilt (the tests check this).

Why a prediction in the padding: the raw strain is dominated by noise below 20 Hz (the 10-15 Hz bump,
~100x the in-band level); a mirror image of the series continues it with a kink in its curvature that the
whitening filter turns into excess power near the window's ends, and zeros continue it with a jump. The
noise's own best linear prediction (an autoregressive predictor from the whitening PSD) continues the slow,
predictable part smoothly and fades the rest, so whitened noise keeps about the same variance up to the ends.
"""
from __future__ import annotations

import functools
import json
import logging

import numpy as np
import torch
from scipy import linalg as _linalg
from scipy import signal as _sig
from torch import Tensor, nn

log = logging.getLogger(__name__)

# (batch, detector, time) strain, and its one-sided PSD (detector, frequency)
StrainTensor = Tensor
PsdTensor = Tensor


def tukey(n: int, alpha: float) -> np.ndarray:
    """Tukey window of ``n`` samples with a fraction ``alpha`` inside the cosine tapers (scipy's definition)."""
    return _sig.windows.tukey(n, alpha)


def bandpass_gain(freqs: np.ndarray, sample_rate: float, band: tuple[float, float], order: int = 4) -> np.ndarray:
    """|H(f)|^2 of a Butterworth band-pass (``order`` per pass) at ``freqs`` Hz: the gain of zero-phase
    forward-backward filtering (``sosfiltfilt``) with ``scipy.signal.butter(order, band, 'bandpass', fs=...)``."""
    sos = butter_sos(sample_rate, band, order)
    _, h = _sig.sosfreqz(sos, worN=np.asarray(freqs, dtype=np.float64), fs=sample_rate)
    return np.abs(h) ** 2


def butter_sos(sample_rate: float, band: tuple[float, float], order: int = 4) -> np.ndarray:
    """Second-order sections of the Butterworth band-pass used by :func:`bandpass_gain`."""
    lo, hi = band
    if not 0 < lo < hi < sample_rate / 2:
        raise ValueError(f"band must satisfy 0 < low < high < Nyquist ({sample_rate / 2} Hz), got {band}")
    return _sig.butter(order, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")


def periodogram_psd(strain: np.ndarray | Tensor, sample_rate: float, window: np.ndarray | Tensor) -> Tensor:
    """One-sided PSD (1/Hz) of each windowed series: 2 |FFT(x w)|^2 / (fs sum w^2), float64, on the device of
    ``window`` when it is a tensor. Shape (..., n // 2 + 1)."""
    window = torch.as_tensor(window, dtype=torch.float64)
    x = torch.as_tensor(strain).to(device=window.device, dtype=torch.float64) * window
    spec = torch.fft.rfft(x, dim=-1)
    psd = 2.0 * (spec.real ** 2 + spec.imag ** 2) / (sample_rate * float(torch.sum(window ** 2)))
    psd[..., 0] /= 2.0  # DC and Nyquist appear once in a one-sided spectrum
    if x.shape[-1] % 2 == 0:
        psd[..., -1] /= 2.0
    return psd


# Bins whose PSD is below this fraction of the channel's median PSD are not whitened (set to 0): a PSD that is
# cut off steeply (a design curve below 10 Hz, a resampled series above its old Nyquist) would otherwise be
# divided by ~0 and blow the window's leakage up by many orders of magnitude.
PSD_FLOOR = 1e-8


def inverse_asd(psd: np.ndarray | Tensor, floor: float = PSD_FLOOR) -> np.ndarray | Tensor:
    """1 / sqrt(psd) per channel (..., n_f), and 0 where psd <= floor * (median of the channel's positive PSD).

    numpy in, numpy out (computed in numpy, so worker processes need no torch); a tensor stays a tensor on its
    device. The median is the lower one of an even count, as ``torch.median`` takes it."""
    if not isinstance(psd, Tensor):
        psd = np.asarray(psd, dtype=np.float64)
        flat = psd.reshape(-1, psd.shape[-1])
        inv = np.zeros_like(flat)
        for k, row in enumerate(flat):
            pos = np.sort(row[row > 0])
            med = pos[(pos.size - 1) // 2] if pos.size else 0.0
            ok = (row > floor * med) & (row > 0)
            inv[k, ok] = 1.0 / np.sqrt(row[ok])
        return inv.reshape(psd.shape)
    flat = psd.reshape(-1, psd.shape[-1])
    med = torch.stack([row[row > 0].median() if bool((row > 0).any()) else row.new_zeros(()) for row in flat])
    ok = (flat > floor * med[:, None]) & (flat > 0)
    inv = torch.where(ok, torch.rsqrt(torch.where(ok, flat, torch.ones_like(flat))), torch.zeros_like(flat))
    return inv.reshape(psd.shape)


#: Padding (s) added at each end of a series before whitening, filled by the series' own linear prediction and
#: tapered to zero (:func:`extend_by_prediction`). 0.25 s is more than the band-passed whitening filter's
#: reach: mergers at 1.9 s of a 2-s window keep >= 99.9% of their band-limited SNR (tests/test_gw.py), and
#: 1 s of padding changed neither that nor the whitened noise near the ends.
PAD_S = 0.25
#: Order of the autoregressive predictor that fills the padding: 32 samples (16 ms) predict the slow, loud
#: part of the noise (below 20 Hz) well enough that whitened noise keeps its variance to within ~6% up to
#: the window's ends; orders 64-1024 did not do better.
AR_ORDER = 32
#: The predictor is fitted to the PSD plus this fraction of its largest value, as white noise: the design
#: curves fall by many orders of magnitude below 10 Hz, which leaves the Yule-Walker system ill-conditioned.
AR_FLOOR = 1e-8
#: Periodogram windows a Whitener may fit its PSD with (:func:`periodogram_window`).
FIT_WINDOWS = ("hann", "tukey")
#: Settings of a Whitener stored before the padding existed: a config without these keys is rebuilt with them.
LEGACY = {"pad": 0.0, "ar_order": 0, "fit_window": "tukey"}


def periodogram_window(n: int, kind: str = "hann", alpha: float = 0.2) -> np.ndarray:
    """The periodogram window of a PSD fit: ``"hann"`` (periodic Hann: low leakage, so the steep spectrum
    below 25 Hz is not smeared upward) or ``"tukey"`` (Tukey(``alpha``), what Whiteners used before padding)."""
    if kind not in FIT_WINDOWS:
        raise ValueError(f"fit_window must be one of {FIT_WINDOWS}, got {kind!r}")
    return _sig.windows.hann(n, sym=False) if kind == "hann" else tukey(n, alpha)


@functools.lru_cache(maxsize=16)
def _gain(n: int, sample_rate: float, band: tuple[float, float] | None, order: int) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    g = np.ones_like(freqs) if band is None else bandpass_gain(freqs, sample_rate, band, order)
    g.setflags(write=False)
    return g


def _ramp(pad: int) -> np.ndarray:
    """Half-cosine rising from 0 to (almost) 1 over ``pad`` samples, with zero slope where it meets the data."""
    return 0.5 * (1.0 - np.cos(np.pi * np.arange(pad) / pad))


def ar_predictor(psd: np.ndarray, order: int = AR_ORDER, floor: float = AR_FLOOR) -> np.ndarray:
    """Coefficients ``a`` (C, order) of the linear predictor x[t] ~ sum_i a[i] x[t - 1 - i] of noise with the
    one-sided PSD ``psd`` (C, n // 2 + 1) on the rfft grid of n samples: the Yule-Walker equations for the
    autocorrelation the PSD implies (its inverse FFT), with ``floor`` times the channel's largest PSD added as
    white noise. A channel whose PSD is all zero gets zeros (its padding is zeros)."""
    psd = np.atleast_2d(np.asarray(psd, dtype=np.float64))
    out = np.zeros((psd.shape[0], int(order)))
    for k, p in enumerate(psd):
        top = float(p.max())
        if order < 1 or not top > 0:
            continue
        r = np.fft.irfft(p + floor * top)[: order + 1]
        out[k] = _linalg.solve_toeplitz(r[:order], r[1:order + 1])
    return out


def _predict(past: np.ndarray, a: np.ndarray, steps: int) -> np.ndarray:
    """Continue each row of ``past`` (R, p), its latest sample first, by ``steps`` predicted samples with zero
    innovations: the all-pole filter 1 / (1 - sum a z^-i) run from the state the past leaves (what
    ``scipy.signal.lfiltic`` computes, for all rows at once)."""
    p = a.size
    j, m = np.indices((p, p))
    state = np.where(j + m < p, a[np.minimum(j + m, p - 1)], 0.0)  # zi[m] = sum_j a[j + m] y[-1 - j]
    out, _ = _sig.lfilter([1.0], np.r_[1.0, -a], np.zeros((past.shape[0], steps)), axis=-1, zi=past @ state)
    return out


def extend_by_prediction(strain: np.ndarray, coeffs: np.ndarray, pad: int) -> np.ndarray:
    """``strain`` (..., C, n) extended by ``pad`` samples at each end: after the end its forward linear
    prediction, before the start its backward one (a stationary process has the same predictor both ways),
    each multiplied by a half-cosine that reaches 0 at the outer end. The data are untouched.
    ``coeffs`` (C, order) from :func:`ar_predictor`. Returns (..., C, n + 2 pad) float64."""
    x = np.asarray(strain, dtype=np.float64)
    if pad <= 0:
        return x
    shape = x.shape
    flat = x.reshape(-1, shape[-2], shape[-1])
    b, n = flat.shape[0], shape[-1]
    out = np.zeros((b, shape[-2], n + 2 * pad))
    out[..., pad: pad + n] = flat
    ramp = _ramp(pad)
    for c in range(shape[-2]):
        a = np.asarray(coeffs[c], dtype=np.float64)
        if a.size == 0 or not np.any(a):
            continue
        p = min(a.size, n)
        past = np.concatenate([flat[:, c, ::-1][:, :p], flat[:, c, :p]])  # end (latest first); start, time reversed
        pred = _predict(past, a[:p], pad)
        out[:, c, pad + n:] = pred[:b] * ramp[::-1]
        out[:, c, :pad] = pred[b:, ::-1] * ramp
    return out.reshape(shape[:-1] + (n + 2 * pad,))


def padded_response(psd: np.ndarray, n: int, sample_rate: float, pad: int, band: tuple[float, float] | None,
                    order: int = 4) -> np.ndarray:
    """gain(f) / sqrt(psd(f)) on the rfft grid of the padded length n + 2 pad (0 where the PSD is ~0): the PSD
    (C, n // 2 + 1), given on the grid of n samples, interpolated linearly. (C, (n + 2 pad) // 2 + 1)."""
    psd = np.atleast_2d(np.asarray(psd, dtype=np.float64))
    length = n + 2 * pad
    if pad > 0:
        f_in = np.fft.rfftfreq(n, 1.0 / sample_rate)
        f = np.fft.rfftfreq(length, 1.0 / sample_rate)
        psd = np.stack([np.interp(f, f_in, p) for p in psd])
    return inverse_asd(psd) * _gain(length, float(sample_rate), None if band is None else tuple(band), int(order))


def whitening_filter(psd: np.ndarray, n: int = 4096, sample_rate: float = 2048.0, *,
                     band: tuple[float, float] | None = (20.0, 500.0), order: int = 4, pad: float = PAD_S,
                     ar_order: int = AR_ORDER) -> tuple[np.ndarray, np.ndarray, int]:
    """What whitening with ``psd`` (C, n//2+1) needs, computed once: ``(response on the padded grid
    (:func:`padded_response`), predictor coefficients (:func:`ar_predictor`), padding in samples)``."""
    p = int(round(pad * sample_rate))
    coeffs = ar_predictor(psd, ar_order) if p else np.zeros((np.atleast_2d(psd).shape[0], 0))
    return padded_response(psd, n, sample_rate, p, band, order), coeffs, p


def whiten_array(strain: np.ndarray, psd: np.ndarray | None, sample_rate: float = 2048.0, *, alpha: float = 0.0,
                 filt: tuple[np.ndarray, np.ndarray, int] | None = None, **whitener) -> np.ndarray:
    """What :class:`Whitener` does, in numpy (float64): ``strain`` (..., C, n) whitened by ``psd`` (C, n//2+1)
    in 1/Hz, band-passed, cropped to the window. ``whitener``: the keywords of :func:`whitening_filter`
    (band, order, pad in seconds, ar_order); ``filt``, its result, saves computing it again for one PSD."""
    x = np.asarray(strain, dtype=np.float64)
    n = x.shape[-1]
    resp, coeffs, p = filt if filt is not None else whitening_filter(psd, n, sample_rate, **whitener)
    if alpha > 0:
        x = x * tukey(n, alpha)
    xe = extend_by_prediction(x, coeffs, p)
    return np.fft.irfft(np.fft.rfft(xe, axis=-1) * resp, n=n + 2 * p, axis=-1)[..., p: p + n]


def whitened_snr(signal: np.ndarray, psd: np.ndarray | None, sample_rate: float = 2048.0, **whitener) -> np.ndarray:
    """Optimal SNR of a noise-free ``signal`` (..., C, n) as a whitener delivers it: sqrt(2 / fs sum y^2) of
    the whitened, band-passed series y inside the window, per detector (root-sum-square them for the network).

    Whitened noise has a one-sided PSD of ~1 /Hz in the band, so this is the SNR a filter matched to y would
    reach on the whitener's output: what the band, the padding and the cut at the window's ends leave of the
    signal. ``psd`` (C, n//2+1) is the noise the signal sits in; ``whitener``: the keywords of
    :func:`whiten_array` (default: a default :class:`Whitener`).
    """
    y = whiten_array(signal, psd, sample_rate, **whitener)
    return np.sqrt(2.0 / sample_rate * np.sum(y ** 2, axis=-1))


class Whitener(nn.Module):
    """Pad, whiten with a noise PSD, band-pass and crop a batch of strain: (B, C, n) -> (B, C, n).

    Parameters
    ----------
    sample_rate : Hz. n_samples : samples per series. n_detectors : channels.
    alpha : Tukey window over the data themselves (fraction inside the tapers; default 0: none).
    band : (low, high) Hz of the zero-phase Butterworth band-pass, or None for whitening only.
    order : Butterworth order per pass.
    pad : seconds added at each end, filled with the series' linear prediction (order ``ar_order``, from the
        whitening PSD) and tapered to zero inside the padding (:func:`extend_by_prediction`); 0 = none.
    fit_window : periodogram window of :meth:`fit` and :meth:`periodograms`: ``"hann"`` or ``"tukey"``
        (Tukey(``alpha``), as before padding existed).

    After :meth:`fit` (or :meth:`set_psd`), whitened noise has a one-sided PSD of ~1 /Hz inside the band.
    Buffers: ``window`` (n,) the data taper, ``gain`` (n//2+1,), ``psd`` (C, n//2+1) float64 in 1/Hz, ``n_fit``
    (number of series averaged; 0 = not fitted); ``fit_taper`` (n,) is rebuilt from the config, not stored.
    """

    def __init__(self, sample_rate: float = 2048.0, n_samples: int = 4096, n_detectors: int = 3, alpha: float = 0.0,
                 band: tuple[float, float] | None = (20.0, 500.0), order: int = 4, pad: float = PAD_S,
                 ar_order: int = AR_ORDER, fit_window: str = "hann"):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        if pad < 0 or ar_order < 0:
            raise ValueError(f"pad and ar_order must be >= 0, got {pad}, {ar_order}")
        self.sample_rate = float(sample_rate)
        self.n_samples = int(n_samples)
        self.n_detectors = int(n_detectors)
        self.alpha = float(alpha)
        self.band = None if band is None else (float(band[0]), float(band[1]))
        self.order = int(order)
        self.pad = float(pad)
        self.ar_order = int(ar_order)
        self.fit_window = str(fit_window)
        self.n_pad = int(round(self.pad * self.sample_rate))
        gain = _gain(self.n_samples, self.sample_rate, self.band, self.order)
        self.register_buffer("window", torch.as_tensor(tukey(self.n_samples, self.alpha), dtype=torch.float64))
        self.register_buffer("gain", torch.as_tensor(np.array(gain), dtype=torch.float64))
        self.register_buffer("psd", torch.zeros(self.n_detectors, gain.size, dtype=torch.float64))
        self.register_buffer("n_fit", torch.zeros((), dtype=torch.int64))
        self.register_buffer("fit_taper", torch.as_tensor(periodogram_window(self.n_samples, self.fit_window, self.alpha),
                                                          dtype=torch.float64), persistent=False)
        self._derived: tuple[Tensor, Tensor, np.ndarray] | None = None  # (psd it came from, response, predictor)

    def config(self) -> dict:
        """Constructor arguments, JSON-ready (store them beside the state to rebuild the module)."""
        return dict(sample_rate=self.sample_rate, n_samples=self.n_samples, n_detectors=self.n_detectors,
                    alpha=self.alpha, band=None if self.band is None else list(self.band), order=self.order,
                    pad=self.pad, ar_order=self.ar_order, fit_window=self.fit_window)

    @property
    def fitted(self) -> bool:
        return int(self.n_fit) > 0

    def _check(self, strain: Tensor) -> None:
        if strain.ndim != 3 or strain.shape[1:] != (self.n_detectors, self.n_samples):
            raise ValueError(f"expected strain of shape (batch, {self.n_detectors}, {self.n_samples}), "
                             f"got {tuple(strain.shape)}")

    @torch.no_grad()
    def periodograms(self, strain: np.ndarray | Tensor) -> Tensor:
        """One-sided periodogram (1/Hz) of each series (B, C, n) through the fit window: (B, C, n//2+1) float64.
        Their mean over noise-only series is what :meth:`fit` stores; :mod:`~astrocnn.gw.psd` takes a median."""
        strain = torch.as_tensor(strain)
        self._check(strain)
        return periodogram_psd(strain, self.sample_rate, self.fit_taper)

    @torch.no_grad()
    def partial_fit(self, strain: np.ndarray | Tensor) -> "Whitener":
        """Add noise-only series (B, C, n) to the running average PSD."""
        strain = torch.as_tensor(strain)
        self._check(strain)
        b = strain.shape[0]
        if b == 0:
            return self
        psd = self.periodograms(strain).mean(0)
        n0 = int(self.n_fit)
        self.psd.mul_(n0 / (n0 + b)).add_(psd * (b / (n0 + b)))
        self.n_fit.fill_(n0 + b)
        return self

    def fit(self, strain: np.ndarray | Tensor, batch_size: int = 1024) -> "Whitener":
        """Fit the PSD: the average periodogram (fit window) of the NOISE-ONLY training series (B, C, n).

        Never fit on the noise-only samples of the set you evaluate on: they are chosen by the labels (the
        label-free estimate of :mod:`~astrocnn.gw.psd` uses every sample instead).
        """
        self.psd.zero_()
        self.n_fit.zero_()
        for lo in range(0, len(strain), batch_size):
            self.partial_fit(strain[lo: lo + batch_size])
        if not self.fitted:
            raise ValueError("no series to fit the whitening PSD on")
        log.info("whitening PSD fitted on %d noise-only series", int(self.n_fit))
        return self

    def set_psd(self, psd: np.ndarray | Tensor, n_fit: int = 1) -> "Whitener":
        """Use a known PSD (C, n//2+1) in 1/Hz instead of fitting one."""
        psd = torch.as_tensor(np.asarray(psd), dtype=torch.float64).to(self.psd.device)
        if psd.shape != self.psd.shape:
            raise ValueError(f"psd must have shape {tuple(self.psd.shape)}, got {tuple(psd.shape)}")
        self.psd.copy_(psd)
        self.n_fit.fill_(max(1, int(n_fit)))
        return self

    def response(self) -> Tensor:
        """The frequency response applied after the window: gain / sqrt(psd), 0 where the PSD is ~0, on the
        grid of the padded length. (C, (n + 2 pad)//2+1)."""
        return self._state()[1]

    def _state(self) -> tuple[Tensor, Tensor, np.ndarray]:
        # the response and the predictor follow the PSD; rebuilt when it changed (fit, set_psd, load_state_dict)
        if not self.fitted:
            raise RuntimeError("Whitener is not fitted: call fit() with noise-only training samples, "
                               "or load_state_dict()")
        d = self._derived
        if d is None or d[0].device != self.psd.device or not torch.equal(d[0], self.psd):
            if self.n_pad == 0:
                resp = inverse_asd(self.psd) * self.gain  # as before padding existed, bit for bit
            else:
                resp = torch.as_tensor(padded_response(self.psd.cpu().numpy(), self.n_samples, self.sample_rate,
                                                       self.n_pad, self.band, self.order)).to(self.psd.device)
            coeffs = ar_predictor(self.psd.cpu().numpy(), self.ar_order) if self.n_pad else np.zeros((0, 0))
            d = self._derived = (self.psd.clone(), resp, coeffs)
        return d

    @torch.no_grad()
    def forward(self, strain: StrainTensor) -> StrainTensor:
        """Whitened (and band-passed) strain, same shape; float64 in float64 out, float32 in float32 out."""
        strain = torch.as_tensor(strain)
        self._check(strain)
        _, resp, coeffs = self._state()
        dtype = strain.dtype if strain.is_floating_point() else torch.float64
        # strain is ~1e-20 and the PSD ~1e-47: work in float64 so the squares never underflow
        x = strain.to(device=self.window.device, dtype=torch.float64) * self.window
        if self.n_pad:
            x = torch.as_tensor(extend_by_prediction(x.cpu().numpy(), coeffs, self.n_pad)).to(self.window.device)
        spec = torch.fft.rfft(x, dim=-1) * resp
        y = torch.fft.irfft(spec, n=x.shape[-1], dim=-1)[..., self.n_pad: self.n_pad + self.n_samples]
        return y.to(dtype)

    def whiten(self, strain: np.ndarray) -> np.ndarray:
        """numpy in, numpy out (float64)."""
        return self.forward(torch.as_tensor(np.asarray(strain, dtype=np.float64))).cpu().numpy()

    @classmethod
    def from_state(cls, config: dict, psd: np.ndarray, n_fit: int = 1) -> "Whitener":
        """Rebuild a fitted whitener from :meth:`config` and its PSD (as stored in a prepared set or a run).
        A config from before the padding existed lacks its keys and is rebuilt as it was (:data:`LEGACY`)."""
        config = {**LEGACY, **config}
        w = cls(**{k: (tuple(v) if k == "band" and v is not None else v) for k, v in config.items()})
        return w.set_psd(psd, n_fit)


class Normalize(nn.Module):
    """Per-sample scaling of (B, C, n) strain.

    mode "channel": each detector of each sample divided by its own standard deviation; "sample": each sample
    divided by the standard deviation over all its detectors (keeps their ratio); "none": unchanged. Series
    that are identically zero (a masked detector) stay zero.
    """

    MODES = ("channel", "sample", "none")

    def __init__(self, mode: str = "channel", eps: float = 1e-30):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.eps = float(eps)

    def forward(self, strain: StrainTensor) -> StrainTensor:
        if self.mode == "none":
            return strain
        dims = (-1,) if self.mode == "channel" else (-2, -1)
        std = strain.std(dim=dims, keepdim=True)
        return torch.where(std > self.eps, strain / torch.clamp(std, min=self.eps), torch.zeros_like(strain))


class GwPreprocess(nn.Module):
    """Whitener followed by Normalize: what a detector network sees. (B, C, n) -> (B, C, n)."""

    def __init__(self, whitener: Whitener, normalize: str = "channel"):
        super().__init__()
        self.whitener = whitener
        self.normalize = Normalize(normalize)

    def config(self) -> dict:
        return dict(whitener=self.whitener.config(), normalize=self.normalize.mode)

    def forward(self, strain: StrainTensor) -> StrainTensor:
        return self.normalize(self.whitener(strain))

    def to_json(self) -> str:
        return json.dumps(self.config())


# ---------------------------------------------------------------------------------------------- long segments

def welch_psd(strain: np.ndarray, sample_rate: float, fftlength: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Median-averaged Welch PSD (Hann, 50% overlap, ``fftlength`` s): (freqs, psd (..., n_f)) in Hz, 1/Hz.

    The median ignores the few segments a loud transient (or the event itself) inflates.
    """
    nper = int(round(fftlength * sample_rate))
    nper = min(nper, strain.shape[-1])
    return _sig.welch(strain, fs=sample_rate, nperseg=nper, noverlap=nper // 2, window="hann",
                      average="median", axis=-1)


def _whiten_by(x: np.ndarray, window: np.ndarray, sample_rate: float, f_w: np.ndarray, p_w: np.ndarray,
               band: tuple[float, float] | None, order: int) -> np.ndarray:
    """(C, T) series times ``window``, divided by the ASD of the Welch PSD ``p_w`` (C, n_f) at ``f_w`` and
    band-passed, in one FFT; channels that are all zero stay zero."""
    n = x.shape[-1]
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spec = np.fft.rfft(x * window, axis=-1)
    gain = np.ones_like(freqs) if band is None else bandpass_gain(freqs, sample_rate, band, order)
    out = np.zeros_like(x)
    for k in range(x.shape[0]):
        if not np.any(x[k]):
            continue
        inv = inverse_asd(np.interp(freqs, f_w, p_w[k]))
        out[k] = np.fft.irfft(spec[k] * inv * gain, n=n)
    return out


def whiten_long_segment(
    strain: np.ndarray,
    sample_rate: float,
    fftlength: float = 4.0,
    band: tuple[float, float] | None = (20.0, 500.0),
    order: int = 4,
    taper_s: float = 1.0,
    return_psd: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whiten a long segment (C, T) or (T,) with its own noise estimate, before any windows are cut.

    The PSD is the median-averaged Welch estimate with ``fftlength``-s FFTs; the segment is Tukey-tapered
    over ``taper_s`` at each end, divided by the ASD and band-passed (zero phase) in one FFT. Whitened noise
    has a PSD of ~1 /Hz in the band. Whitening 2-s windows alone would let the huge low-frequency power of
    real strain leak through; whitening the whole segment first avoids that. Channels that are all zero
    (a masked detector) stay zero. With ``return_psd`` also the Welch estimate: (whitened, freqs, psd (C, n_f)).
    """
    x = np.atleast_2d(np.asarray(strain, dtype=np.float64))
    n = x.shape[-1]
    f_w, p_w = welch_psd(x, sample_rate, fftlength)
    alpha = min(1.0, 2.0 * taper_s * sample_rate / n)
    out = _whiten_by(x, tukey(n, alpha), sample_rate, f_w, p_w, band, order).reshape(np.shape(strain))
    return (out, f_w, p_w) if return_psd else out


#: A running PSD (:func:`whiten_running`) for each stretch of ``RUNNING_BLOCK_S`` seconds is the median Welch
#: estimate of the ``RUNNING_SPAN_S`` seconds of data around it: long enough for a median over 31 half-
#: overlapping 4-s FFTs, short enough to follow the drifts of real detector noise over minutes.
RUNNING_SPAN_S = 64.0
RUNNING_BLOCK_S = 8.0


def _chunk_window(length: int, left: int, right: int) -> np.ndarray:
    """Ones with half-cosine ramps of ``left`` and ``right`` samples at the ends."""
    w = np.ones(length)
    if left:
        w[:left] = 0.5 * (1.0 - np.cos(np.pi * np.arange(left) / left))
    if right:
        w[length - right:] = 0.5 * (1.0 + np.cos(np.pi * (np.arange(right) + 1) / right))
    return w


def whiten_running(
    strain: np.ndarray,
    sample_rate: float,
    *,
    fftlength: float = 4.0,
    span_s: float = RUNNING_SPAN_S,
    block_s: float = RUNNING_BLOCK_S,
    band: tuple[float, float] | None = (20.0, 500.0),
    order: int = 4,
    taper_s: float = 1.0,
) -> tuple[np.ndarray, str]:
    """Whiten a long segment (C, T) or (T,) with a running PSD estimated from the data around each stretch.

    Every ``block_s`` stretch is whitened with the median Welch PSD (``fftlength``-s FFTs) of the ``span_s``
    seconds of data centred on it (shifted to stay inside the segment), on a chunk reaching ``fftlength`` s
    (or ``taper_s``, the larger) beyond the stretch on each side and tapered only there, so the whitening
    filter never sees an edge inside the stretch; the segment's own ends are tapered over ``taper_s`` as in
    :func:`whiten_long_segment`. A segment no longer than ``span_s`` has one PSD, its own: the result is
    then exactly :func:`whiten_long_segment`'s. Returns ``(whitened, description of the PSD)``.
    """
    x = np.atleast_2d(np.asarray(strain, dtype=np.float64))
    total = x.shape[-1]
    if total <= span_s * sample_rate:
        white = whiten_long_segment(strain, sample_rate, fftlength, band, order, taper_s)
        return white, (f"segment: median Welch PSD ({fftlength:g}-s FFTs) of the whole "
                       f"{total / sample_rate:g}-s segment")
    span, block = int(round(span_s * sample_rate)), int(round(block_s * sample_rate))
    margin, edge = int(round(max(fftlength, taper_s) * sample_rate)), int(round(taper_s * sample_rate))
    out = np.zeros_like(x)
    for b0 in range(0, total, block):
        b1 = min(total, b0 + block)
        s0 = min(max(0, (b0 + b1) // 2 - span // 2), total - span)
        f_w, p_w = welch_psd(x[:, s0: s0 + span], sample_rate, fftlength)
        c0, c1 = max(0, b0 - margin), min(total, b1 + margin)
        win = _chunk_window(c1 - c0, b0 - c0 if c0 < b0 else edge, c1 - b1 if c1 > b1 else edge)
        out[:, b0:b1] = _whiten_by(x[:, c0:c1], win, sample_rate, f_w, p_w, band, order)[:, b0 - c0: b1 - c0]
    return out.reshape(np.shape(strain)), (f"running: median Welch PSD ({fftlength:g}-s FFTs) of the "
                                           f"{span_s:g} s around each {block_s:g}-s stretch")


def psd_on_grid(freqs: np.ndarray, psd: np.ndarray, n_samples: int = 4096, sample_rate: float = 2048.0) -> np.ndarray:
    """Interpolate a PSD (..., n_f) given at ``freqs`` onto the rfft grid of ``n_samples`` samples."""
    grid = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    psd = np.atleast_2d(psd)
    return np.stack([np.interp(grid, freqs, p) for p in psd])


def sliding_windows(
    strain: np.ndarray,
    gps_start: float,
    sample_rate: float,
    window_s: float = 2.0,
    step_s: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut (C, T) strain into overlapping windows: (M, C, n) float64 and the GPS time of each window's centre (M,).

    Windows start at ``gps_start + m * step_s``; the last one ends inside the segment.
    """
    x = np.atleast_2d(np.asarray(strain))
    n = int(round(window_s * sample_rate))
    step = int(round(step_s * sample_rate))
    if n > x.shape[-1]:
        raise ValueError(f"window of {window_s} s is longer than the segment ({x.shape[-1] / sample_rate} s)")
    if step < 1:
        raise ValueError(f"step_s must be at least one sample, got {step_s}")
    starts = np.arange(0, x.shape[-1] - n + 1, step)
    view = np.lib.stride_tricks.sliding_window_view(x, n, axis=-1)[:, starts]  # (C, M, n)
    windows = np.ascontiguousarray(np.moveaxis(view, 1, 0))
    centres = gps_start + (starts + n / 2) / sample_rate
    return windows, centres
