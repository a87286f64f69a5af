"""astrocnn: one-dimensional convolutional networks for astronomical signals.

The package is built in layers, each importing only from the layers below it (``docs/architecture.md``):
:mod:`astrocnn.core` and :mod:`astrocnn.models` at the bottom; the domains :mod:`astrocnn.spectra` and
:mod:`astrocnn.gw`; the learning problems :mod:`astrocnn.tasks`; the trainer :mod:`astrocnn.train`; the
applications :mod:`astrocnn.apps` (the command line, ``predict``, ``bench``, ``demo``) on top.

A spectrum on its own sampling, put on the paper's grid (4618 pixels uniform in log wavelength over
3600-10325 A) and normalised to zero mean and unit variance:

>>> import numpy as np
>>> from astrocnn.spectra import LogLambdaGrid, Spectrum, preprocess
>>> grid = LogLambdaGrid()
>>> grid.n, round(grid.wave[0]), round(grid.wave[-1])
(4618, 3600, 10325)
>>> loglam = np.arange(np.log10(3580), np.log10(10400), 1e-4)          # SDSS's native sampling
>>> line = 5 * np.exp(-0.5 * ((10**loglam - 6000) / 20) ** 2)           # an emission line at 6000 A
>>> spectrum = Spectrum(loglam, 1 + line, ivar=np.full(loglam.size, 4.0))
>>> prepared = preprocess(spectrum, grid)
>>> prepared.flux.shape, prepared.coverage, round(float(grid.wave[prepared.flux.argmax()]))
((4618,), 1.0, 5999)

The paper's network, as the redshift task builds it (untrained here), applied to that spectrum:

>>> import torch
>>> from astrocnn.core.config import default_config
>>> from astrocnn.train import build_network
>>> config = default_config("redshift")
>>> network = build_network(config).eval()
>>> [layer.kernel_size[0] for layer in network.body.modules() if isinstance(layer, torch.nn.Conv1d)]
[500, 200, 10]
>>> log_prob, offset = network(torch.from_numpy(prepared.flux)[None, None, :])
>>> log_prob.shape                               # 500 bins of log(1 + z) for z in 0-6
torch.Size([1, 500])

Training it on a simulated survey, then predicting (``astrocnn simulate spectra``, ``astrocnn train``,
``astrocnn predict`` on the command line):

>>> import tempfile
>>> from pathlib import Path
>>> from astrocnn.spectra.prepare import simulate_prepared
>>> from astrocnn.train import predict_set, train
>>> folder = Path(tempfile.mkdtemp())
>>> report = simulate_prepared(300, seed=1, out=folder / "survey.h5", workers=1)
>>> config = default_config("redshift", train={"max_epochs": 1, "progress_bar": False}, data={"num_workers": 0})
>>> result = train("redshift", folder / "survey.h5", folder / "run", config)
>>> result.epochs, sorted(predict_set(folder / "run", folder / "survey.h5"))
(1, ['id', 'row', 'z', 'z_conf'])
"""
import logging

from astrocnn.version import __version__

__all__ = ["__version__", "load_model", "list_models"]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str):
    # the ready-made models on first use only: `import astrocnn` stays instant
    if name in ("load_model", "list_models"):
        from astrocnn import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'astrocnn' has no attribute {name!r}")
