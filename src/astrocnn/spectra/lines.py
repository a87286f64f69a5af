"""Rest-frame vacuum wavelengths (Angstrom) of the lines the tool simulates and marks on plots.

Spectra domain, on the core.
"""
from __future__ import annotations

#: Lines seen in quasar spectra (broad lines, plus the narrow [OIII] doublet).
QSO_LINES: dict[str, float] = {
    "Lyb": 1025.72,
    "Lya": 1215.67,
    "NV": 1240.81,
    "SiIV": 1399.8,
    "CIV": 1549.06,
    "HeII": 1640.42,
    "CIII]": 1908.73,
    "MgII": 2798.75,
    "Hd": 4102.89,
    "Hg": 4341.69,
    "Hb": 4862.68,
    "[OIII]": 5008.24,
    "Ha": 6564.61,
}

#: Galaxy emission lines.
GALAXY_EMISSION: dict[str, float] = {
    "[OII]3727": 3727.09,
    "[OII]3730": 3729.88,
    "[NeIII]": 3869.81,
    "Hd": 4102.89,
    "Hg": 4341.69,
    "Hb": 4862.68,
    "[OIII]4960": 4960.30,
    "[OIII]5008": 5008.24,
    "[OI]": 6302.05,
    "[NII]6550": 6549.86,
    "Ha": 6564.61,
    "[NII]6585": 6585.27,
    "[SII]6718": 6718.29,
    "[SII]6733": 6732.67,
}

#: Stellar and galaxy absorption features.
ABSORPTION: dict[str, float] = {
    "CaK": 3934.78,
    "CaH": 3969.59,
    "Gband": 4305.0,
    "Mgb5167": 5167.32,
    "Mgb5173": 5172.68,
    "Mgb5184": 5183.60,
    "NaD5892": 5891.58,
    "NaD5898": 5897.56,
    "CaT8500": 8500.36,
    "CaT8544": 8544.44,
    "CaT8665": 8664.52,
}

LYMAN_LIMIT = 911.75

#: A short list to mark on plots, by class.
PLOT_LINES: dict[str, dict[str, float]] = {
    "qso": {k: QSO_LINES[k] for k in ("Lya", "SiIV", "CIV", "CIII]", "MgII", "Hb", "[OIII]", "Ha")},
    "galaxy": {
        "[OII]": 3728.5, "CaK": 3934.78, "CaH": 3969.59, "Hb": 4862.68, "[OIII]": 5008.24,
        "Mgb": 5175.0, "NaD": 5894.6, "Ha": 6564.61, "[SII]": 6725.5,
    },
    "star": {"Hd": 4102.89, "Hg": 4341.69, "Hb": 4862.68, "Mgb": 5175.0, "NaD": 5894.6, "Ha": 6564.61},
}
