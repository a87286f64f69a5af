"""Readers for gravitational-wave strain: Kaggle's G2Net layout, GWOSC HDF5 files, LDAS-style HDF5.

Each reader turns a file into arrays; nothing downstream sees HDF5 attributes or mask bits. Bad input raises
:class:`~astrocnn.core.errors.InputError` with one line naming the file and the problem.

Gravitational-wave domain, on the core.
"""
from __future__ import annotations

import csv
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.gw.simulate import simulate_noise

log = logging.getLogger(__name__)

DETECTORS = ("H1", "L1", "V1")
G2NET_SHAPE = (3, 4096)
G2NET_SAMPLE_RATE = 2048.0


# ---------------------------------------------------------------------------------------------- G2Net

@dataclass
class G2NetIndex:
    """The samples of a G2Net-layout folder.

    ids (N,) str; paths (N,) of the .npy files; target (N,) int8, -1 where unknown; snr (N,) float64, the
    network SNR from truth.csv (NaN where unknown or for noise-only samples): ``snr_seen``, what the whitener
    leaves of the signal, where the file has it, else the injected ``snr`` (``snr_column`` says which);
    truth: the other truth.csv columns (str arrays, empty string where unknown), empty without a truth file.
    """

    root: Path
    ids: np.ndarray
    paths: list[Path]
    target: np.ndarray
    snr: np.ndarray
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    snr_column: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def truth_float(self, column: str) -> np.ndarray:
        """A truth column as float64 (NaN for empty cells)."""
        return np.array([float(v) if v not in ("", None) else math.nan for v in self.truth[column]])


def _labels_files(split: str) -> tuple[str, ...]:
    if split == "train":
        return ("training_labels.csv",)
    if split:
        return (f"{split}_labels.csv", "sample_submission.csv")
    return ("training_labels.csv", "sample_submission.csv")


def _truth_files(split: str) -> tuple[str, ...]:
    return ("truth.csv",) if split in ("train", "") else (f"{split}_truth.csv",)


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"cannot read CSV ({exc})") from exc
    if rows and "id" not in rows[0]:
        raise InputError(path, f"no 'id' column (columns: {', '.join(rows[0])})")
    return rows


def read_g2net(directory: str | os.PathLike, labels: bool = True, split: str | None = None) -> G2NetIndex:
    """Index a G2Net-layout folder: Kaggle's nested ``train/<a>/<b>/<c>/<id>.npy`` or a flat folder of .npy.

    ``directory`` may be the data set's root (holding ``train/`` and ``training_labels.csv``) or the sample
    folder itself (labels are then looked for beside it and one level up). ``split`` names the sample folder
    ("train", "test"; default: "train" if present, else the folder itself). With ``labels`` the labels CSV
    (``training_labels.csv``, or ``<split>_labels.csv`` / ``sample_submission.csv``) gives ``target``
    (-1 for ids it lacks, or everywhere without a CSV), and ``truth.csv`` adds the injected SNR and sources.
    Samples are sorted by id.
    """
    root = Path(directory)
    if not root.is_dir():
        raise InputError(root, "not a folder of G2Net samples")
    if split is None:
        # Kaggle's root holds train/ (and test/); a simulated split "x" holds x/ beside x_labels.csv
        named = [d.name for d in sorted(root.iterdir()) if d.is_dir() and (root / f"{d.name}_labels.csv").is_file()]
        split = "train" if (root / "train").is_dir() else (named[0] if len(named) == 1 else "")
    samples_dir = root / split if split else root
    if not samples_dir.is_dir():
        raise InputError(samples_dir, f"no '{split}' folder of samples")
    # a bare folder of samples: its name says which split it is if it is named like one
    split_name = split or (root.name if (root.parent / f"{root.name}_labels.csv").is_file() else "")
    paths = sorted(samples_dir.rglob("*.npy"), key=lambda p: p.stem)
    if not paths:
        raise InputError(samples_dir, "no .npy samples found (expected <id>.npy files, flat or in a/b/c/ folders)")
    ids = np.array([p.stem for p in paths], dtype=object)
    n = len(ids)
    target = np.full(n, -1, dtype=np.int8)
    snr = np.full(n, np.nan)
    truth: dict[str, np.ndarray] = {}
    snr_column = ""
    if labels:
        search = [samples_dir, samples_dir.parent] if split else [root, root.parent]
        pos = {k: i for i, k in enumerate(ids)}
        label_file = next((d / f for d in search for f in _labels_files(split_name) if (d / f).is_file()), None)
        if label_file is None:
            log.info("%s: no labels file (%s); targets unknown", samples_dir, " or ".join(_labels_files(split_name)))
        else:
            rows = _read_csv(label_file)
            if rows and "target" not in rows[0]:
                raise InputError(label_file, "no 'target' column")
            known = 0
            for r in rows:
                i = pos.get(r["id"])
                if i is None:
                    continue
                try:
                    t = float(r["target"])
                except ValueError as exc:
                    raise InputError(label_file, f"target {r['target']!r} of id {r['id']} is not a number") from exc
                # sample_submission.csv carries 0.5 placeholders, not labels
                target[i] = int(t) if t in (0.0, 1.0) else -1
                known += t in (0.0, 1.0)
            if known < n:
                log.warning("%s: %d of %d samples have no label", label_file, n - known, n)
        truth_file = next((d / f for d in search for f in _truth_files(split_name) if (d / f).is_file()), None)
        if truth_file is not None:
            rows = _read_csv(truth_file)
            columns = [c for c in (rows[0].keys() if rows else []) if c != "id"]
            truth = {c: np.full(n, "", dtype=object) for c in columns}
            for r in rows:
                i = pos.get(r["id"])
                if i is not None:
                    for c in columns:
                        truth[c][i] = r[c]
            # what the network is given, where the simulator measured it (sets made before only have "snr")
            snr_column = "snr_seen" if "snr_seen" in truth and any(truth["snr_seen"]) else (
                "snr" if "snr" in truth else "")
            if snr_column:
                snr = np.array([float(v) if v else math.nan for v in truth[snr_column]])
    return G2NetIndex(root=samples_dir, ids=ids, paths=paths, target=target, snr=snr, truth=truth,
                      snr_column=snr_column)


def load_g2net_sample(path: str | os.PathLike) -> np.ndarray:
    """Read one G2Net sample: strain (3, 4096) float64 (H1, L1, V1 at 2048 Hz).

    Raises InputError for a file that is not a .npy array, has another shape, a non-float dtype, or NaN/inf.
    Float32 files are accepted and widened.
    """
    path = Path(path)
    try:
        strain = np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise InputError(path, "no such file") from exc
    except Exception as exc:  # noqa: BLE001 - numpy's header parser raises ValueError, TokenError, SyntaxError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"not a .npy array ({first})") from exc
    if not isinstance(strain, np.ndarray):
        raise InputError(path, "not a .npy array (an .npz archive?)")
    if strain.shape != G2NET_SHAPE:
        raise InputError(path, f"strain has shape {strain.shape}, expected {G2NET_SHAPE} (H1, L1, V1 x 2 s at 2048 Hz)")
    if strain.dtype.kind != "f":
        raise InputError(path, f"strain has dtype {strain.dtype}, expected float64")
    strain = strain.astype(np.float64, copy=False)
    if not np.isfinite(strain).all():
        raise InputError(path, f"strain has {int((~np.isfinite(strain)).sum())} NaN/inf values")
    return strain


def _try_load(path: Path) -> np.ndarray | InputError:
    try:
        return load_g2net_sample(path)
    except InputError as exc:
        return exc


def load_g2net_samples(paths: Sequence[str | os.PathLike], workers: int = 1, on_error: str = "fail"
                       ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """Load samples on ``workers`` threads, keeping the readable ones: ``(strain (k, 3, 4096) float64 of the
    good ones, their positions in paths, [(position, problem)] of the bad ones)``. With ``on_error="fail"``
    the first bad one raises :class:`InputError`."""
    if workers <= 1 or len(paths) < 2:
        loaded = [_try_load(Path(p)) for p in paths]
    else:
        with ThreadPoolExecutor(workers) as pool:
            loaded = list(pool.map(_try_load, map(Path, paths)))
    good, bad = [], []
    for i, x in enumerate(loaded):
        if isinstance(x, InputError):
            if on_error == "fail":
                raise x
            bad.append((i, x.problem))
        else:
            good.append(i)
    rows = np.stack([loaded[i] for i in good]) if good else np.zeros((0,) + G2NET_SHAPE)
    return rows, good, bad


def load_g2net_batch(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Stack samples: (N, 3, 4096) float64."""
    out = np.empty((len(paths),) + G2NET_SHAPE)
    for i, p in enumerate(paths):
        out[i] = load_g2net_sample(p)
    return out


# ---------------------------------------------------------------------------------------------- GWOSC

class DQBit:
    """Bits of GWOSC's ``quality/simple/DQmask`` (one value per second). A set bit means the second passes.

    DATA (bit 0) is the one that makes a second usable at all: strain exists and is science-mode data. The
    category bits say the second also passes the CBC or burst vetoes of that category.
    """

    DATA = 0  # data present, detector in observing mode
    CBC_CAT1 = 1  # passes the compact-binary category-1 vetoes (severe problems)
    CBC_CAT2 = 2  # passes the compact-binary category-2 vetoes
    CBC_CAT3 = 3  # passes the compact-binary category-3 vetoes
    BURST_CAT1 = 4
    BURST_CAT2 = 5
    BURST_CAT3 = 6


@dataclass
class GwoscStrain:
    """One detector's strain from a GWOSC file.

    strain (n,) float64; sample_rate in Hz; gps_start in s; detector ("H1"...); dq_mask (n_seconds,) int,
    the DQmask bits per second; dq_names (bit names in bit order); injection_mask (n_seconds,) int, whose set
    bits mean *no* hardware injection of that kind (names in injection_names).
    """

    strain: np.ndarray
    sample_rate: float
    gps_start: float
    detector: str
    dq_mask: np.ndarray | None = None
    dq_names: tuple[str, ...] = ()
    injection_mask: np.ndarray | None = None
    injection_names: tuple[str, ...] = ()
    path: Path | None = None

    @property
    def duration(self) -> float:
        return len(self.strain) / self.sample_rate

    def good_seconds(self, require: Sequence[str] = ("DATA",)) -> np.ndarray:
        """(n_seconds,) bool: the seconds whose DQ mask has every bit named in ``require`` set.

        Without a DQ mask every second is taken as good.
        """
        n_sec = int(math.ceil(self.duration))
        if self.dq_mask is None:
            return np.ones(n_sec, dtype=bool)
        need = 0
        for name in require:
            bit = getattr(DQBit, name, None) if not self.dq_names else (
                self.dq_names.index(name) if name in self.dq_names else None)
            if bit is None:
                raise InputError(self.path, f"no DQ bit named {name!r} (bits: {', '.join(self.dq_names)})")
            need |= 1 << bit
        good = (np.asarray(self.dq_mask, dtype=np.int64) & need) == need
        return np.resize(good, n_sec) if len(good) != n_sec else good

    def good_samples(self, require: Sequence[str] = ("DATA",)) -> np.ndarray:
        """(n,) bool: samples in good seconds."""
        per = int(round(self.sample_rate))
        return np.repeat(self.good_seconds(require), per)[: len(self.strain)]


def _names(ds) -> tuple[str, ...]:
    return tuple(s.decode().strip() if isinstance(s, bytes) else str(s).strip() for s in ds[()])


def read_gwosc(path: str | os.PathLike) -> GwoscStrain:
    """Read a GWOSC strain file (HDF5, e.g. ``H-H1_LOSC_4_V2-1126259446-32.hdf5``) with h5py."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        return _read_gwosc(path)
    except InputError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        # a damaged object header or data chunk surfaces as any of these from h5py
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, f"damaged or unreadable GWOSC HDF5 file ({first})") from exc


def _read_gwosc(path: Path) -> GwoscStrain:
    h5 = h5py.File(path, "r")
    with h5:
        if "strain/Strain" not in h5:
            raise InputError(path, "no strain/Strain dataset (not a GWOSC strain file?)")
        ds = h5["strain/Strain"]
        strain = np.asarray(ds[()], dtype=np.float64)
        if strain.ndim != 1 or strain.size == 0:
            raise InputError(path, f"strain/Strain has shape {strain.shape}, expected a 1-D series")
        spacing = float(ds.attrs.get("Xspacing", 0.0))
        if not spacing > 0:
            raise InputError(path, "strain/Strain has no positive Xspacing attribute")
        if "meta/GPSstart" in h5:
            gps = float(h5["meta/GPSstart"][()])
        elif "Xstart" in ds.attrs:
            gps = float(ds.attrs["Xstart"])
        else:
            raise InputError(path, "no GPS start (meta/GPSstart or strain/Strain Xstart)")
        if "meta/Detector" in h5:
            det = h5["meta/Detector"][()]
            det = det.decode() if isinstance(det, bytes) else str(det)
        else:
            det = path.name.split("-")[1][:2] if path.name.count("-") >= 1 else ""
        dq = dq_names = inj = inj_names = None
        if "quality/simple/DQmask" in h5:
            dq = np.asarray(h5["quality/simple/DQmask"][()], dtype=np.int64)
            dq_names = _names(h5["quality/simple/DQShortnames"]) if "quality/simple/DQShortnames" in h5 else ()
        if "quality/injections/Injmask" in h5:
            inj = np.asarray(h5["quality/injections/Injmask"][()], dtype=np.int64)
            names = h5.get("quality/injections/InjShortnames")
            inj_names = _names(names) if names is not None else ()
    n_bad = int((~np.isfinite(strain)).sum())
    if n_bad:
        # GWOSC marks missing data with NaN; keep the file usable and let the DQ mask say which seconds count
        log.warning("%s: %d NaN/inf strain samples set to 0", path, n_bad)
        strain = np.where(np.isfinite(strain), strain, 0.0)
    return GwoscStrain(strain=strain, sample_rate=1.0 / spacing, gps_start=gps, detector=det, dq_mask=dq,
                       dq_names=dq_names or (), injection_mask=inj, injection_names=inj_names or (), path=path)


def read_ldas_hdf(path: str | os.PathLike) -> dict[str, GwoscStrain]:
    """Read an LDAS/gwpy-style HDF5 file whose top-level datasets are channels (e.g. ``H1:LDAS-STRAIN``) with
    attributes ``x0`` (GPS start) and ``dx`` (sample spacing). Returns detector prefix -> strain (no DQ)."""
    path = Path(path)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from exc
    out: dict[str, GwoscStrain] = {}
    with h5:
        for name, ds in h5.items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or "dx" not in ds.attrs:
                continue
            det = name.split(":")[0]
            out[det] = GwoscStrain(strain=np.asarray(ds[()], dtype=np.float64), sample_rate=1.0 / float(ds.attrs["dx"]),
                                   gps_start=float(ds.attrs.get("x0", 0.0)), detector=det, path=path)
    if not out:
        raise InputError(path, "no channel datasets with x0/dx attributes")
    return out


@dataclass
class NetworkStrain:
    """Three-detector strain on a common GPS span.

    strain (3, n) float64 (H1, L1, V1) at sample_rate Hz from gps_start s; available (3,) bool, whether the
    detector's data are real; valid (3, n) bool, the samples that are real and pass the DQ requirement
    (bad samples are zeroed in ``strain``); filled: what stands in for each missing detector ("" if real).
    """

    strain: np.ndarray
    sample_rate: float
    gps_start: float
    available: np.ndarray
    valid: np.ndarray
    filled: tuple[str, ...]

    @property
    def duration(self) -> float:
        return self.strain.shape[1] / self.sample_rate


def resample_rate(strain: np.ndarray, rate_in: float, rate_out: float) -> np.ndarray:
    """Anti-aliased polyphase resampling along the last axis (scipy.signal.resample_poly, Kaiser window)."""
    from scipy.signal import resample_poly

    if rate_in == rate_out:
        return np.asarray(strain, dtype=np.float64)
    ratio = Fraction(rate_out / rate_in).limit_denominator(1000)
    return resample_poly(strain, ratio.numerator, ratio.denominator, axis=-1)


def gwosc_network(
    paths: Sequence[str | os.PathLike],
    sample_rate: float = 2048.0,
    missing: str = "noise",
    seed: int = 0,
    require: Sequence[str] = ("DATA",),
) -> NetworkStrain:
    """Combine GWOSC files (one per detector) into (3, n) H1/L1/V1 strain at ``sample_rate``.

    Each file is resampled (anti-aliased) and cut to the GPS span all files share. Samples in seconds that
    fail the DQ requirement (default: the DATA bit) are zeroed and marked invalid. A detector without a file
    (Virgo for O1/O2) is filled with ``missing="noise"``: simulated Gaussian noise from its design curve
    (seeded by ``seed``; real strain is whitened per detector anyway, so its scale does not matter), or with
    ``missing="zeros"``. Either way ``available`` is False for it.
    """
    if missing not in ("noise", "zeros"):
        raise ValueError(f"missing must be 'noise' or 'zeros', got {missing!r}")
    if not paths:
        raise ValueError("no GWOSC files given")
    per_det: dict[str, GwoscStrain] = {}
    for p in paths:
        g = read_gwosc(p)
        if g.detector not in DETECTORS:
            raise InputError(p, f"detector {g.detector!r} is not one of {DETECTORS}")
        if g.detector in per_det:
            raise InputError(p, f"a second file for {g.detector} (the first was {per_det[g.detector].path})")
        per_det[g.detector] = g
    start = max(g.gps_start for g in per_det.values())
    end = min(g.gps_start + g.duration for g in per_det.values())
    if end - start < 1.0 / sample_rate:
        raise InputError(paths[0], f"the files share no GPS span ({start:.3f} - {end:.3f})")
    n = int(math.floor((end - start) * sample_rate + 1e-6))
    strain = np.zeros((3, n))
    valid = np.zeros((3, n), dtype=bool)
    available = np.zeros(3, dtype=bool)
    filled = ["", "", ""]
    for k, det in enumerate(DETECTORS):
        g = per_det.get(det)
        if g is None:
            continue
        good = g.good_samples(require)
        x = np.where(good, g.strain, 0.0)
        y = resample_rate(x, g.sample_rate, sample_rate)
        good_y = np.repeat(g.good_seconds(require), int(round(sample_rate)))[: len(y)]
        off = int(round((start - g.gps_start) * sample_rate))
        strain[k] = y[off: off + n]
        valid[k] = good_y[off: off + n]
        strain[k][~valid[k]] = 0.0
        available[k] = True
        if not valid[k].all():
            log.warning("%s: %.0f s of %.0f fail the DQ requirement %s; zeroed", det,
                        (~valid[k]).sum() / sample_rate, n / sample_rate, "+".join(require))
    for k, det in enumerate(DETECTORS):
        if available[k]:
            continue
        if missing == "noise":
            rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(k,)))
            strain[k] = simulate_noise(rng, n=n, sample_rate=sample_rate, detectors=(det,))[0]
            filled[k] = "noise"
            log.info("%s: no file; filled with simulated design-curve noise (seed %d)", det, seed)
        else:
            filled[k] = "zeros"
            log.info("%s: no file; filled with zeros", det)
    return NetworkStrain(strain=strain, sample_rate=float(sample_rate), gps_start=float(start),
                         available=available, valid=valid, filled=tuple(filled))
