"""The near-optimal reference: a coincident matched-filter search with an aligned-spin template bank.

For each 2-s sample and each detector the data are Tukey-windowed, zero-padded to 4 s and correlated in the
frequency domain with every template, weighted by 1 / S(f) of the TRAINING noise PSD over 20-1000 Hz. The
correlation is complex (the template and its quadrature), so its modulus is maximised over the coalescence
phase; it is normalised by the template's noise-weighted energy inside the window at that lag, so for
Gaussian noise |snr|^2 is close to chi^2 with 2 degrees of freedom at every lag.

Detectors are combined within the light-travel windows: for every H1 time t in the merger window (plus the
largest geocentre-to-H1 delay), rho_net^2(t) = |snr_H1(t)|^2 + max_{|d| <= 10.0 ms} |snr_L1(t + d)|^2 +
max_{|d| <= 27.3 ms} |snr_V1(t + d)|^2; the score is sqrt of the largest rho_net^2 over times and templates.

Shapes: strain batches (N, 3, 4096) raw strain at 2048 Hz; PSDs (3, 2049) one-sided in 1/Hz, on the rfft grid
of one sample (what :class:`~astrocnn.gw.whitening.Whitener` fits).
"""
from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from astrocnn.gw.simulate import SAMPLE_RATE, N_SAMPLES, DETECTORS, light_travel_time, polarizations, SourceParameters
from astrocnn.gw.whitening import Whitener, tukey

log = logging.getLogger(__name__)

PRE_MERGER_S = 2.0  # template length kept before the merger: a window never holds more
POST_MERGER_S = 0.25  # the longest ringdown in the prior (~200 Msun) is over well within this
# Correlations run on a circular buffer of 3 s. A 2-s sample against a template spanning [-2, +0.25] s gives
# products at lags in (-0.25, 4) s; aliasing needs a lag L away from one we read, and we read lags in
# ~[1.4, 2.0] s, so any L > 2.6 s is exact. 3 s = 6144 samples keeps the FFT size smooth (3 x 2^11).
BUFFER_S = 3.0
MERGER_WINDOW = (1.5, 1.9)
MAX_GEOCENTRE_DELAY_S = 0.0215  # Earth radius / c, rounded up: the largest geocentre-to-detector delay


@dataclass
class TemplateBank:
    """Time-domain templates (h+ of a face-on source, phase 0), merger at index 0 and the inspiral wrapped to the
    end of a circular buffer of ``BUFFER_S`` seconds, so correlating a zero-padded sample is a linear correlation
    at the lags the search reads.

    mass1, mass2 (solar masses), spin1z, spin2z: (T,) arrays; waveforms: (T, buffer samples) float64.
    """

    mass1: np.ndarray
    mass2: np.ndarray
    spin1z: np.ndarray
    spin2z: np.ndarray
    waveforms: np.ndarray
    sample_rate: float = SAMPLE_RATE
    n_samples: int = N_SAMPLES
    approximant: str = "IMRPhenomD"

    def __len__(self) -> int:
        return len(self.mass1)

    @property
    def buffer_length(self) -> int:
        return self.waveforms.shape[-1]

    @property
    def chirp_mass(self) -> np.ndarray:
        return (self.mass1 * self.mass2) ** 0.6 / (self.mass1 + self.mass2) ** 0.2

    def describe(self) -> dict:
        mc = self.chirp_mass
        return dict(n_templates=len(self), approximant=self.approximant,
                    chirp_mass=[float(mc.min()), float(mc.max())],
                    mass_ratios=sorted({round(float(q), 3) for q in self.mass2 / self.mass1}),
                    spins=sorted({round(float(s), 3) for s in self.spin1z}))


def _masses(chirp_mass: float, q: float) -> tuple[float, float]:
    """Component masses (m1 >= m2) of chirp mass ``chirp_mass`` and mass ratio q = m2 / m1 <= 1."""
    m1 = chirp_mass * (1.0 + q) ** 0.2 / q ** 0.6
    return m1, q * m1


def template_waveform(m1: float, m2: float, s1z: float, s2z: float, approximant: str = "IMRPhenomD",
                      sample_rate: float = SAMPLE_RATE, n_samples: int = N_SAMPLES, f_low: float = 20.0) -> np.ndarray:
    """One template as the bank holds it: h+ of a face-on source at phase 0, the merger at index 0, at most
    ``PRE_MERGER_S`` of inspiral wrapped to the end of a ``BUFFER_S`` circular buffer: (buffer samples,) float64."""
    params = SourceParameters(mass1=m1, mass2=m2, spin1x=0.0, spin1y=0.0, spin1z=s1z, spin2x=0.0, spin2y=0.0,
                              spin2z=s2z, inclination=0.0, coa_phase=0.0, ra=0.0, dec=0.0, polarization=0.0,
                              t_merger=0.0)
    hp, _, epoch = polarizations(params, approximant, sample_rate, f_low)
    length = int(round(BUFFER_S * sample_rate))
    out = np.zeros(length)
    t = epoch + np.arange(len(hp)) / sample_rate  # time of each sample relative to the merger
    keep = (t >= -PRE_MERGER_S) & (t < POST_MERGER_S)
    idx = np.round(t[keep] * sample_rate).astype(np.int64) % length
    h = hp[keep].copy()
    # soften the cut at -2 s so its edge does not ring through the whitening filter into the window
    n_taper = int(0.1 * sample_rate)
    if t[0] < -PRE_MERGER_S and h.size > n_taper:
        h[:n_taper] *= 0.5 * (1 - np.cos(np.pi * np.arange(n_taper) / n_taper))
    out[idx] = h
    return out


def default_chirp_masses(n: int = 28, low: float = 4.0, high: float = 90.0, power: float = -5.0 / 6.0) -> np.ndarray:
    """``n`` chirp masses from ``low`` to ``high`` (solar masses), evenly spaced in chirp_mass**power.

    The phase of an inspiral goes as chirp_mass**(-5/3): templates must be dense at low chirp mass and can be
    sparse at high; spacing in chirp_mass**(-5/6) splits the difference for 2-s windows.
    """
    a, b = low ** power, high ** power
    return np.sort(np.linspace(a, b, n) ** (1.0 / power))


@functools.lru_cache(maxsize=8)
def _bank_cached(chirp_masses: tuple, mass_ratios: tuple, spins: tuple, approximant: str, sample_rate: float,
                 n_samples: int, f_low: float, explicit: tuple) -> TemplateBank:
    rows = list(explicit) or [(*_masses(mc, q), s, s) for mc in chirp_masses for q in mass_ratios for s in spins]
    waves = np.stack([template_waveform(m1, m2, s1, s2, approximant, sample_rate, n_samples, f_low) for m1, m2, s1, s2 in rows])
    r = np.array(rows, dtype=np.float64)
    return TemplateBank(mass1=r[:, 0], mass2=r[:, 1], spin1z=r[:, 2], spin2z=r[:, 3], waveforms=waves,
                        sample_rate=sample_rate, n_samples=n_samples, approximant=approximant)


def make_template_bank(
    chirp_masses: Sequence[float] | None = None,
    mass_ratios: Sequence[float] = (1.0, 0.5, 0.25),
    spins: Sequence[float] = (-0.5, 0.0, 0.5),
    approximant: str = "IMRPhenomD",
    sample_rate: float = SAMPLE_RATE,
    n_samples: int = N_SAMPLES,
    f_low: float = 20.0,
    templates: Sequence[tuple[float, float, float, float]] | None = None,
) -> TemplateBank:
    """An aligned-spin template bank: every (chirp mass, mass ratio m2/m1, equal aligned spins) combination.

    Default: 28 chirp masses from 4 to 90 Msun (:func:`default_chirp_masses`) x 3 mass ratios x 3 spins =
    252 IMRPhenomD templates. ``templates`` gives explicit (m1, m2, spin1z, spin2z) rows instead (e.g. the
    true parameters of an injection). Cached per process.
    """
    mcs = tuple(float(m) for m in (default_chirp_masses() if chirp_masses is None else chirp_masses))
    explicit = tuple(tuple(float(v) for v in row) for row in (templates or ()))
    for row in explicit:
        if len(row) != 4:
            raise ValueError(f"templates rows are (m1, m2, spin1z, spin2z), got {row}")
    return _bank_cached(mcs, tuple(float(q) for q in mass_ratios), tuple(float(s) for s in spins), approximant,
                        float(sample_rate), int(n_samples), float(f_low), explicit)


# ---------------------------------------------------------------------------------------------- filtering

def _weights(psd: np.ndarray, sample_rate: float, n_samples: int, length: int, band: tuple[float, float]) -> np.ndarray:
    """2 / (fs S(f)) on the rfft grid of the ``length``-sample buffer inside ``band`` (0 outside): the whitening
    filter squared, so whitened noise has unit variance per sample and sums over time are noise-weighted
    inner products. ``psd`` (C, n_samples // 2 + 1) is interpolated linearly onto the finer grid."""
    psd = np.asarray(psd, dtype=np.float64)
    f_in = np.fft.rfftfreq(n_samples, 1.0 / sample_rate)
    if psd.ndim != 2 or psd.shape[1] != f_in.size:
        raise ValueError(f"psd must have shape (n_detectors, {f_in.size}) (the rfft grid of one sample), got {psd.shape}")
    f = np.fft.rfftfreq(length, 1.0 / sample_rate)
    w = np.zeros((psd.shape[0], f.size))
    inside = (f >= band[0]) & (f <= band[1])
    for k in range(psd.shape[0]):
        s = np.interp(f, f_in, psd[k])
        ok = inside & (s > 0)
        w[k, ok] = 2.0 / (sample_rate * s[ok])
    return w


@dataclass
class _Prepared:
    spec: torch.Tensor  # (C, T, L/2) complex64: weight * conj(template spectrum), bins 0 .. L/2 - 1
    sigma2: torch.Tensor  # (C, T, n_lag) template energy inside the window at each lag
    w_scale: torch.Tensor  # (C,) float64: |snr|^2 of the scaled weights is multiplied by this
    lags: np.ndarray  # (n_lag,) sample index of the merger in the window
    window: torch.Tensor  # (n,) data taper
    length: int  # circular buffer length L
    lag_step: int  # 1: every sample; 2: every second sample (half the cost, up to ~2% SNR lost between lags)


def _prepare(bank: TemplateBank, psd: np.ndarray, band: tuple[float, float], alpha: float,
             lag_range: tuple[int, int], lag_step: int = 1, whitened: bool = False) -> _Prepared:
    n = bank.n_samples
    length = bank.buffer_length
    half = length // 2
    w = _weights(psd, bank.sample_rate, n, length, band)  # (C, F): 2 / (fs S), the noise weighting
    # Raw data are weighted by 2 / (fs S). Data already whitened by S (divided by sqrt(S)) only need the other
    # half of the whitening, 2 / (fs sqrt(S)) = sqrt(2 / fs) * sqrt(w); the normalisation is the same.
    w_data = np.sqrt(w * 2.0 / bank.sample_rate) if whitened else w
    # work with weights and templates scaled to ~1 so float32 holds them (a PSD of 1e-47 /Hz gives weights of
    # 1e44); |z|^2 / sigma^2 scales as d_scale^2 / w_scale, multiplied back in float64 at the end
    w_scale = w.max(axis=1)
    w_scale[w_scale == 0] = 1.0
    d_scale = w_data.max(axis=1)
    d_scale[d_scale == 0] = 1.0
    w = w / w_scale[:, None]
    w_data = w_data / d_scale[:, None]
    waves = bank.waveforms / np.maximum(np.abs(bank.waveforms).max(axis=1, keepdims=True), 1e-300)
    h_spec = np.fft.rfft(waves, axis=-1)  # (T, F)
    spec = (np.conj(h_spec)[None] * w_data[:, None, :])[..., :half]
    spec[..., 0] = 0.0
    lags = np.arange(lag_range[0], lag_range[1], lag_step)
    # Template energy seen through the (squared) data taper at each lag: the whitened template's analytic
    # signal |h_a|^2 = h^2 + hilbert(h)^2, correlated with window^2, halved.
    win = tukey(n, alpha)
    win2_spec = np.fft.fft(np.r_[win ** 2, np.zeros(length - n)])
    sigma2 = np.empty((w.shape[0], len(bank), lags.size))
    for c in range(w.shape[0]):
        full = np.zeros((len(bank), length), dtype=np.complex128)
        full[:, 1:half] = 2.0 * h_spec[:, 1:half] * np.sqrt(w[c, 1:half])
        energy = np.abs(np.fft.ifft(full, axis=-1)) ** 2  # (T, L)
        # sum_t win^2(t) energy(t - lag) for every lag: a circular cross-correlation
        corr = np.fft.ifft(win2_spec[None] * np.conj(np.fft.fft(energy, axis=-1)), axis=-1).real
        sigma2[c] = 0.5 * corr[:, lags % length]
    floor = 1e-12 * max(float(sigma2.max()), 1e-300)  # lags where a template barely touches the window
    return _Prepared(spec=torch.as_tensor(spec, dtype=torch.complex64),
                     sigma2=torch.as_tensor(np.maximum(sigma2, floor), dtype=torch.float32),
                     w_scale=torch.as_tensor(d_scale ** 2 / w_scale, dtype=torch.float64),
                     lags=lags, window=torch.as_tensor(win, dtype=torch.float64), length=length, lag_step=lag_step)


def matched_filter_snr(strain: np.ndarray, psd: np.ndarray, bank: TemplateBank, prepared: _Prepared | None = None,
                       band: tuple[float, float] = (20.0, 1000.0), alpha: float = 0.1,
                       lag_range: tuple[int, int] | None = None, lag_step: int = 1,
                       whitened: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """|snr|^2 per detector, template and lag: ((N, C, T, n_lag) float32, lags (n_lag,) in samples).

    ``lag_range`` (first, last + 1) in samples of the window: where the merger may be (default: anywhere).
    """
    if prepared is None:
        prepared = _prepare(bank, psd, band, alpha, lag_range or (0, bank.n_samples), lag_step, whitened)
    x = torch.as_tensor(np.asarray(strain, dtype=np.float64))
    if x.ndim != 3 or x.shape[-1] != bank.n_samples or x.shape[1] != prepared.spec.shape[0]:
        raise ValueError(f"strain must be (N, {prepared.spec.shape[0]}, {bank.n_samples}), got {tuple(x.shape)}")
    length = prepared.length
    half = length // 2
    # scale out the ~1e-20 strain so the float32 products keep their precision; undone below
    scale = float(x.abs().max()) or 1.0
    data = torch.fft.rfft(x / scale * prepared.window, n=length, dim=-1)[..., :half].to(torch.complex64)
    prod = data[:, :, None, :] * prepared.spec[None]  # (N, C, T, L/2)
    # The analytic correlation z(m) = (1/L) sum_{k < L/2} 2 D_k W_k conj(H_k) e^{2 pi i k m / L} is the
    # noise-weighted inner product of the data with the template (real part) and its quadrature (imaginary
    # part) with the merger at lag m. It has only positive frequencies, so even lags m = 2j come from a
    # half-length inverse FFT without aliasing, ifft_{L/2}(D W conj(H))[j], and odd lags from the same after
    # a one-sample twiddle: two half-length FFTs and no zero padding.
    lags = torch.as_tensor(prepared.lags)
    z = torch.empty(prod.shape[:-1] + (lags.numel(),), dtype=torch.complex64)
    even = lags % 2 == 0
    if even.any():
        z[..., even] = torch.fft.ifft(prod, dim=-1)[..., lags[even] // 2 % half]
    if (~even).any():
        twiddle = torch.exp(2j * torch.pi * torch.arange(half, dtype=torch.float64) / length).to(torch.complex64)
        z[..., ~even] = torch.fft.ifft(prod * twiddle, dim=-1)[..., lags[~even] // 2 % half]
    snr2 = (z.real ** 2 + z.imag ** 2) / prepared.sigma2[None]
    snr2 = (snr2.to(torch.float64) * (scale ** 2 * prepared.w_scale)[None, :, None, None]).to(torch.float32)
    return snr2.numpy(), prepared.lags


def _pool(x: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return x
    shape = x.shape
    y = torch.nn.functional.max_pool1d(x.reshape(-1, 1, shape[-1]), 2 * radius + 1, stride=1, padding=radius)
    return y.reshape(shape)


class CoincidentSearch:
    """The coincident matched-filter search, prepared once for a bank and a PSD and reused across batches.

    ``psd`` (3, 2049) in 1/Hz is the TRAINING noise PSD; ``bank`` defaults to :func:`make_template_bank`.
    ``whitened``: the samples were already whitened by ``psd`` (divided by its square root, as
    :func:`~astrocnn.gw.whitening.whiten_long_segment` does for long real segments, without band-pass), so
    only the templates are whitened here. ``merger_window`` (s in the window) is where the merger may be at
    the Earth's centre; ``lag_step`` 2 halves the cost for up to ~2% SNR lost between lags.
    """

    def __init__(
        self,
        psd: np.ndarray,
        bank: TemplateBank | None = None,
        *,
        merger_window: tuple[float, float] = MERGER_WINDOW,
        band: tuple[float, float] = (20.0, 1000.0),
        alpha: float = 0.1,
        detectors: Sequence[str] = DETECTORS,
        lag_step: int = 1,
        whitened: bool = False,
    ):
        if lag_step not in (1, 2):
            raise ValueError(f"lag_step must be 1 or 2, got {lag_step}")
        self.bank = bank or make_template_bank()
        self.psd = np.asarray(psd, dtype=np.float64)
        if self.psd.shape[0] != len(detectors):
            raise ValueError(f"psd has {self.psd.shape[0]} rows for {len(detectors)} detectors")
        fs = self.bank.sample_rate
        self.detectors = tuple(detectors)
        # coincidence radii (in lag steps) around the first detector's time: the light travel times
        self.radii = [0] + [int(math.ceil(light_travel_time(detectors[0], d) * fs / lag_step)) for d in detectors[1:]]
        lo_t = merger_window[0] - MAX_GEOCENTRE_DELAY_S
        hi_t = merger_window[1] + MAX_GEOCENTRE_DELAY_S
        r_max = max(self.radii)
        lag_lo = max(0, int(math.floor(lo_t * fs)) - lag_step * (r_max + 1))
        lag_hi = min(self.bank.n_samples, int(math.ceil(hi_t * fs)) + lag_step * (r_max + 1))
        self.prepared = _prepare(self.bank, self.psd, band, alpha, (lag_lo, lag_hi), lag_step, whitened)
        lags = self.prepared.lags
        self.core_idx = torch.as_tensor(np.nonzero((lags >= lo_t * fs) & (lags <= hi_t * fs))[0])
        self.band, self.alpha = band, alpha

    def optimal_snr(self, signal: np.ndarray) -> np.ndarray:
        """Optimal SNR (N, C) of noiseless ``signal`` (N, C, 4096) under this search's noise weighting, band and
        data taper: the largest |snr| any template could give it, so score / sqrt(sum of squares) is the
        fitting factor of the bank for that signal (:func:`astrocnn.gw.bank.fitting_factors`)."""
        x = np.asarray(signal, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        length = self.bank.buffer_length
        w = _weights(self.psd, self.bank.sample_rate, self.bank.n_samples, length, self.band)
        win = tukey(self.bank.n_samples, self.alpha)
        spec = np.fft.rfft(x * win, n=length, axis=-1)[..., : length // 2]
        # the filter's inner product (2 / L) sum_k w_k |D_k|^2 over the positive bins it uses (the DC bin is 0)
        power = (spec.real ** 2 + spec.imag ** 2)[..., 1:] * w[None, :, 1: length // 2]
        return np.sqrt(2.0 / length * power.sum(axis=-1))

    def scores(self, strain: np.ndarray, batch_size: int = 8, return_details: bool = False
               ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
        """Network score (a network SNR) of each sample of ``strain`` (N, 3, 4096): (N,) float64.

        With ``return_details`` also ``template`` (index of the best template), ``time`` (its merger time in
        the first detector, s in the window) and ``detector_snr`` (N, 3) (|snr| of each detector at the
        maximum, the others maximised within their light-travel window).
        """
        strain = np.asarray(strain)
        if strain.ndim == 2:
            strain = strain[None]
        n = len(strain)
        fs = self.bank.sample_rate
        scores = np.empty(n)
        best_t = np.empty(n, dtype=np.int64)
        best_time = np.empty(n)
        best_det = np.empty((n, len(self.detectors)))
        t0 = time.perf_counter()
        for lo in range(0, n, batch_size):
            snr2, lags = matched_filter_snr(strain[lo: lo + batch_size], self.psd, self.bank, self.prepared)
            s = torch.as_tensor(snr2)  # (B, C, T, n_lag)
            pooled = [_pool(s[:, c], self.radii[c]) for c in range(s.shape[1])]
            net = sum(pooled)[..., self.core_idx]  # (B, T, n_core)
            val, arg = net.reshape(net.shape[0], -1).max(dim=1)
            b = len(val)
            scores[lo: lo + b] = np.sqrt(val.numpy().astype(np.float64))
            if return_details:
                tpl = (arg // net.shape[-1]).numpy()
                lag_i = self.core_idx[(arg % net.shape[-1])].numpy()
                best_t[lo: lo + b] = tpl
                best_time[lo: lo + b] = lags[lag_i] / fs
                for c in range(s.shape[1]):
                    best_det[lo: lo + b, c] = np.sqrt(pooled[c][np.arange(b), tpl, lag_i].numpy())
        log.debug("matched filter: %d samples x %d templates in %.1f s", n, len(self.bank), time.perf_counter() - t0)
        if return_details:
            return scores, dict(template=best_t, time=best_time, detector_snr=best_det)
        return scores


def matched_filter_scores(
    strain: np.ndarray,
    psd: np.ndarray,
    bank: TemplateBank | None = None,
    *,
    merger_window: tuple[float, float] = MERGER_WINDOW,
    band: tuple[float, float] = (20.0, 1000.0),
    alpha: float = 0.1,
    batch_size: int = 8,
    detectors: Sequence[str] = DETECTORS,
    lag_step: int = 1,
    whitened: bool = False,
    return_details: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Network matched-filter score of each sample: (N,) float64, a network SNR.

    ``strain`` (N, 3, 4096) raw at 2048 Hz; ``psd`` (3, 2049) in 1/Hz, the TRAINING noise PSD. The other
    arguments are those of :class:`CoincidentSearch`; to score many batches, build one and reuse it.
    """
    search = CoincidentSearch(psd, bank, merger_window=merger_window, band=band, alpha=alpha, detectors=detectors,
                              lag_step=lag_step, whitened=whitened)
    return search.scores(strain, batch_size=batch_size, return_details=return_details)
