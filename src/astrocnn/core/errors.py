"""Error types. Every error about user input names the file and the problem in one line.

Core layer: every other module raises these; the command line turns them into one line and exit status 2.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType


class AstrocnnError(Exception):
    """Base class for errors the tool reports to users without a traceback."""


class InputError(AstrocnnError):
    """A file or value given by the user cannot be used.

    ``str(err)`` is ``"<path>: <problem>"`` so batch commands can log it as one line.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):
        # worker processes send these back to the parent: the default pickling would call
        # __init__ with one argument and hang a multiprocessing pool
        return (type(self), (self.path, self.problem))


class RejectedSpectrum(InputError):
    """A spectrum was read but cannot be used (too little coverage, zero variance ...)."""


class OutputError(AstrocnnError):
    """An output could not be written (folder not writable, disk full ...)."""


class MissingDependency(AstrocnnError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` saying which extra to install, e.g.
    ``require("lalsimulation", "gw", "simulating strain")``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                                f"pip install 'astrocnn[{extra}]'") from exc
