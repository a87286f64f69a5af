"""The survey: which object is number ``index``, where it is, how bright, with which spectrograph.

Reproducibility: object ``index`` of the survey with ``seed`` draws everything from
``np.random.SeedSequence([seed, index])`` (one child stream for the object, one for the observation), so any
range of objects can be simulated by any worker and the bytes are the same.

Design choices (documented defaults, all overridable through ``class_fractions``):

- classes: 60% quasars, 30% galaxies, 10% stars (a DR16Q-like, quasar-dominated survey);
- quasar redshifts: 20% at 0.3-1.0, 45% at 0.9-2.2 (eBOSS CORE), 30% at 2.15-3.5 (BOSS Ly-alpha),
  5% at 3.5-5, scaled by 0.97 to make room for tails of 2% at 0-0.3 and 1% at 5-5.5; uniform within each;
- instruments: SDSS-I/II (legacy) for 15% of low-z (< 2.15) and 5% of high-z quasars, half of the Main
  galaxies, 20% of LRGs and 15% of stars; BOSS otherwise. About 15% of all objects with the default mix;
- brightness: i-band (fibre) magnitudes from number counts dN/dm ~ 10^(slope m) between survey limits, so
  that S/N follows from magnitude, redshift and the noise model: quasars S/N ~ 1-30 per pixel with a median
  of ~3-4, bright low-z quasars with visible hosts, faint high-z ones; Main galaxies 10-30; CMASS/LRG 3-6;
  ELG continua below 1 with strong lines.

Spectra domain (the simulator), on the core.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache

import numpy as np

from astrocnn.spectra.spectrum import CLASS_NAMES, Spectrum
from astrocnn.spectra.simulate.common import distance_modulus, i_band_mag, truncated_power_mag
from astrocnn.spectra.simulate.galaxy import GALAXY_SAMPLES, draw_galaxy_redshift, simulate_galaxy
from astrocnn.spectra.simulate.instrument import BOSS, LEGACY, observe
from astrocnn.spectra.simulate.quasar import simulate_quasar
from astrocnn.spectra.simulate.star import simulate_star

log = logging.getLogger(__name__)

#: Design choice: a DR16Q-like survey is quasar dominated.
DEFAULT_CLASS_FRACTIONS: dict[str, float] = {"qso": 0.6, "galaxy": 0.3, "star": 0.1}

#: Quasar redshift mixture: (z_lo, z_hi, weight), uniform within each component.
QSO_Z_COMPONENTS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.3, 0.02),
    (0.3, 1.0, 0.20 * 0.97),
    (0.9, 2.2, 0.45 * 0.97),
    (2.15, 3.5, 0.30 * 0.97),
    (3.5, 5.0, 0.05 * 0.97),
    (5.0, 5.5, 0.01),
)

#: i-band magnitude limits (lo, hi, slope of dN/dm ~ 10^(slope m)) of quasars, by instrument and redshift
#: (z < 1, 1-2.15, 2.15-3.5, > 3.5). SDSS-I/II targeted i < 19.1 (i < 20.2 at z > 3); BOSS/eBOSS went to
#: g ~ 22, and its z > 3.5 quasars are the brighter ones that colour selection finds.
QSO_MAGS = {
    ("BOSS", "low"): (16.5, 20.0, 0.35), ("BOSS", "mid"): (17.5, 21.9, 0.45), ("BOSS", "high"): (18.0, 22.0, 0.45),
    ("BOSS", "vhigh"): (17.5, 21.2, 0.45),
    ("SDSS", "low"): (15.5, 19.1, 0.5), ("SDSS", "mid"): (15.5, 19.1, 0.5), ("SDSS", "high"): (15.5, 19.1, 0.5),
    ("SDSS", "vhigh"): (16.5, 20.2, 0.5),
}
STAR_MAGS = (15.5, 20.5, 0.25)
P_LEGACY_STAR = 0.15

#: The truth stored for every object: name -> numpy dtype kind ("i" int, "f" float, "U" str, "b" bool).
#: Keys not applicable to an object's class hold -1, NaN, "" or False.
TRUTH_COLUMNS: dict[str, str] = {
    "id": "i", "seed": "i", "cls": "U", "subclass": "U", "z": "f", "snr": "f", "mag": "f", "instrument": "U",
    "plate": "i", "mjd": "i", "fiberid": "i", "resolution_scale": "f",
    # quasars
    "bal": "b", "lobal": "b", "n_dla": "i", "max_log_nhi": "f", "n_lls": "i", "n_metal_abs": "i", "alpha": "f",
    "ebv": "f", "civ_shift_kms": "f", "civ_ew": "f", "fwhm_kms": "f", "oiii_ew": "f", "host_frac": "f",
    "abs_mag": "f",
    # galaxies
    "sample": "U", "galaxy_type": "U", "vdisp_kms": "f", "d4000": "f", "ha_ew": "f", "oii_ew": "f",
    # stars
    "spectral_type": "U", "teff": "f", "rv_kms": "f",
}
_DEFAULTS = {"i": -1, "f": float("nan"), "U": "", "b": False}


def _empty_truth() -> dict:
    return {k: _DEFAULTS[kind] for k, kind in TRUTH_COLUMNS.items()}


@lru_cache(maxsize=64)
def _class_table(classes: tuple[str, ...], fractions: tuple[tuple[str, float], ...] | None):
    unknown = [c for c in classes if c not in CLASS_NAMES]
    if unknown or not classes:
        raise ValueError(f"classes must be a non-empty subset of {list(CLASS_NAMES)}, got {list(classes)}")
    given = dict(DEFAULT_CLASS_FRACTIONS if fractions is None else fractions)
    bad = [k for k in given if k not in CLASS_NAMES]
    if bad:
        raise ValueError(f"class_fractions has unknown classes {bad}; choose from {list(CLASS_NAMES)}")
    w = np.array([float(given.get(c, 0.0)) for c in classes])
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"class_fractions must be >= 0 with a positive sum over {list(classes)}, got {given}")
    return classes, np.cumsum(w / w.sum())


def _pick_class(rng: np.random.Generator, classes: Sequence[str], class_fractions: Mapping[str, float] | None) -> str:
    frac = None if class_fractions is None else tuple(sorted((str(k), float(v)) for k, v in class_fractions.items()))
    names, cdf = _class_table(tuple(classes), frac)
    return names[min(int(np.searchsorted(cdf, rng.random(), side="right")), len(names) - 1)]


def draw_qso_redshift(rng: np.random.Generator) -> float:
    w = np.array([c[2] for c in QSO_Z_COMPONENTS])
    k = int(np.searchsorted(np.cumsum(w / w.sum()), rng.random(), side="right"))
    lo, hi, _ = QSO_Z_COMPONENTS[min(k, len(QSO_Z_COMPONENTS) - 1)]
    return float(rng.uniform(max(lo, 0.02), hi))


def _ids(index: int, instrument) -> tuple[int, int, int]:
    """Synthetic but plausible (plate, mjd, fiberid), unique per object index; one MJD per plate."""
    plate = 10000 + index // 1000
    fiberid = 1 + index % 1000
    lo, hi = instrument.mjd_range
    mjd = lo + (plate * 7919) % (hi - lo)
    return plate, mjd, fiberid


def _check_index(seed: int, index: int) -> None:
    for name, v in (("seed", seed), ("index", index)):
        if int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")


def simulate_object(
    seed: int,
    index: int,
    classes: Sequence[str] = CLASS_NAMES,
    class_fractions: Mapping[str, float] | None = None,
    *,
    with_model: bool = False,
) -> tuple[Spectrum, dict]:
    """Object ``index`` of the survey with ``seed``: a native-sampling Spectrum and its truth dict.

    The Spectrum has ``id`` ("plate-mjd-fiber"), ``z``, ``cls`` and ``meta`` with instrument, plate, mjd,
    fiberid, subclass, run2d, sn_median_all and the per-pixel ``wdisp`` (line-spread sigma, pixels) and
    ``sky`` (flux unit) arrays. With ``with_model=True`` meta also holds ``model`` (noiseless flux) and, for
    quasars, ``continuum`` (noiseless flux without intervening absorption: Ly-alpha forest, Lyman series and
    limit, DLAs and metal systems); both float32 on the spectrum's pixels.

    The truth dict has exactly the keys of :data:`TRUTH_COLUMNS`.
    """
    # Long because the object's class, magnitude, redshift and observing set-up are drawn from one random
    # stream in a fixed order: the order fixes the simulated bytes.
    _check_index(seed, index)
    rng_obj, rng_obs = (np.random.default_rng(s) for s in np.random.SeedSequence([int(seed), int(index)]).spawn(2))
    cls = _pick_class(rng_obj, classes, class_fractions)
    truth = _empty_truth()
    unabsorbed = None

    if cls == "qso":
        z = draw_qso_redshift(rng_obj)
        legacy = rng_obj.random() < (0.15 if z < 2.15 else 0.05)
        inst = LEGACY if legacy else BOSS
        band = "low" if z < 1.0 else "mid" if z < 2.15 else "high" if z < 3.5 else "vhigh"
        mag = truncated_power_mag(rng_obj, *QSO_MAGS[(inst.name, band)])
        abs_mag = mag - distance_modulus(z) + 2.5 * (1.0 - 0.5) * np.log10(1.0 + z)
        obj = simulate_quasar(rng_obj, z, abs_mag)
        model, lines, unabsorbed = obj.model, obj.lines, obj.unabsorbed
    elif cls == "galaxy":
        w = np.array([s.weight for s in GALAXY_SAMPLES])
        sample = GALAXY_SAMPLES[min(int(np.searchsorted(np.cumsum(w / w.sum()), rng_obj.random(), side="right")),
                                    len(GALAXY_SAMPLES) - 1)]
        z = draw_galaxy_redshift(rng_obj, sample)
        inst = LEGACY if rng_obj.random() < sample.p_legacy else BOSS
        # a 3" legacy fibre holds ~0.4 mag more of an extended galaxy than a 2" BOSS fibre
        mag = truncated_power_mag(rng_obj, *sample.mag) - (0.4 if inst is LEGACY else 0.0)
        obj = simulate_galaxy(rng_obj, sample, z)
        model, lines = obj.model, obj.lines
    else:
        inst = LEGACY if rng_obj.random() < P_LEGACY_STAR else BOSS
        mag = truncated_power_mag(rng_obj, *STAR_MAGS)
        obj, z = simulate_star(rng_obj)
        model, lines = obj.model, None
    truth.update(obj.truth)

    # flux scale from the i-band magnitude
    m_model = i_band_mag(model)
    if not np.isfinite(m_model):
        raise RuntimeError(f"object {index} of survey {seed}: no flux in the i band (z = {z:.3f}); this is a bug")
    scale = 10.0 ** (-0.4 * (mag - m_model))
    model = model * scale
    if unabsorbed is not None:
        unabsorbed = unabsorbed * scale
    if lines is not None:
        lines = (lines[0], lines[1], lines[2] * scale)

    obs = observe(inst, model, rng_obs, narrow_lines=lines, continuum=unabsorbed if with_model else None)

    plate, mjd, fiberid = _ids(int(index), inst)
    good = obs.ivar > 0
    snr = float(np.median(obs.flux[good] * np.sqrt(obs.ivar[good]))) if good.any() else 0.0
    truth.update({"id": int(index), "seed": int(seed), "cls": cls, "z": float(z), "snr": snr, "mag": float(mag),
                  "instrument": inst.name, "plate": plate, "mjd": mjd, "fiberid": fiberid,
                  "resolution_scale": float(obs.resolution_scale)})
    meta = {
        "instrument": inst.name, "plate": plate, "mjd": mjd, "fiberid": fiberid, "subclass": truth["subclass"],
        "run2d": inst.run2d, "sn_median_all": snr, "zwarning": 0, "wdisp": obs.wdisp, "sky": obs.sky,
        "source": "simulated",
    }
    if with_model:
        meta["model"] = obs.model.astype(np.float32)
        if obs.continuum is not None:
            meta["continuum"] = obs.continuum.astype(np.float32)
    spectrum = Spectrum(
        loglam=inst.loglam.copy(), flux=obs.flux, ivar=obs.ivar, mask=obs.mask,
        id="%04d-%05d-%04d" % (plate, mjd, fiberid), z=float(z), cls=cls, meta=meta,
    )
    return spectrum, truth


def simulate_survey(
    n: int,
    seed: int,
    classes: Sequence[str] = CLASS_NAMES,
    class_fractions: Mapping[str, float] | None = None,
    start: int = 0,
    *,
    with_model: bool = False,
) -> Iterator[tuple[Spectrum, dict]]:
    """Objects ``start .. start + n - 1`` of the survey with ``seed``, as (Spectrum, truth) pairs.

    Any split of a range into pieces gives the same objects: object ``i`` depends only on (seed, i).
    """
    if int(n) != n or n < 0 or int(start) != start or start < 0:
        raise ValueError(f"n and start must be non-negative integers, got n={n!r}, start={start!r}")
    _pick_class(np.random.default_rng(0), classes, class_fractions)  # validate before the first object
    log.debug("simulating objects %d..%d of survey seed %d", start, start + n - 1, seed)
    for i in range(int(start), int(start) + int(n)):
        yield simulate_object(seed, i, classes, class_fractions, with_model=with_model)

