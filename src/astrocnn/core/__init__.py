"""The core: errors, atomic output, configuration, metrics, parallel work, re-runnable jobs, prepared-set
containers, figures.

The bottom layer with :mod:`astrocnn.models`: it knows no domain, no task and no trainer, and everything
else may build on it.
"""
