"""Whitening, band-pass and scaling of strain, as torch modules whose state lives in buffers.

A batch of strain is ``(batch, detector, time)``; for G2Net samples (N, 3, 4096) at 2048 Hz. Everything is
done in the frequency domain in one FFT pair per call, vectorised over the batch:

* :class:`Whitener` - Tukey window, divide by the amplitude spectral density fitted on noise-only TRAINING
  samples, and (by default) a zero-phase 20-500 Hz Butterworth band-pass. Fitted state (the PSD) is a buffer,
  so it goes into ``state_dict`` and a checkpoint; using it before :meth:`Whitener.fit` raises.
* :class:`Normalize` - per-sample scaling.
* :func:`whiten_long_segment` and :func:`sliding_windows` - for long real segments (GWOSC): whiten the whole
  segment with its own median-averaged Welch PSD, then cut 2-s windows.

The band-pass multiplies the spectrum by |H(f)|^2 of a Butterworth filter: exactly the magnitude response of
``scipy.signal.sosfiltfilt`` with the same filter, i.e. zero phase. It acts circularly, which is harmless
after the Tukey taper; away from the ends it equals sosfiltfilt (the tests check this).
"""
from __future__ import annotations

import json
import logging

import numpy as np
import torch
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

    numpy in, numpy out; a tensor stays a tensor on its device."""
    if not isinstance(psd, Tensor):
        return inverse_asd(torch.as_tensor(np.asarray(psd, dtype=np.float64))).numpy()
    flat = psd.reshape(-1, psd.shape[-1])
    med = torch.stack([row[row > 0].median() if bool((row > 0).any()) else row.new_zeros(()) for row in flat])
    ok = (flat > floor * med[:, None]) & (flat > 0)
    inv = torch.where(ok, torch.rsqrt(torch.where(ok, flat, torch.ones_like(flat))), torch.zeros_like(flat))
    return inv.reshape(psd.shape)


class Whitener(nn.Module):
    """Window, whiten with a fitted noise PSD and band-pass a batch of strain: (B, C, n) -> (B, C, n).

    Parameters
    ----------
    sample_rate : Hz. n_samples : samples per series. n_detectors : channels.
    alpha : Tukey window parameter (fraction of the series inside the tapers).
    band : (low, high) Hz of the zero-phase Butterworth band-pass, or None for whitening only.
    order : Butterworth order per pass.

    After :meth:`fit`, whitened noise has a one-sided PSD of ~1 /Hz inside the band (the windowed part
    excepted). Buffers: ``window`` (n,), ``gain`` (n//2+1,), ``psd`` (C, n//2+1) float64 in 1/Hz,
    ``n_fit`` (number of series averaged; 0 = not fitted).
    """

    def __init__(self, sample_rate: float = 2048.0, n_samples: int = 4096, n_detectors: int = 3, alpha: float = 0.2,
                 band: tuple[float, float] | None = (20.0, 500.0), order: int = 4):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {n_samples}")
        self.sample_rate = float(sample_rate)
        self.n_samples = int(n_samples)
        self.n_detectors = int(n_detectors)
        self.alpha = float(alpha)
        self.band = None if band is None else (float(band[0]), float(band[1]))
        self.order = int(order)
        freqs = np.fft.rfftfreq(self.n_samples, 1.0 / self.sample_rate)
        gain = np.ones_like(freqs) if self.band is None else bandpass_gain(freqs, self.sample_rate, self.band,
                                                                           self.order)
        self.register_buffer("window", torch.as_tensor(tukey(self.n_samples, self.alpha), dtype=torch.float64))
        self.register_buffer("gain", torch.as_tensor(gain, dtype=torch.float64))
        self.register_buffer("psd", torch.zeros(self.n_detectors, freqs.size, dtype=torch.float64))
        self.register_buffer("n_fit", torch.zeros((), dtype=torch.int64))

    def config(self) -> dict:
        """Constructor arguments, JSON-ready (store them beside the state to rebuild the module)."""
        return dict(sample_rate=self.sample_rate, n_samples=self.n_samples, n_detectors=self.n_detectors,
                    alpha=self.alpha, band=None if self.band is None else list(self.band), order=self.order)

    @property
    def fitted(self) -> bool:
        return int(self.n_fit) > 0

    def _check(self, strain: Tensor) -> None:
        if strain.ndim != 3 or strain.shape[1:] != (self.n_detectors, self.n_samples):
            raise ValueError(f"expected strain of shape (batch, {self.n_detectors}, {self.n_samples}), "
                             f"got {tuple(strain.shape)}")

    @torch.no_grad()
    def partial_fit(self, strain: np.ndarray | Tensor) -> "Whitener":
        """Add noise-only series (B, C, n) to the running average PSD."""
        strain = torch.as_tensor(strain)
        self._check(strain)
        b = strain.shape[0]
        if b == 0:
            return self
        psd = periodogram_psd(strain, self.sample_rate, self.window).mean(0)
        n0 = int(self.n_fit)
        self.psd.mul_(n0 / (n0 + b)).add_(psd * (b / (n0 + b)))
        self.n_fit.fill_(n0 + b)
        return self

    def fit(self, strain: np.ndarray | Tensor, batch_size: int = 1024) -> "Whitener":
        """Fit the PSD: the average periodogram of the Tukey-windowed NOISE-ONLY training series (B, C, n).

        Never fit on the set you evaluate on: its noise-only samples are chosen by the labels.
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
        """The frequency response applied after the window: gain / sqrt(psd), 0 where the PSD is ~0. (C, n//2+1)."""
        if not self.fitted:
            raise RuntimeError("Whitener is not fitted: call fit() with noise-only training samples, "
                               "or load_state_dict()")
        return inverse_asd(self.psd) * self.gain

    @torch.no_grad()
    def forward(self, strain: StrainTensor) -> StrainTensor:
        """Whitened (and band-passed) strain, same shape; float64 in float64 out, float32 in float32 out."""
        strain = torch.as_tensor(strain)
        self._check(strain)
        resp = self.response()
        dtype = strain.dtype if strain.is_floating_point() else torch.float64
        # strain is ~1e-20 and the PSD ~1e-47: work in float64 so the squares never underflow
        x = strain.to(device=self.window.device, dtype=torch.float64) * self.window
        spec = torch.fft.rfft(x, dim=-1) * resp
        return torch.fft.irfft(spec, n=self.n_samples, dim=-1).to(dtype)

    def whiten(self, strain: np.ndarray) -> np.ndarray:
        """numpy in, numpy out (float64)."""
        return self.forward(torch.as_tensor(np.asarray(strain, dtype=np.float64))).cpu().numpy()

    @classmethod
    def from_state(cls, config: dict, psd: np.ndarray, n_fit: int = 1) -> "Whitener":
        """Rebuild a fitted whitener from :meth:`config` and its PSD (as stored in a prepared set)."""
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
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    f_w, p_w = welch_psd(x, sample_rate, fftlength)
    alpha = min(1.0, 2.0 * taper_s * sample_rate / n)
    spec = np.fft.rfft(x * tukey(n, alpha), axis=-1)
    gain = np.ones_like(freqs) if band is None else bandpass_gain(freqs, sample_rate, band, order)
    out = np.zeros_like(x)
    for k in range(x.shape[0]):
        if not np.any(x[k]):
            continue
        inv = inverse_asd(np.interp(freqs, f_w, p_w[k]))
        out[k] = np.fft.irfft(spec[k] * inv * gain, n=n)
    out = out.reshape(np.shape(strain))
    return (out, f_w, p_w) if return_psd else out


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
