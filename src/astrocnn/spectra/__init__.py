"""Spectra: the paper's wavelength grid, SDSS readers, preprocessing, prepared spectra sets, the simulated
survey, template fitting and figures.

Domain layer, on the core (:mod:`astrocnn.core`); it knows nothing of strain, tasks or training. A spectrum
is ``flux`` on a ``grid``, with ``ivar``; a redshift is ``z``. Where data flow: a file
(:func:`~astrocnn.spectra.sdss.read_spectrum`) -> a :class:`~astrocnn.spectra.spectrum.Spectrum` on its own
sampling -> :func:`~astrocnn.spectra.preprocess.preprocess` onto a
:class:`~astrocnn.spectra.grid.LogLambdaGrid` -> rows of a :class:`~astrocnn.spectra.dataset.SpectraSet`
(:mod:`~astrocnn.spectra.prepare` does it for folders of files, or simulates a survey). Spectra already on a
grid (the paper authors' DR16Q HDF5 files, the workshop's CSV pair) are read by
:mod:`~astrocnn.spectra.gridded` and go straight to a set (:mod:`~astrocnn.spectra.arrays`). A new survey's
reader goes beside :mod:`~astrocnn.spectra.sdss` and returns a :class:`Spectrum`.
"""
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter
from astrocnn.spectra.grid import PAPER_GRID, LogLambdaGrid
from astrocnn.spectra.preprocess import Prepared, Preprocessing, PreprocessConfig, preprocess
from astrocnn.spectra.sdss import read_spectrum
from astrocnn.spectra.spectrum import CLASS_NAMES, Spectrum

__all__ = ["SpectraSet", "SpectraWriter", "PAPER_GRID", "LogLambdaGrid", "Prepared", "Preprocessing",
           "PreprocessConfig", "preprocess", "read_spectrum", "CLASS_NAMES", "Spectrum"]
