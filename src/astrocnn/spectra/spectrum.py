"""One spectrum at its native sampling, as a reader or the simulator produces it.

Spectra domain, on the core.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The class vocabulary, in the order used for integer labels everywhere.
CLASS_NAMES: tuple[str, ...] = ("qso", "galaxy", "star")

_SDSS_CLASS = {"QSO": "qso", "GALAXY": "galaxy", "STAR": "star"}


def class_from_sdss(value: Any) -> str | None:
    """Map an SDSS CLASS value ('QSO', b'GALAXY ', 'star' ...) to our vocabulary, None if unknown."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip()
    if not text:
        return None
    upper = text.upper()
    return _SDSS_CLASS.get(upper, text.lower() if text.lower() in CLASS_NAMES else None)


def class_index(name: str | None) -> int:
    """Integer label of a class name; -1 for unknown."""
    return CLASS_NAMES.index(name) if name in CLASS_NAMES else -1


@dataclass
class Spectrum:
    """A spectrum on its own wavelength sampling.

    Attributes
    ----------
    loglam : (n,) float64, log10 of vacuum wavelength in Angstrom, increasing.
    flux : (n,) float, 1e-17 erg/s/cm^2/A.
    ivar : (n,) float, inverse variance of ``flux``; 0 marks a pixel without information.
    mask : (n,) int, SDSS ``and_mask`` bits (see :class:`~astrocnn.spectra.masks.SpPixMask`); zeros if unknown.
    id : identifier, e.g. ``"spec-6001-56072-0702"`` or ``"6001-56072-702"``.
    z : redshift label if the file or catalogue gives one (NaN otherwise).
    cls : class label in :data:`CLASS_NAMES`, or None.
    meta : everything else (plate, mjd, fiberid, subclass, zwarning, source path, ...).
    """

    loglam: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    mask: np.ndarray | None = None
    id: str = ""
    z: float = float("nan")
    cls: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.loglam = np.asarray(self.loglam, dtype=np.float64)
        self.flux = np.asarray(self.flux)
        self.ivar = np.asarray(self.ivar)
        if self.mask is None:
            self.mask = np.zeros(self.loglam.shape, dtype=np.int64)
        else:
            self.mask = np.asarray(self.mask)
        n = self.loglam.shape
        for name in ("flux", "ivar", "mask"):
            if getattr(self, name).shape != n:
                raise ValueError(f"Spectrum {self.id!r}: {name} has shape {getattr(self, name).shape}, loglam has {n}")

    @property
    def wave(self) -> np.ndarray:
        """Vacuum wavelength in Angstrom."""
        return 10.0 ** self.loglam
