"""SDSS spectroscopic pixel mask bits (SPPIXMASK) and the ones we treat as bad.

Bits 0-15 are fibre-level flags: they can be set along a whole fibre whose data are perfectly usable
(seen on real BOSS and legacy files: up to 99.7% of a good quasar's pixels carry one). Only the
pixel-level bits below mark pixels to drop; ivar <= 0 is always dropped as well.

Spectra domain, on the core.
"""
from __future__ import annotations

import enum


class SpPixMask(enum.IntFlag):
    """SDSS ``and_mask`` / ``or_mask`` bits (idlutils sdssMaskbits.par, SPPIXMASK)."""

    NOPLUG = 1 << 0          # fibre not plugged
    BADTRACE = 1 << 1        # bad trace in extraction
    BADFLAT = 1 << 2         # low counts in the fibre flat
    BADARC = 1 << 3          # bad arc solution
    MANYBADCOLUMNS = 1 << 4  # more than 10% of pixels are bad columns
    MANYREJECTED = 1 << 5    # more than 10% of pixels rejected in extraction
    LARGESHIFT = 1 << 6      # large spatial shift between flat and object
    BADSKYFIBER = 1 << 7     # sky fibre shows extreme residuals
    NEARWHOPPER = 1 << 8     # within 2 fibres of a whopping fibre
    WHOPPER = 1 << 9         # whopping fibre (very bright source)
    SMEARIMAGE = 1 << 10     # smear available for red and blue
    SMEARHIGHSN = 1 << 11    # S/N sufficient for full smear fit
    SMEARMEDSN = 1 << 12     # S/N only sufficient for scaled median fit
    NEARBADPIXEL = 1 << 16   # bad pixel within 3 pixels of the trace
    LOWFLAT = 1 << 17        # flat field below 0.5
    FULLREJECT = 1 << 18     # pixel fully rejected in extraction
    PARTIALREJECT = 1 << 19  # some pixels rejected in extraction
    SCATTEREDLIGHT = 1 << 20 # scattered light significant
    CROSSTALK = 1 << 21      # cross-talk significant
    NOSKY = 1 << 22          # sky level unknown at this wavelength
    BRIGHTSKY = 1 << 23      # sky level > flux + 10 sigma
    NODATA = 1 << 24         # no data available in the combined spectrum
    COMBINEREJ = 1 << 25     # rejected when combining exposures
    BADFLUXFACTOR = 1 << 26  # low flux-calibration or flux-correction factor
    BADSKYCHI = 1 << 27      # chi^2 > 4 in sky residuals at this wavelength
    REDMONSTER = 1 << 28     # contiguous region of bad chi^2 in the sky residuals


#: Pixels carrying any of these bits are dropped before resampling. QuasarNET drops ivar == 0 and
#: COMBINEREJ only; we add the two bits that say the pixel holds no measurement at all.
DEFAULT_BAD_PIXEL_BITS = SpPixMask.FULLREJECT | SpPixMask.NODATA | SpPixMask.COMBINEREJ
