"""The applications: the ``astrocnn`` command line (:mod:`~astrocnn.apps.cli`), prediction on files and
folders (:mod:`~astrocnn.apps.predict`), scoring raw strain (:mod:`~astrocnn.apps.gwscan`), the benchmark
(:mod:`~astrocnn.apps.bench`) and the demo (:mod:`~astrocnn.apps.demo`).

The top layer: applications combine the layers below (the trainer, the tasks, the domains, the core) and
nothing below imports them. A new command goes here, as a thin layer over a function of the API.
"""
