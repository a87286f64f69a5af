"""Simulated G2Net-like strain: three detectors, 2 s at 2048 Hz, noise with or without a BBH signal.

Kaggle's G2Net set was itself simulated and its generator was never published; this module rebuilds an
equivalent one from the facts in the design notes (``design/gw-simulation.md``):

* waveforms from lalsimulation (IMRPhenomPv2 by default, IMRPhenomD as an option), generated in the time
  domain at 2048 Hz from ``F_LOW`` = 20 Hz;
* projection onto H1, L1 and V1 with LAL's detector tensors and positions (``lal.CachedDetectors``), with the
  arrival delays applied in the frequency domain so they are not rounded to whole samples;
* stationary Gaussian noise coloured by the design curves (``aLIGODesignSensitivityP1200087`` for H1/L1,
  ``AdVDesignSensitivityP1200087`` for V1), plus the large 10-15 Hz bump the real G2Net H1/L1 noise shows;
  the noise is drawn on a 4-s segment and the middle 2 s are kept, so it has no periodic edge;
* each signal rescaled to a drawn network optimal SNR (20-1000 Hz, against the same PSDs), lognormal with
  median 8 and sigma 0.5 by default;
* with ``noise="varied"``, every detector of every sample gets its own PSD around the design curve (scale,
  tilt, bumps, spectral lines: :mod:`~astrocnn.gw.noise_variation`), so a network trained on it does not
  learn one noise curve; the noise is drawn from, and the SNRs measured against, the sample's own PSD.

Time conventions
----------------
A sample covers window time ``t`` in [0, 2) s. ``t_merger`` is where the waveform's reference time (t = 0 of
lalsimulation's time-domain output, the amplitude peak for the Phenom models) falls at the Earth's centre;
each detector sees it ``time_delay_from_geocenter`` later. The sky is fixed to the Earth at one reference
GPS time, ``GPS_REFERENCE`` (the window starts there): since right ascension is drawn uniformly, drawing the
GPS time as well would only rotate the same isotropic sky, so one time loses nothing and keeps samples cheap.

The injected SNR (truth ``snr``) is the optimal SNR of the part of the signal that lies inside the 2-s window,
computed from a plain FFT of the window, 20-1000 Hz, with the same PSD the noise is drawn from. What a
network sees is less: the whitener's band-pass stops at 500 Hz and the window cuts the signal's whitened
response at its ends. Truth ``snr_seen`` is that: :func:`~astrocnn.gw.whitening.whitened_snr` of the
injected signal through a default :class:`~astrocnn.gw.whitening.Whitener` with the sample's own PSD (the
network SNR of exactly what the network is given); it is the SNR the readers and the per-SNR tables use.
Sample ``i`` of a set depends only on ``(seed, i)``, so any number of workers writes the same bytes.
"""
from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from astrocnn.core.errors import require
from astrocnn.core.io import atomic_path, write_text_atomic
from astrocnn.core.parallel import map_ordered
from astrocnn.gw.noise_variation import VariationPrior, draw_variation, varied_psd
from astrocnn.gw.whitening import whitened_snr, whitening_filter

log = logging.getLogger(__name__)

DETECTORS = ("H1", "L1", "V1")
SAMPLE_RATE = 2048.0
N_SAMPLES = 4096  # 2 s
F_LOW = 20.0  # waveform start frequency (Hz)
SNR_BAND = (20.0, 1000.0)  # band of the optimal SNR (Hz)
MERGER_WINDOW = (1.5, 1.9)  # geocentre merger time inside the window (s)
MASS_RANGE = (5.0, 100.0)  # component masses (solar masses)
SPIN_MAX = 0.99
GPS_REFERENCE = 1_200_000_000  # GPS time of the window start; see the module docstring
REFERENCE_DISTANCE_MPC = 100.0  # waveforms are generated here, then rescaled to the drawn SNR
APPROXIMANTS = ("IMRPhenomPv2", "IMRPhenomD")
NOISE_KINDS = ("design", "varied")  # one PSD for every sample; a PSD drawn per sample and detector

# Signals and noise are built on a segment twice the window and the middle is kept: the noise then has no
# periodic edge, and the start of a long inspiral cut by the segment can be tapered outside the window.
_SEGMENT = 2 * N_SAMPLES
_KEEP = N_SAMPLES // 2
_TAPER_S = 0.25

# Noise below ~9.7 Hz is cut sharply in the real G2Net samples (their H1/L1/V1 spectra fall by >1e3 in ASD
# between 9.5 and 8 Hz); a steep power-law edge reproduces that and removes the design tables' extrapolated
# values below their first tabulated frequency.
EDGE_HZ = 9.7
EDGE_POWER = 40
# The 10-15 Hz bump of G2Net's H1/L1 noise: amplitude spectral density (1/sqrt(Hz)) added in power to the
# design curve. Read off the average Blackman-Harris periodogram of the 10 noise-only real G2Net samples in
# shared/data/g2net (design curve subtracted), then scaled by _BUMP_SCALE so the raw per-detector standard
# deviation of simulated H1/L1 noise is the competition's ~7.4e-21. Above 23 Hz the real noise follows the
# design curve.
_BUMP_F = np.array([8.5, 9.0, 9.5, 10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0, 14.5, 15.0,
                    15.5, 16.0, 17.0, 18.0, 19.0, 20.0, 21.0, 22.0, 23.0])
_BUMP_ASD = np.array([4.0e-22, 1.6e-21, 3.1e-21, 4.0e-21, 4.0e-21, 3.3e-21, 2.5e-21, 2.05e-21, 1.7e-21,
                      1.75e-21, 2.0e-21, 1.95e-21, 1.6e-21, 9.0e-22, 4.6e-22, 3.2e-22, 1.85e-22, 9.0e-23,
                      6.0e-23, 3.8e-23, 2.4e-23, 1.4e-23, 5.0e-24])
_BUMP_SCALE = 1.18
# V1 shows no bump, but its real spectrum sits ~1.1-1.4x above the design ASD between 10 and 16 Hz; this
# ASD factor (1 above 25 Hz) brings the raw V1 standard deviation to the competition's ~1.8e-21.
_V1_EXCESS_F = np.array([10.0, 16.0, 25.0])
_V1_EXCESS_ASD = np.array([1.13, 1.13, 1.0])

_C_SI = 299792458.0
_MSUN_SI = 1.988409870698050731911960804878414216e30
_MPC_SI = 3.085677581491367278913937957796471611e22

_DESIGN_CURVES = {
    "H1": "SimNoisePSDaLIGODesignSensitivityP1200087",
    "L1": "SimNoisePSDaLIGODesignSensitivityP1200087",
    "V1": "SimNoisePSDAdVDesignSensitivityP1200087",
}


def _lal():
    """lal and lalsimulation (the optional ``gw`` extra): one line naming the extra when they are missing."""
    return (require("lal", "gw", "simulating gravitational-wave strain"),
            require("lalsimulation", "gw", "simulating gravitational-wave strain"))


# ---------------------------------------------------------------------------------------------- detectors

@dataclass(frozen=True)
class DetectorGeometry:
    """A detector as LAL describes it: response tensor (3, 3), dimensionless; position (3,) in m, Earth-fixed."""

    name: str
    response: np.ndarray
    location: np.ndarray


@functools.lru_cache(maxsize=None)
def detector_geometry(name: str) -> DetectorGeometry:
    """LAL's cached detector ``name`` ("H1", "L1", "V1", ...) as arrays, read once per process."""
    lal, _ = _lal()
    for det in lal.CachedDetectors:
        if det.frDetector.prefix == name:
            response = np.array(det.response, dtype=np.float64)
            location = np.array(det.location, dtype=np.float64)
            response.setflags(write=False)
            location.setflags(write=False)
            return DetectorGeometry(name, response, location)
    raise ValueError(f"unknown detector {name!r}; LAL knows {[d.frDetector.prefix for d in lal.CachedDetectors]}")


@functools.lru_cache(maxsize=64)
def gmst(gps: float) -> float:
    """Greenwich mean sidereal time (rad) at GPS time ``gps`` (s), from LAL."""
    lal, _ = _lal()
    return float(lal.GreenwichMeanSiderealTime(gps))


def antenna_patterns(detector: str, ra, dec, psi, gmst_rad) -> tuple[np.ndarray, np.ndarray]:
    """Antenna patterns (F+, Fx) of ``detector`` for sources at (ra, dec) rad with polarisation angle ``psi``.

    Vectorised over broadcastable arrays; the same algebra as ``lal.ComputeDetAMResponse`` (which the tests
    compare against), written with numpy so a batch costs one call.
    """
    d = detector_geometry(detector).response
    ra, dec, psi = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (ra, dec, psi)))
    gha = gmst_rad - ra
    cg, sg = np.cos(gha), np.sin(gha)
    cd, sd = np.cos(dec), np.sin(dec)
    cp, sp = np.cos(psi), np.sin(psi)
    x = np.stack([-cp * sg - sp * cg * sd, -cp * cg + sp * sg * sd, sp * cd])
    y = np.stack([sp * sg - cp * cg * sd, sp * cg + cp * sg * sd, cp * cd])
    fp = np.einsum("ij,i...,j...->...", d, x, x) - np.einsum("ij,i...,j...->...", d, y, y)
    fc = np.einsum("ij,i...,j...->...", d, x, y) + np.einsum("ij,i...,j...->...", d, y, x)
    return fp, fc


def time_delay_from_geocenter(detector: str, ra, dec, gmst_rad) -> np.ndarray:
    """Arrival time at ``detector`` minus arrival time at the Earth's centre (s), like
    ``lal.TimeDelayFromEarthCenter``; vectorised over ``ra``, ``dec`` (rad)."""
    loc = detector_geometry(detector).location
    ra, dec = np.broadcast_arrays(np.asarray(ra, np.float64), np.asarray(dec, np.float64))
    gha = gmst_rad - ra
    towards_source = np.stack([np.cos(dec) * np.cos(gha), -np.cos(dec) * np.sin(gha), np.sin(dec)])
    return -np.einsum("i,i...->...", loc, towards_source) / _C_SI


def light_travel_time(a: str, b: str) -> float:
    """Light travel time between two detectors (s): the largest possible arrival-time difference."""
    return float(np.linalg.norm(detector_geometry(a).location - detector_geometry(b).location) / _C_SI)


# ---------------------------------------------------------------------------------------------- noise

def _edge(freqs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", over="ignore"):
        ratio = np.where(freqs > 0, EDGE_HZ / np.maximum(freqs, 1e-300), np.inf)
        return 1.0 / (1.0 + ratio ** EDGE_POWER)


def bump_psd(freqs: np.ndarray) -> np.ndarray:
    """The H1/L1 10-15 Hz bump as a one-sided PSD (1/Hz) at ``freqs`` (Hz); zero outside 8.5-23 Hz."""
    freqs = np.asarray(freqs, dtype=np.float64)
    inside = (freqs >= _BUMP_F[0]) & (freqs <= _BUMP_F[-1])
    out = np.zeros_like(freqs)
    log_asd = np.interp(freqs[inside], _BUMP_F, np.log(_BUMP_ASD))
    out[inside] = (_BUMP_SCALE * np.exp(log_asd)) ** 2
    return out


@functools.lru_cache(maxsize=32)
def noise_psd(detector: str, n: int = N_SAMPLES, sample_rate: float = SAMPLE_RATE, bump: bool = True) -> np.ndarray:
    """One-sided noise PSD (1/Hz) of ``detector`` on the rfft grid of ``n`` samples at ``sample_rate``.

    The design curve (LIGO-P1200087, shipped in lalsimulation) with the low-frequency edge, plus for H1/L1
    the 10-15 Hz bump when ``bump`` (for V1, ``bump`` adds the mild 10-16 Hz excess instead).
    Shape (n // 2 + 1,), read-only, cached per process.
    """
    lal, lalsim = _lal()
    df = sample_rate / n
    series = lal.CreateREAL8FrequencySeries("psd", 0, 0.0, df, lal.DimensionlessUnit, n // 2 + 1)
    getattr(lalsim, _DESIGN_CURVES[detector])(series, df)
    freqs = np.arange(n // 2 + 1) * df
    psd = np.array(series.data.data, dtype=np.float64) * _edge(freqs)
    if bump and detector in ("H1", "L1"):
        psd = psd + bump_psd(freqs)
    elif bump and detector == "V1":
        psd = psd * np.interp(freqs, _V1_EXCESS_F, _V1_EXCESS_ASD) ** 2
    psd[0] = 0.0
    psd.setflags(write=False)
    return psd


def network_psd(n: int = N_SAMPLES, sample_rate: float = SAMPLE_RATE, bump: bool = True,
                detectors: Sequence[str] = DETECTORS) -> np.ndarray:
    """Stacked :func:`noise_psd` of ``detectors``: (len(detectors), n // 2 + 1), 1/Hz."""
    return np.stack([noise_psd(d, n, sample_rate, bump) for d in detectors])


@functools.lru_cache(maxsize=8)
def _noise_amplitude(n_segment: int, sample_rate: float, bump: bool, detectors: tuple[str, ...]) -> np.ndarray:
    # E|X_k|^2 = n fs S_k / 2 for numpy's unnormalised rfft; half of it in each of the real and imaginary parts
    amp = np.sqrt(network_psd(n_segment, sample_rate, bump, detectors) * n_segment * sample_rate / 4.0)
    amp.setflags(write=False)
    return amp


def simulate_noise(rng: np.random.Generator, n: int = N_SAMPLES, sample_rate: float = SAMPLE_RATE,
                   bump: bool = True, detectors: Sequence[str] = DETECTORS, psd: np.ndarray | None = None) -> np.ndarray:
    """Stationary Gaussian noise coloured by :func:`noise_psd`: (len(detectors), n) float64 strain.

    Drawn in the frequency domain on 2n samples and the middle n kept, so the series is not periodic.
    ``psd`` (len(detectors), n + 1) in 1/Hz, on the rfft grid of those 2n samples, replaces the design curves.
    """
    if psd is None:
        amp = _noise_amplitude(2 * n, float(sample_rate), bool(bump), tuple(detectors))
    else:
        amp = np.sqrt(np.asarray(psd, dtype=np.float64) * 2 * n * sample_rate / 4.0)
    g = rng.standard_normal((2,) + amp.shape)
    spec = amp * (g[0] + 1j * g[1])
    spec[:, -1] = spec[:, -1].real * math.sqrt(2.0)  # the Nyquist bin of a real series is real
    series = np.fft.irfft(spec, n=2 * n, axis=-1)
    return np.ascontiguousarray(series[:, n // 2: n // 2 + n])


# ---------------------------------------------------------------------------------------------- sources

@dataclass
class SourceParameters:
    """The 15 source parameters of one binary black hole (masses in solar masses, angles in rad, time in s).

    Distance is not drawn: the signal is rescaled to a drawn SNR, and the distance that implies is reported.
    """

    mass1: float
    mass2: float
    spin1x: float
    spin1y: float
    spin1z: float
    spin2x: float
    spin2y: float
    spin2z: float
    inclination: float
    coa_phase: float
    ra: float
    dec: float
    polarization: float
    t_merger: float
    distance_mpc: float = REFERENCE_DISTANCE_MPC

    @property
    def chirp_mass(self) -> float:
        m1, m2 = self.mass1, self.mass2
        return (m1 * m2) ** 0.6 / (m1 + m2) ** 0.2

    @property
    def chi_eff(self) -> float:
        return (self.mass1 * self.spin1z + self.mass2 * self.spin2z) / (self.mass1 + self.mass2)


def _isotropic_spin(rng: np.random.Generator) -> tuple[float, float, float]:
    a = rng.uniform(0.0, SPIN_MAX)
    cos_t = rng.uniform(-1.0, 1.0)
    phi = rng.uniform(0.0, 2 * math.pi)
    sin_t = math.sqrt(max(0.0, 1.0 - cos_t * cos_t))
    return a * sin_t * math.cos(phi), a * sin_t * math.sin(phi), a * cos_t


def draw_parameters(rng: np.random.Generator, approximant: str = "IMRPhenomPv2") -> SourceParameters:
    """Draw a source from the design priors: m1, m2 ~ U(5, 100) (m1 >= m2); isotropic spins with
    |a| ~ U(0, 0.99) for precessing models, aligned U(-0.99, 0.99) for IMRPhenomD; isotropic orientation
    and sky; polarisation U(0, pi); merger time U(1.5, 1.9) s."""
    m = np.sort(rng.uniform(*MASS_RANGE, size=2))[::-1]
    if approximant == "IMRPhenomD":
        s1 = (0.0, 0.0, rng.uniform(-SPIN_MAX, SPIN_MAX))
        s2 = (0.0, 0.0, rng.uniform(-SPIN_MAX, SPIN_MAX))
    else:
        s1 = _isotropic_spin(rng)
        s2 = _isotropic_spin(rng)
    return SourceParameters(
        mass1=float(m[0]), mass2=float(m[1]),
        spin1x=s1[0], spin1y=s1[1], spin1z=s1[2], spin2x=s2[0], spin2y=s2[1], spin2z=s2[2],
        inclination=math.acos(rng.uniform(-1.0, 1.0)),
        coa_phase=rng.uniform(0.0, 2 * math.pi),
        ra=rng.uniform(0.0, 2 * math.pi),
        dec=math.asin(rng.uniform(-1.0, 1.0)),
        polarization=rng.uniform(0.0, math.pi),
        t_merger=rng.uniform(*MERGER_WINDOW),
    )


def polarizations(params: SourceParameters, approximant: str = "IMRPhenomPv2", sample_rate: float = SAMPLE_RATE,
                  f_low: float = F_LOW) -> tuple[np.ndarray, np.ndarray, float]:
    """Time-domain h+ and hx (strain at ``params.distance_mpc``) from lalsimulation, with the time (s) of their
    first sample relative to the waveform's reference time (the merger)."""
    if approximant not in APPROXIMANTS:
        raise ValueError(f"approximant must be one of {APPROXIMANTS}, got {approximant!r}")
    lal, lalsim = _lal()
    p = params
    hp, hc = lalsim.SimInspiralChooseTDWaveform(
        p.mass1 * _MSUN_SI, p.mass2 * _MSUN_SI,
        p.spin1x, p.spin1y, p.spin1z, p.spin2x, p.spin2y, p.spin2z,
        p.distance_mpc * _MPC_SI, p.inclination, p.coa_phase,
        0.0, 0.0, 0.0, 1.0 / sample_rate, f_low, f_low, None,
        lalsim.GetApproximantFromString(approximant),
    )
    return hp.data.data, hc.data.data, float(hp.epoch)


@functools.lru_cache(maxsize=4)
def _segment_grid(sample_rate: float) -> tuple[np.ndarray, np.ndarray]:
    freqs = np.fft.rfftfreq(_SEGMENT, 1.0 / sample_rate)
    n_taper = int(_TAPER_S * sample_rate)
    taper = 0.5 * (1 - np.cos(np.pi * np.arange(n_taper) / n_taper))
    freqs.setflags(write=False)
    taper.setflags(write=False)
    return freqs, taper


def detector_signals(params: SourceParameters, approximant: str = "IMRPhenomPv2",
                     detectors: Sequence[str] = DETECTORS, gps_start: float = GPS_REFERENCE,
                     n_samples: int = N_SAMPLES) -> np.ndarray:
    """The signal each detector records in the 2-s window: (len(detectors), 4096) float64 strain at 2048 Hz.

    The waveform is placed on a 4-s segment so the merger (at the Earth's centre) is at ``params.t_merger``
    in the window, projected with the antenna patterns, shifted by each detector's arrival delay in the
    frequency domain (exact for sub-sample delays), and the middle 2 s are kept. ``n_samples``: a window of
    another length (e.g. a long segment to inject into, the merger ``params.t_merger`` s after its start).
    """
    fs = SAMPLE_RATE
    hp, hc, epoch = polarizations(params, approximant, fs)
    freqs, taper = _segment_grid(fs)
    n_segment, keep = (_SEGMENT, _KEEP) if n_samples == N_SAMPLES else (2 * n_samples, n_samples // 2)
    if n_segment != _SEGMENT:
        freqs = np.fft.rfftfreq(n_segment, 1.0 / fs)
    start = keep + (params.t_merger + epoch) * fs  # segment index of the waveform's first sample
    first = math.floor(start)
    frac = start - first
    seg = np.zeros((2, n_segment))
    lo = max(0, -first)
    hi = min(len(hp), n_segment - first)
    seg[0, first + lo: first + hi] = hp[lo:hi]
    seg[1, first + lo: first + hi] = hc[lo:hi]
    if first < 0:
        # the inspiral started before the segment: taper the cut well before the kept window
        seg[:, : len(taper)] *= taper
    spec = np.fft.rfft(seg, axis=-1)
    g = gmst(gps_start)
    out = np.empty((len(detectors), n_segment // 2 + 1), dtype=np.complex128)
    for k, det in enumerate(detectors):
        fp, fc = antenna_patterns(det, params.ra, params.dec, params.polarization, g)
        delay = frac / fs + float(time_delay_from_geocenter(det, params.ra, params.dec, g))
        out[k] = (fp * spec[0] + fc * spec[1]) * np.exp(-2j * np.pi * freqs * delay)
    series = np.fft.irfft(out, n=n_segment, axis=-1)
    return np.ascontiguousarray(series[:, keep: keep + n_samples])


@functools.lru_cache(maxsize=8)
def _snr_weights(n: int, sample_rate: float, bump: bool, detectors: tuple[str, ...],
                 band: tuple[float, float]) -> np.ndarray:
    psd = network_psd(n, sample_rate, bump, detectors)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    inside = (freqs >= band[0]) & (freqs <= band[1]) & (psd > 0)
    w = np.zeros_like(psd)
    w[inside] = 4.0 / (n * sample_rate * psd[inside])
    w.setflags(write=False)
    return w


def optimal_snr(signal: np.ndarray, sample_rate: float = SAMPLE_RATE, psd: np.ndarray | None = None,
                band: tuple[float, float] = SNR_BAND, bump: bool = True) -> np.ndarray:
    """Optimal SNR of ``signal`` (..., n_det, n) per detector: sqrt(4 sum |h(f)|^2 / S(f) df) over ``band``.

    ``psd`` (n_det, n // 2 + 1) in 1/Hz defaults to the simulator's own noise PSDs (for 3 detectors).
    The network SNR is the root sum of squares over detectors.
    """
    signal = np.asarray(signal, dtype=np.float64)
    n = signal.shape[-1]
    if psd is None:
        w = _snr_weights(n, float(sample_rate), bool(bump), DETECTORS[: signal.shape[-2]], tuple(band))
    else:
        freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
        psd = np.asarray(psd, dtype=np.float64)
        inside = (freqs >= band[0]) & (freqs <= band[1]) & (psd > 0)
        w = np.zeros(psd.shape)
        w[inside] = 4.0 / (n * sample_rate * np.broadcast_to(psd, inside.shape)[inside])
    spec = np.fft.rfft(signal, axis=-1)
    return np.sqrt(np.sum(w * (spec.real ** 2 + spec.imag ** 2), axis=-1))


# ---------------------------------------------------------------------------------------------- samples

_MASK40 = (1 << 40) - 1


def sample_id(seed: int, index: int) -> str:
    """Kaggle-like 10-hex-digit id of sample ``index`` of the set drawn with ``seed``.

    A bijection of the 40-bit index space (multiply by odd constants and xor-shift), offset by the seed: ids
    never collide within a set and spread evenly over the train/<a>/<b>/<c>/ folders.
    """
    x = (int(index) + int(seed) * 0x9E3779B97F) & _MASK40
    x = (x * 0xD6E8FEB865) & _MASK40
    x ^= x >> 19
    x = (x * 0xA0761D6479) & _MASK40
    x ^= x >> 21
    return f"{x:010x}"


TRUTH_COLUMNS = (
    "id", "target", "snr", "snr_H1", "snr_L1", "snr_V1", "snr_seen",
    "mass1", "mass2", "chirp_mass", "mass_ratio", "spin1x", "spin1y", "spin1z", "spin2x", "spin2y", "spin2z",
    "chi_eff", "distance_mpc", "inclination", "coa_phase", "ra", "dec", "polarization", "t_merger",
    "gps_merger", "approximant",
)


def _rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    # separate streams for the source and for the noise, both fixed by (seed, index) alone
    src = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index), 0)))
    noise = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index), 1)))
    return src, noise


def _varied_network_psd(variations, n: int, bump: bool, prior: VariationPrior) -> np.ndarray:
    freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    rows = []
    for det, v in zip(DETECTORS, variations):
        low = bump_psd(freqs) if bump and det in ("H1", "L1") else None
        rows.append(varied_psd(freqs, noise_psd(det, n, SAMPLE_RATE, bump and det == "V1"), low, v, prior))
    return np.stack(rows)


@functools.lru_cache(maxsize=2)
def _design_filter(bump: bool) -> tuple[np.ndarray, np.ndarray, int]:
    return whitening_filter(network_psd(N_SAMPLES, SAMPLE_RATE, bump))


def sample_psds(seed: int, index: int, noise: str = "design", bump: bool = True,
                prior: VariationPrior = VariationPrior()) -> tuple[np.ndarray, np.ndarray]:
    """The noise PSDs (1/Hz) of sample ``index`` of the set drawn with ``seed``: on the rfft grid of the 2-s
    window (3, 2049), the one its SNRs are measured against, and of the 4-s segment its noise is drawn on
    (3, 4097). ``noise="varied"`` draws each detector's variation from the sample's own stream (its third,
    beside the source's and the noise's, so ``"design"`` samples are unchanged by the option's existence)."""
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    if noise == "design":
        return network_psd(N_SAMPLES, SAMPLE_RATE, bump), network_psd(_SEGMENT, SAMPLE_RATE, bump)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index), 2)))
    variations = [draw_variation(rng, prior) for _ in DETECTORS]
    return (_varied_network_psd(variations, N_SAMPLES, bump, prior),
            _varied_network_psd(variations, _SEGMENT, bump, prior))


def simulate_sample(
    seed: int,
    index: int,
    *,
    snr_median: float = 8.0,
    snr_sigma: float = 0.5,
    approximant: str = "IMRPhenomPv2",
    positive_fraction: float = 0.5,
    bump: bool = True,
    noise: str = "design",
    prior: VariationPrior = VariationPrior(),
) -> tuple[np.ndarray, dict[str, Any]]:
    """Sample ``index`` of the set drawn with ``seed``: (strain (3, 4096) float64 at 2048 Hz, truth dict).

    The label is 1 with probability ``positive_fraction``; a positive carries a signal rescaled to a network
    SNR ~ lognormal(``snr_median``, ``snr_sigma``). Truth holds every source parameter (NaN for negatives),
    the injected network and per-detector SNRs, ``snr_seen`` (what the whitener leaves of it; see the module
    docstring) and the luminosity distance the SNR implies. ``noise``: ``"design"`` or ``"varied"`` (a PSD
    per sample and detector drawn from ``prior``, :func:`sample_psds`).
    """
    src, noise_rng = _rngs(seed, index)
    target = int(src.random() < positive_fraction)
    params = draw_parameters(src, approximant)
    snr_goal = float(snr_median * math.exp(snr_sigma * src.standard_normal()))
    psd, psd_segment = sample_psds(seed, index, noise, bump, prior) if noise != "design" else (None, None)
    strain = simulate_noise(noise_rng, bump=bump, psd=psd_segment)
    truth: dict[str, Any] = {c: math.nan for c in TRUTH_COLUMNS}
    truth.update(id=sample_id(seed, index), target=target, approximant=approximant if target else "")
    if target:
        signal = detector_signals(params, approximant)
        snrs = optimal_snr(signal, bump=bump, psd=psd)
        net = float(np.sqrt(np.sum(snrs ** 2)))
        scale = snr_goal / net
        strain += scale * signal
        seen = whitened_snr(scale * signal, psd, filt=_design_filter(bump) if psd is None else whitening_filter(psd))
        truth["snr_seen"] = float(np.sqrt(np.sum(seen ** 2)))
        params.distance_mpc = REFERENCE_DISTANCE_MPC / scale
        truth.update({k: v for k, v in asdict(params).items()})
        truth.update(
            snr=snr_goal, snr_H1=float(snrs[0] * scale), snr_L1=float(snrs[1] * scale), snr_V1=float(snrs[2] * scale),
            chirp_mass=params.chirp_mass, mass_ratio=params.mass2 / params.mass1, chi_eff=params.chi_eff,
            gps_merger=GPS_REFERENCE + params.t_merger,
        )
    return strain, truth


def sample_path(root: str | os.PathLike, split: str, id: str) -> Path:
    """Kaggle's layout: ``<root>/<split>/<id[0]>/<id[1]>/<id[2]>/<id>.npy``."""
    return Path(root) / split / id[0] / id[1] / id[2] / f"{id}.npy"


def labels_filename(split: str) -> str:
    """``training_labels.csv`` for the training split (Kaggle's name), ``<split>_labels.csv`` otherwise."""
    return "training_labels.csv" if split == "train" else f"{split}_labels.csv"


def truth_filename(split: str) -> str:
    return "truth.csv" if split == "train" else f"{split}_truth.csv"


def _save_npy(path: Path, strain: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, strain, allow_pickle=False)


def _simulate_chunk(args: tuple) -> list[dict[str, Any]]:
    seed, lo, hi, out_dir, split, kwargs = args
    rows = []
    for i in range(lo, hi):
        strain, truth = simulate_sample(seed, i, **kwargs)
        _save_npy(sample_path(out_dir, split, truth["id"]), strain)
        rows.append(truth)
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def simulate_g2net(
    n: int,
    seed: int,
    out_dir: str | os.PathLike,
    snr_median: float = 8.0,
    snr_sigma: float = 0.5,
    approximant: str = "IMRPhenomPv2",
    positive_fraction: float = 0.5,
    workers: int | None = None,
    split: str = "train",
    bump: bool = True,
    chunk: int = 200,
    noise: str = "design",
    prior: VariationPrior | None = None,
) -> Path:
    """Write ``n`` simulated samples in Kaggle's G2Net layout under ``out_dir``; returns ``out_dir``.

    Files: ``<split>/<a>/<b>/<c>/<id>.npy`` (float64 (3, 4096): H1, L1, V1 at 2048 Hz),
    ``training_labels.csv`` (id,target; ``<split>_labels.csv`` for other splits), ``truth.csv``
    (``<split>_truth.csv``: every source parameter and the injected SNRs; empty cells for negatives) and
    ``simulation.json`` (the settings). Every file is written atomically. ``workers`` processes (default:
    all cores) give the same bytes as one, since each sample depends only on ``(seed, index)``.
    ``noise``: ``"design"`` (every sample's noise from the design curves) or ``"varied"`` (a PSD drawn per
    sample and detector around them, :mod:`~astrocnn.gw.noise_variation`: train on this so the network does
    not learn one noise curve). ``prior``: the ranges of those variations (default :class:`VariationPrior`;
    another one makes a test set whose noise is unlike the training noise's).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if approximant not in APPROXIMANTS:
        raise ValueError(f"approximant must be one of {APPROXIMANTS}, got {approximant!r}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {NOISE_KINDS}, got {noise!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out_dir = Path(out_dir)
    prior = VariationPrior() if prior is None else prior
    kwargs = dict(snr_median=snr_median, snr_sigma=snr_sigma, approximant=approximant,
                  positive_fraction=positive_fraction, bump=bump, noise=noise, prior=prior)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    # several chunks per worker so a worker that drew the slow (low-mass, long) waveforms does not finish last
    chunk = max(1, min(int(chunk), math.ceil(n / (4 * workers))))
    tasks = [(seed, lo, min(n, lo + chunk), out_dir, split, kwargs) for lo in range(0, n, chunk)]
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    _lal()  # a missing lalsuite is one line here, not a traceback from a worker process
    for part in map_ordered(_simulate_chunk, tasks, workers):
        rows.extend(part)
        log.info("simulated %d/%d samples", len(rows), n)
    dt = time.perf_counter() - t0
    log.info("simulated %d samples in %.1f s (%.0f/s with %d worker(s))", n, dt, n / max(dt, 1e-9), workers)

    with atomic_path(out_dir / labels_filename(split)) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "target"])
            w.writerows([r["id"], r["target"]] for r in rows)
    with atomic_path(out_dir / truth_filename(split)) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(TRUTH_COLUMNS)
            w.writerows([_fmt(r[c]) for c in TRUTH_COLUMNS] for r in rows)
    settings = dict({k: v for k, v in kwargs.items() if k != "prior"}, n=n, seed=seed, split=split,
                    sample_rate=SAMPLE_RATE, n_samples=N_SAMPLES,
                    detectors=list(DETECTORS), f_low=F_LOW, snr_band=list(SNR_BAND),
                    merger_window=list(MERGER_WINDOW), gps_reference=GPS_REFERENCE, generator="astrocnn.gw.simulate",
                    snr_seen="whitened_snr through a default Whitener (padded, band 20-500 Hz), the sample's own PSD")
    if noise == "varied":
        settings["noise_variation"] = asdict(prior)
    write_text_atomic(out_dir / ("simulation.json" if split == "train" else f"{split}_simulation.json"),
                      json.dumps(settings, indent=2) + "\n")
    return out_dir
