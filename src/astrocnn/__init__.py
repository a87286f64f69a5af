"""astrocnn: one-dimensional convolutional networks for astronomical signals.

Import the pieces you need::

    from astrocnn.spectra import LogLambdaGrid, read_spectrum, preprocess
    from astrocnn.store import PreparedSet
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
