"""A simulated SDSS/BOSS-like spectroscopic survey of quasars, galaxies and stars: the built-in default data.

    from astrocnn.spectra.simulate import simulate_survey, TRUTH_COLUMNS
    for spectrum, truth in simulate_survey(1000, seed=1):
        ...

Modules follow the physics: ``quasar`` (continuum, lines, Fe II, host, BALs), ``forest`` (Ly-alpha forest,
Lyman series and limit, DLAs, metal absorbers), ``galaxy`` (kcorrect stellar populations, nebular lines,
target samples), ``star`` (A-M dwarfs, white dwarfs), ``sky`` (airglow, OH, telluric bands), ``dust``,
``instrument`` (BOSS and SDSS-I/II line-spread, throughput, noise, calibration errors, masks) and ``survey``
(the mixture of objects and the per-object random streams). ``diagnostics`` measures composites and the
forest transmission of simulated sets.

Spectra domain (the simulator), on the core.
"""
from astrocnn.spectra.simulate.survey import DEFAULT_CLASS_FRACTIONS, QSO_Z_COMPONENTS, TRUTH_COLUMNS, simulate_object, simulate_survey

__all__ = ["DEFAULT_CLASS_FRACTIONS", "QSO_Z_COMPONENTS", "TRUTH_COLUMNS", "simulate_object", "simulate_survey"]
