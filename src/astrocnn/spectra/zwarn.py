"""Redshift warning bits, redrock-style: ``zwarn == 0`` means "use it".

Spectra domain, on the core. The bits below 2^16 are redrock's (DESI) with its meanings; astrocnn's own start
at 2^16. The template fitter (:mod:`~astrocnn.spectra.templatefit`) and the ready-made models
(:mod:`astrocnn.zoo`) raise them.
"""
from __future__ import annotations

import enum


class ZWarn(enum.IntFlag):
    """Why a redshift should not be trusted. A spectrum's ``zwarn`` is the OR of the bits that apply."""

    #: too little of the spectrum has data to constrain the answer
    LITTLE_COVERAGE = 1 << 1
    #: a second solution, far from the first (> 6000 km/s), is nearly as good (redrock: delta-chi2 < 9)
    SMALL_DELTA_CHI2 = 1 << 2
    #: the answer lies at the edge of the redshift range searched
    Z_FITLIMIT = 1 << 5
    #: no usable data at all
    NODATA = 1 << 9
    #: astrocnn: the most probable class has a probability below the model's threshold
    LOW_CLASS_PROB = 1 << 16
    #: astrocnn: the probability within +-2 redshift bins of the answer is below the model's threshold
    LOW_Z_CONF = 1 << 17
    #: astrocnn: the median signal-to-noise per pixel is below the model's threshold
    LOW_SNR = 1 << 18


def describe(zwarn: int) -> str:
    """The names of the bits set in ``zwarn``, e.g. ``"LOW_Z_CONF|LOW_SNR"`` (empty for 0)."""
    return "|".join(bit.name for bit in ZWarn if int(zwarn) & bit)
