"""The DR16Q quasar catalogue (and DR16Q-like catalogues of simulated surveys): read, write, join to files.

DR16Q (Lyke et al. 2020) is one FITS binary table with a row per quasar: PLATE, MJD, FIBERID identify the
spectrum; Z is the adopted redshift, Z_VI the visual-inspection one, Z_PIPE the pipeline's, Z_PCA and Z_QN
those of PCA and QuasarNET; CLASS_PERSON is the visual class code; -1 marks "no value" in the Z columns.
A DR16Q-like catalogue of a simulated survey adds OBJ_CLASS ("QSO", "GALAXY", "STAR") because it also
lists non-quasars.

Spectra domain, on the core.
"""
from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.spectra.sdss import find_spec_files, parse_spec_filename, spec_filename, spec_id, write_hdul
from astrocnn.spectra.spectrum import class_from_sdss

log = logging.getLogger(__name__)

#: Visual-inspection class codes of DR16Q's CLASS_PERSON; 0 (not inspected) and others mean no class.
CLASS_PERSON_CODES = {1: "star", 3: "qso", 4: "galaxy", 30: "qso"}  # 30 = BAL quasar

#: A redshift below this is a "no value" sentinel (DR16Q writes -1), not a blueshift: real stars have
#: |z| < 0.002 and nothing in the catalogue approaches z = -0.5.
MISSING_Z_BELOW = -0.5

#: Columns of a DR16Q-like catalogue, in the order written, with their FITS formats and the value written
#: when a row does not give one.
CATALOG_COLUMNS: dict[str, tuple[str, Any]] = {
    "SDSS_NAME": ("18A", ""),
    "RA": ("D", 0.0),
    "DEC": ("D", 0.0),
    "PLATE": ("J", None),
    "MJD": ("J", None),
    "FIBERID": ("J", None),
    "Z": ("D", -1.0),
    "Z_VI": ("D", -1.0),
    "Z_PIPE": ("D", -1.0),
    "Z_PCA": ("D", -1.0),
    "Z_QN": ("D", -1.0),
    "CLASS_PERSON": ("J", 0),
    "BAL_PROB": ("E", -1.0),
    "SN_MEDIAN_ALL": ("D", -1.0),
    "ZWARNING": ("J", 0),
    "OBJ_CLASS": ("6A", ""),
}

#: Columns carried into each joined row's labels (lower-case keys) when the catalogue has them.
EXTRA_COLUMNS = ("Z", "Z_VI", "Z_PIPE", "Z_PCA", "Z_QN", "CLASS_PERSON", "BAL_PROB", "SN_MEDIAN_ALL",
                 "ZWARNING", "OBJ_CLASS", "SDSS_NAME", "RA", "DEC")


@dataclass
class Catalog:
    """A catalogue reduced to what training needs.

    Attributes
    ----------
    path : the catalogue file.
    label_column, class_column : the columns ``z`` and ``cls`` were taken from (``class_column`` may be None).
    plate, mjd, fiberid : (n,) int64 spectrum identifiers.
    z : (n,) float64 redshift labels from ``label_column``; NaN where the catalogue has no value.
    cls : n class names from :data:`~astrocnn.spectra.spectrum.CLASS_NAMES` or None.
    extra : upper-case column name -> (n,) array for the :data:`EXTRA_COLUMNS` present.
    """

    path: Path
    label_column: str | None
    class_column: str | None
    plate: np.ndarray
    mjd: np.ndarray
    fiberid: np.ndarray
    z: np.ndarray
    cls: list[str | None]
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.plate.shape[0])

    def id(self, i: int) -> str:
        """``"PPPP-MMMMM-FFFF"`` of row ``i``."""
        return spec_id(self.plate[i], self.mjd[i], self.fiberid[i])

    def row(self, i: int) -> dict[str, Any]:
        """Labels of row ``i``: id, plate, mjd, fiberid, z (NaN if missing), cls, row, and the extra columns
        as stored (sentinels kept) under lower-case names, ``catalog_`` prefixed where a name is taken
        (the catalogue's own Z is ``catalog_z``). Values are Python scalars."""
        out: dict[str, Any] = {
            "id": self.id(i), "plate": int(self.plate[i]), "mjd": int(self.mjd[i]), "fiberid": int(self.fiberid[i]),
            "z": float(self.z[i]), "cls": self.cls[i], "row": int(i),
        }
        for name, values in self.extra.items():
            value = values[i]
            key = name.lower()
            out["catalog_" + key if key in out else key] = value.item() if isinstance(value, np.generic) else value
        return out


def _open_table(path: Path):
    """The first binary-table HDU of a FITS file (memory-mapped), converting failures to InputError.

    astropy reports damaged files (truncated data, broken headers) as warnings and carries on with
    what it could read; those warnings are turned into errors here, other warnings only logged.
    """
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    if not path.is_file():
        raise InputError(path, "no such file" if not path.exists() else "not a file")
    hdul = None
    table = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(path, memmap=True)
            for hdu in hdul:
                if isinstance(hdu, fits.BinTableHDU) and hdu.data is not None:
                    table = hdu.data
                    break
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError ... depending on the damage
        if hdul is not None:
            hdul.close()
        raise InputError(path, f"not a readable FITS catalogue ({type(exc).__name__}: {exc})") from None
    for warning in caught:
        text = " ".join(str(warning.message).split())
        if issubclass(warning.category, VerifyWarning) or "truncated" in text:
            hdul.close()
            raise InputError(path, f"damaged FITS catalogue ({text})")
        if not issubclass(warning.category, ResourceWarning):
            log.debug("%s: %s", path, text)
    if table is None:
        hdul.close()
        raise InputError(path, "no binary table in this FITS file (expected a DR16Q-like catalogue)")
    return hdul, table


def _column(path: Path, data, names_upper: dict[str, str], name: str, what: str) -> np.ndarray:
    key = names_upper.get(name.upper())
    if key is None:
        raise InputError(path, f"no {what} column {name!r}; available: {', '.join(data.columns.names)}")
    values = np.asarray(data[key])
    if values.ndim != 1:
        raise InputError(path, f"{what} column {name!r} holds {values.shape[1:]} values per row; expected one")
    return values


def _missing_z(values: np.ndarray) -> np.ndarray:
    z = values.astype(np.float64)
    z[~np.isfinite(z) | (z < MISSING_Z_BELOW)] = np.nan
    return z


def _classes(path: Path, values: np.ndarray, column: str) -> list[str | None]:
    if values.dtype.kind in "SUO":
        return [class_from_sdss(v) for v in values.tolist()]
    if values.dtype.kind in "iu" and column.upper() == "CLASS_PERSON":
        return [CLASS_PERSON_CODES.get(int(v)) for v in values.tolist()]
    raise InputError(path, f"class column {column!r} holds {values.dtype} values; expected class names "
                           f"(e.g. CLASS, OBJ_CLASS) or DR16Q's CLASS_PERSON codes")


def read_catalog(path: str | os.PathLike, label_column: str | None = "Z",
                 class_column: str | None = None) -> Catalog:
    """Read a DR16Q-like FITS catalogue.

    ``label_column`` (case-insensitive: Z, Z_VI, Z_PIPE, Z_PCA, Z_QN ...) gives ``z``; values below
    :data:`MISSING_Z_BELOW` (DR16Q's -1) or non-finite become NaN. ``class_column`` gives ``cls``:
    CLASS_PERSON codes are mapped by :data:`CLASS_PERSON_CODES`, string columns (CLASS, OBJ_CLASS) by
    :func:`~astrocnn.spectra.spectrum.class_from_sdss`; None leaves every ``cls`` None.
    An unknown column raises :class:`InputError` listing the columns the file has.
    """
    path = Path(path)
    hdul, data = _open_table(path)
    with hdul:
        names_upper = {n.upper(): n for n in data.columns.names}
        plate, mjd, fiberid = (
            _column(path, data, names_upper, n, "identifier").astype(np.int64) for n in ("PLATE", "MJD", "FIBERID"))
        n = plate.shape[0]
        if label_column is not None:
            z = _missing_z(_column(path, data, names_upper, label_column, "label"))
        else:
            z = np.full(n, np.nan)
        if class_column is not None:
            cls = _classes(path, _column(path, data, names_upper, class_column, "class"), class_column)
        else:
            cls = [None] * n
        extra = {}
        for name in EXTRA_COLUMNS:
            if name in names_upper and np.ndim(data[names_upper[name]]) == 1:
                values = np.array(data[names_upper[name]])
                if values.dtype.kind == "S":
                    values = np.char.rstrip(np.char.decode(values, "ascii", "replace")).astype(object)
                else:
                    values = values.astype(values.dtype.newbyteorder("="))
                extra[name] = values
    n_missing = int(np.isnan(z).sum())
    if label_column is not None and n_missing:
        log.info("%s: %d of %d rows have no %s value", path, n_missing, n, label_column)
    return Catalog(path=path, label_column=label_column, class_column=class_column, plate=plate, mjd=mjd,
                   fiberid=fiberid, z=z, cls=cls, extra=extra)


def join_catalog(catalog: Catalog, spec_dir_or_files: str | os.PathLike | Iterable[str | os.PathLike]
                 ) -> tuple[list[tuple[Path, dict[str, Any]]], list[tuple[str, str]]]:
    """Match catalogue rows to spectrum files by PLATE-MJD-FIBERID.

    Files are found by name (``spec-PPPP-MMMMM-FFFF.fits[.gz]``) anywhere under the given folders, so
    both a flat folder and the SDSS archive's ``PPPP/`` plate sub-folders work; the files are not opened.
    Returns ``(matches, missing)``: ``matches`` lists ``(path, labels)`` in catalogue order, with
    ``labels = catalog.row(i)``; ``missing`` lists ``(id, reason)`` for rows without a file (and repeated
    rows), which callers report rather than treat as fatal.
    """
    index: dict[tuple[int, int, int], Path] = {}
    for path in find_spec_files(spec_dir_or_files):
        key = parse_spec_filename(path)
        if key is None:
            continue
        if key in index:
            log.warning("%s: same spectrum as %s; using the first", path, index[key])
            continue
        index[key] = path
    matches: list[tuple[Path, dict[str, Any]]] = []
    missing: list[tuple[str, str]] = []
    seen: dict[tuple[int, int, int], int] = {}
    for i in range(len(catalog)):
        key = (int(catalog.plate[i]), int(catalog.mjd[i]), int(catalog.fiberid[i]))
        if key in seen:
            missing.append((catalog.id(i), f"repeats catalogue row {seen[key]}"))
            continue
        seen[key] = i
        path = index.get(key)
        if path is None:
            missing.append((catalog.id(i), f"no file {spec_filename(*key)}"))
        else:
            matches.append((path, catalog.row(i)))
    if missing:
        log.info("%s: %d of %d rows have no spectrum file", catalog.path, len(missing), len(catalog))
    return matches, missing


def _as_columns(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]]) -> tuple[dict[str, list], int]:
    if isinstance(rows, Mapping):
        columns = {str(k).upper(): list(np.asarray(v).tolist()) for k, v in rows.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"catalogue columns have different lengths: {sorted(lengths)}")
        return columns, lengths.pop() if lengths else 0
    columns: dict[str, list] = {}
    n = len(rows)
    for i, row in enumerate(rows):
        for key, value in row.items():
            columns.setdefault(str(key).upper(), [None] * n)[i] = value
    return columns, n


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, (float, np.floating)) and math.isnan(value))


def _format_for(name: str, values: list) -> str:
    present = [v for v in values if v is not None]
    if all(isinstance(v, (bool, np.bool_)) for v in present) and present:
        return "L"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present) and present:
        return "K"
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in present) and present:
        return "D"
    width = max([len(str(v)) for v in present] + [1])
    return f"{width}A"


def write_catalog(rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], path: str | os.PathLike) -> Path:
    """Write a DR16Q-like FITS catalogue atomically (gzipped if ``path`` ends in ``.gz``); :func:`read_catalog`
    reads it back.

    ``rows`` is a sequence of dicts (one per object) or a dict of equal-length columns; keys are column
    names in any case. PLATE, MJD and FIBERID are required; the other :data:`CATALOG_COLUMNS` get their
    DR16Q-style "no value" (-1 for redshifts, 0 for CLASS_PERSON, "" for strings) when absent or None.
    Any other key becomes an extra column (integer, float, bool or string, from its values).
    """
    from astropy.io import fits

    path = Path(path)
    columns, n = _as_columns(rows)
    for key in ("PLATE", "MJD", "FIBERID"):
        if key not in columns or any(v is None for v in columns[key]):
            raise ValueError(f"every catalogue row needs {key}")
    fits_columns = []
    for name in list(CATALOG_COLUMNS) + [k for k in columns if k not in CATALOG_COLUMNS]:
        values = columns.get(name, [None] * n)
        if name in CATALOG_COLUMNS:
            fmt, default = CATALOG_COLUMNS[name]
            values = [default if _is_missing(v) else v for v in values]
            if fmt.endswith("A"):
                values = [str(v) for v in values]
                fmt = f"{max([int(fmt[:-1])] + [len(v) for v in values])}A"
        else:
            fmt = _format_for(name, values)
            fill = "" if fmt.endswith("A") else (False if fmt == "L" else (-1 if fmt == "K" else np.nan))
            values = [fill if v is None else (str(v) if fmt.endswith("A") else v) for v in values]
        fits_columns.append(fits.Column(name=name, format=fmt, array=np.array(values)))
    table = fits.BinTableHDU.from_columns(fits_columns)
    table.header["EXTNAME"] = "CATALOG"
    write_hdul(fits.HDUList([fits.PrimaryHDU(), table]), path)
    return path


__all__ = ["CATALOG_COLUMNS", "CLASS_PERSON_CODES", "Catalog", "EXTRA_COLUMNS", "MISSING_Z_BELOW", "join_catalog",
           "read_catalog", "write_catalog"]
