"""Read and write SDSS spectrum files.

Formats
-------
``"spec"``
    SDSS ``spec`` / ``spec-lite`` files (SDSS-I/II legacy, BOSS, eBOSS): HDU1 ``COADD`` binary table with
    ``loglam``, ``flux``, ``ivar``, ``and_mask`` ... (column names upper or lower case), HDU2 ``SPALL`` (BOSS)
    or ``SPECOBJ`` (legacy) with one row holding ``PLATE``, ``MJD``, ``FIBERID``, ``Z``, ``CLASS`` ....
    Older BOSS files carry no EXTNAME at all; the reader then goes by HDU index.
``"image"``
    Older BOSS one-fibre image files: HDU0 a 1-D flux image whose header gives log10(lambda) of pixel ``i``
    as ``COEFF0 + COEFF1 * i``, then unnamed image HDUs. The real file we know (plate 5063, run2d v5_7_0)
    holds HDU1 ivar (float32), HDU2 loglam (float64) and HDU3 a uint8 flag that is 1 on good pixels.

Wavelengths are vacuum (SDSS spectra are) and ``loglam`` is log10(Angstrom).

Speed: ``astropy.io.fits`` needs ~40 ms per BOSS spec-lite file, because turning the 236-column HDU2
into a table costs far more than the data. :func:`read_spectrum` therefore parses the FITS structure
itself (headers, then only the bytes of the columns it needs), ~1 ms per file; the tests check that it
gives the same arrays as astropy on every real file we have. Writers use astropy.

Spectra domain, on the core.
"""
from __future__ import annotations

import gzip
import io
import logging
import math
import os
import re
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterable

import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.io import atomic_path
from astrocnn.spectra.spectrum import Spectrum, class_from_sdss

log = logging.getLogger(__name__)

#: Native SDSS/BOSS pixel: 1e-4 dex in log10(lambda), 69 km/s.
SDSS_LOGLAM_STEP = 1e-4
FORMAT_SPEC = "spec"
FORMAT_IMAGE = "image"
#: EXTNAMEs of the one-row label table: BOSS/eBOSS files say SPALL, legacy files SPECOBJ.
LABEL_EXTNAMES = ("SPALL", "SPECOBJ")
#: Flux unit of every SDSS spectrum.
FLUX_UNIT = "1E-17 erg/cm^2/s/Ang"

_SPEC_NAME = re.compile(r"^spec-(\d+)-(\d+)-(\d+)\.fits(?:\.gz)?$", re.IGNORECASE)
_ID_TAIL = re.compile(r"(\d+)-(\d+)-(\d+)$")


def spec_filename(plate: int, mjd: int, fiberid: int) -> str:
    """SDSS file name of a spectrum, e.g. ``spec_filename(266, 51602, 13) == "spec-0266-51602-0013.fits"``."""
    return "spec-%04d-%05d-%04d.fits" % (int(plate), int(mjd), int(fiberid))


def spec_id(plate: int, mjd: int, fiberid: int) -> str:
    """Identifier of a spectrum as SDSS writes it in file names, e.g. ``"6001-56072-0702"``."""
    return "%04d-%05d-%04d" % (int(plate), int(mjd), int(fiberid))


def parse_spec_filename(name: str | os.PathLike) -> tuple[int, int, int] | None:
    """(plate, mjd, fiberid) from a name like ``spec-6001-56072-0702.fits[.gz]``; None if it is not one."""
    m = _SPEC_NAME.match(Path(name).name)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def find_spec_files(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a sorted, duplicate-free list of FITS files.

    Folders are searched recursively for ``*.fits`` and ``*.fits.gz`` (any case); hidden files, such as
    the ``.name.partial`` files of an interrupted atomic write, are skipped. A file named explicitly is
    kept whatever its name. The order is that of ``sorted()`` on the paths, so it does not depend on the
    order of the inputs or of the file system.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                for name in files:
                    low = name.lower()
                    if not name.startswith(".") and (low.endswith(".fits") or low.endswith(".fits.gz")):
                        found.add(Path(root) / name)
        elif p.is_file():
            found.add(p)
        else:
            raise InputError(p, "no such file or folder")
    return sorted(found)


# --------------------------------------------------------------------------------------------------
# A minimal FITS structure reader: headers, 1-D images and binary-table columns, nothing else.
# --------------------------------------------------------------------------------------------------

_BLOCK = 2880
_CARD = 80
_STRING_VALUE = re.compile(r"'((?:[^']|'')*)'")
_TFORM = re.compile(r"^\s*(\d*)\s*([LXBIJKAEDCMPQ])")
#: Bytes per element of each binary-table type code (X is bits, P/Q are heap descriptors).
_TFORM_BYTES = {"L": 1, "B": 1, "I": 2, "J": 4, "K": 8, "A": 1, "E": 4, "D": 8, "C": 8, "M": 16, "P": 8, "Q": 16}
_TFORM_DTYPE = {"L": "S1", "B": "u1", "I": ">i2", "J": ">i4", "K": ">i8", "E": ">f4", "D": ">f8"}
_BITPIX_DTYPE = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
#: Splits a header into its 80-byte cards: keyword (8 bytes), value indicator (2), the rest (70).
_CARDS = re.compile(rb"(.{8})(.{2})(.{70})", re.DOTALL)
_END_CARD = b"END" + b" " * 77


_COLUMN_CACHE: dict[bytes, dict[str, tuple[int, str, int, int]]] = {}


def _find_end_card(block: bytes) -> int:
    """Offset of the END card in a header block (card-aligned), or -1."""
    start = block.find(_END_CARD)
    while start >= 0 and start % _CARD:
        start = block.find(_END_CARD, start + 1)
    return start


class _Header:
    """The keyword = value cards of one header, parsed on demand (first occurrence of a keyword wins)."""

    def __init__(self, raw: dict[bytes, bytes]):
        self._raw = raw

    def __contains__(self, key: str) -> bool:
        return key.encode("ascii") in self._raw

    def string(self, key: str) -> str | None:
        """A string value, or None if the keyword is absent or not a string (fast path for TTYPE/TFORM)."""
        raw = self._raw.get(key.encode("ascii"))
        if raw is None:
            return None
        raw = raw.lstrip()
        if not raw.startswith(b"'"):
            return None
        end = raw.find(b"'", 1)
        if end > 0 and raw[end + 1:end + 2] != b"'":
            return raw[1:end].decode("ascii", "replace").rstrip()
        m = _STRING_VALUE.match(raw.decode("ascii", "replace"))
        return m.group(1).replace("''", "'").rstrip() if m else None

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._raw.get(key.encode("ascii"))
        if raw is None:
            return default
        if raw.lstrip().startswith(b"'"):
            value = self.string(key)
            return default if value is None else value
        value = raw.decode("ascii", "replace").split("/", 1)[0].strip()
        if value == "T":
            return True
        if value == "F":
            return False
        if not value:
            return default
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value.replace("D", "E").replace("d", "e"))
        except ValueError:
            return value

    def integer(self, key: str, path: Path, where: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(path, f"corrupt FITS header: {where} has no valid integer {key} (got {value!r})")
        return value


class _Hdu:
    """Where one HDU's data lie in the file, with its header."""

    def __init__(self, index: int, header: _Header, header_bytes: bytes, data_offset: int, data_size: int,
                 shape: tuple[int, ...], bitpix: int):
        self.index = index
        self.header = header
        self.data_offset = data_offset
        self.data_size = data_size
        self.shape = shape  # NAXIS1..NAXISn in FITS order (fastest first)
        self.bitpix = bitpix
        self.header_bytes = header_bytes
        self.columns: dict[str, tuple[int, str, int, int]] | None = None  # filled by _FitsFile.columns

    @property
    def extname(self) -> str | None:
        name = self.header.get("EXTNAME")
        return str(name).strip().upper() if isinstance(name, str) and name.strip() else None

    @property
    def is_bintable(self) -> bool:
        return self.index > 0 and str(self.header.get("XTENSION", "")).strip().upper() == "BINTABLE"

    @property
    def is_image(self) -> bool:
        if self.index == 0:
            return len(self.shape) > 0 and all(n > 0 for n in self.shape)
        return str(self.header.get("XTENSION", "")).strip().upper() == "IMAGE" and len(self.shape) > 0


class _FitsFile:
    """Reads a FITS file's HDUs lazily from a seekable binary stream of known size."""

    def __init__(self, fh: BinaryIO, size: int, path: Path):
        self.fh = fh
        self.size = size
        self.path = path
        self._hdus: list[_Hdu] = []
        self._next_offset = 0
        self._exhausted = False

    def _read(self, offset: int, n: int) -> bytes:
        self.fh.seek(offset)
        return self.fh.read(n)

    def hdu(self, index: int) -> _Hdu | None:
        """HDU number ``index`` (0 = primary), or None if the file has fewer HDUs."""
        while len(self._hdus) <= index and not self._exhausted:
            self._scan_next()
        return self._hdus[index] if index < len(self._hdus) else None

    def all_hdus(self, limit: int = 64) -> list[_Hdu]:
        self.hdu(limit - 1)
        return list(self._hdus)

    def _scan_next(self) -> None:
        index = len(self._hdus)
        offset = self._next_offset
        if index > 0 and self.size - offset < _CARD:
            # Nothing (or only stray padding) after the last HDU: the normal end of a FITS file.
            self._exhausted = True
            return
        first = self._read(offset, _CARD)
        if index == 0:
            if not first.startswith(b"SIMPLE  ="):
                raise InputError(self.path, "not a FITS file (no SIMPLE card at the start)")
        elif not first.startswith(b"XTENSION="):
            if first.strip(b"\0 ") == b"":
                self._exhausted = True  # zero or blank padding after the last HDU
                return
            raise InputError(self.path, f"corrupt FITS file: HDU{index} does not start with an XTENSION card")
        blocks = []
        pos = offset
        while True:
            block = self._read(pos, _BLOCK)
            if len(block) < _BLOCK:
                raise InputError(self.path, f"truncated FITS file: the header of HDU{index} has no END card")
            pos += _BLOCK
            blocks.append(block)
            end = _find_end_card(block)
            if end >= 0:
                blocks[-1] = block[:end]
                break
        header_bytes = b"".join(blocks)
        cards = _CARDS.findall(header_bytes)
        # Reversed so that the first occurrence of a repeated keyword wins, as in astropy.
        raw = {key.rstrip(): value for key, eq, value in reversed(cards) if eq == b"= "}
        header = _Header(raw)
        where = f"HDU{index}"
        bitpix = header.integer("BITPIX", self.path, where)
        if bitpix not in _BITPIX_DTYPE:
            raise InputError(self.path, f"corrupt FITS header: {where} has BITPIX = {bitpix}")
        naxis = header.integer("NAXIS", self.path, where)
        if not 0 <= naxis <= 999:
            raise InputError(self.path, f"corrupt FITS header: {where} has NAXIS = {naxis}")
        shape = tuple(header.integer(f"NAXIS{k}", self.path, where) for k in range(1, naxis + 1))
        if any(n < 0 for n in shape):
            raise InputError(self.path, f"corrupt FITS header: {where} has a negative NAXISn")
        if header.get("GROUPS") is True:
            raise InputError(self.path, f"{where} is a random-groups HDU, which SDSS spectra never use")
        pcount = header.integer("PCOUNT", self.path, where, 0)
        gcount = header.integer("GCOUNT", self.path, where, 1)
        if pcount < 0 or gcount < 0:
            raise InputError(self.path, f"corrupt FITS header: {where} has a negative PCOUNT or GCOUNT")
        n_elements = math.prod(shape) if shape else 0
        data_size = abs(bitpix) // 8 * gcount * (pcount + n_elements)
        self._hdus.append(_Hdu(index, header, header_bytes, pos, data_size, shape, bitpix))
        self._next_offset = pos + -(-data_size // _BLOCK) * _BLOCK

    def data_bytes(self, hdu: _Hdu) -> bytes:
        """The HDU's data (without padding), checking the file really holds them."""
        end = hdu.data_offset + hdu.data_size
        if end > self.size:
            raise InputError(self.path, f"truncated FITS file: HDU{hdu.index} needs {end} bytes, the file has "
                                        f"{self.size}")
        return self._read(hdu.data_offset, hdu.data_size)

    def image(self, hdu: _Hdu) -> np.ndarray:
        """A 1-D image HDU as a native-endian array (BSCALE/BZERO applied)."""
        if len(hdu.shape) != 1:
            raise InputError(self.path, f"HDU{hdu.index} holds a {'x'.join(map(str, hdu.shape))} image; only "
                                        f"1-D one-fibre spectra are supported")
        n = hdu.shape[0]
        dtype = np.dtype(_BITPIX_DTYPE[hdu.bitpix])
        data = np.frombuffer(self.data_bytes(hdu), dtype=dtype, count=n)
        scale = hdu.header.get("BSCALE", 1)
        zero = hdu.header.get("BZERO", 0)
        if (scale, zero) != (1, 0):
            return data.astype(np.float64) * float(scale) + float(zero)
        return data.astype(dtype.newbyteorder("="))

    def columns(self, hdu: _Hdu) -> dict[str, tuple[int, str, int, int]]:
        """Upper-case column name -> (byte offset in a row, type code, repeat, 1-based column number)."""
        if hdu.columns is None:
            # Files of one survey share their table layouts, and the 236-column SPALL header costs more
            # to parse than the data; the layout is a pure function of the header bytes.
            cached = _COLUMN_CACHE.get(hdu.header_bytes)
            if cached is None:
                cached = self._parse_columns(hdu)
                if len(_COLUMN_CACHE) >= 64:
                    _COLUMN_CACHE.clear()
                _COLUMN_CACHE[hdu.header_bytes] = cached
            hdu.columns = cached
        return hdu.columns

    def _parse_columns(self, hdu: _Hdu) -> dict[str, tuple[int, str, int, int]]:
        where = f"HDU{hdu.index}"
        if len(hdu.shape) != 2:
            raise InputError(self.path, f"corrupt FITS header: binary table {where} has NAXIS = {len(hdu.shape)}")
        tfields = hdu.header.integer("TFIELDS", self.path, where)
        if not 0 <= tfields <= 999:
            raise InputError(self.path, f"corrupt FITS header: {where} has TFIELDS = {tfields}")
        cols: dict[str, tuple[int, str, int, int]] = {}
        offset = 0
        for k in range(1, tfields + 1):
            tform = hdu.header.string(f"TFORM{k}")
            m = _TFORM.match(tform) if tform is not None else None
            if m is None:
                raise InputError(self.path, f"corrupt FITS header: {where} column {k} has TFORM {tform!r}")
            repeat = int(m.group(1)) if m.group(1) else 1
            code = m.group(2)
            width = -(-repeat // 8) if code == "X" else _TFORM_BYTES[code] * (1 if code in "PQ" else repeat)
            name = hdu.header.string(f"TTYPE{k}")
            if name and name.strip():
                cols.setdefault(name.strip().upper(), (offset, code, repeat, k))
            offset += width
        if offset != hdu.shape[0]:
            raise InputError(self.path, f"corrupt FITS header: {where} columns need {offset} bytes per row, "
                                        f"NAXIS1 says {hdu.shape[0]}")
        return cols

    def table(self, hdu: _Hdu, names: Iterable[str], max_rows: int | None = None) -> dict[str, np.ndarray]:
        """The named columns (case-insensitive; absent ones are left out) of a binary table HDU.

        Numeric columns come back native-endian with TSCAL/TZERO applied, shape (rows,) or (rows, repeat);
        logical columns as bool; string columns as object arrays of ``str`` without trailing blanks.
        """
        cols = self.columns(hdu)
        row_bytes, n_rows = hdu.shape
        if max_rows is not None:
            n_rows = min(n_rows, max_rows)
        wanted = [(name, cols[name.upper()]) for name in names if name.upper() in cols]
        if not wanted:
            return {}
        end = hdu.data_offset + row_bytes * n_rows
        if end > self.size:
            raise InputError(self.path, f"truncated FITS file: HDU{hdu.index} needs {end} bytes, the file has "
                                        f"{self.size}")
        buf = self._read(hdu.data_offset, row_bytes * n_rows)
        out: dict[str, np.ndarray] = {}
        for name, (offset, code, repeat, k) in wanted:
            if code == "A":
                dtype = np.dtype(f"S{repeat}")
            elif code in _TFORM_DTYPE:
                dtype = np.dtype(_TFORM_DTYPE[code]) if repeat == 1 else np.dtype((_TFORM_DTYPE[code], (repeat,)))
            else:
                continue  # bits, complex and heap arrays: never an SDSS spectrum or label column
            if repeat == 0 or n_rows == 0:
                out[name] = np.zeros((0,), dtype=dtype.base.newbyteorder("="))
                continue
            raw = np.ndarray(shape=(n_rows,), dtype=dtype, buffer=buf, offset=offset, strides=(row_bytes,))
            if code == "A":
                out[name] = np.array([v.rstrip(b"\0 ").decode("ascii", "replace") for v in raw.tolist()],
                                     dtype=object)
                continue
            if code == "L":
                out[name] = raw == b"T"
                continue
            values = raw.astype(raw.dtype.base.newbyteorder("="))
            scale = hdu.header.get(f"TSCAL{k}", 1)
            zero = hdu.header.get(f"TZERO{k}", 0)
            if (scale, zero) != (1, 0) and code in "BIJK":
                # TZERO = 2**(bits-1) is FITS's way of storing unsigned integers (and -128, signed bytes).
                unsigned = {"I": (np.uint16, 15), "J": (np.uint32, 31), "K": (np.uint64, 63)}
                if scale == 1 and code in unsigned and zero == 1 << unsigned[code][1]:
                    utype, bits = unsigned[code]
                    values = values.view(utype) ^ utype(1 << bits)
                elif scale == 1 and code == "B" and zero == -128:
                    values = (values.astype(np.int16) - 128).astype(np.int8)
                else:
                    values = values.astype(np.float64) * float(scale) + float(zero)
            elif (scale, zero) != (1, 0) and code in "ED":
                values = values.astype(np.float64) * float(scale) + float(zero)
            out[name] = values
        return out


def _open_stream(path: Path) -> tuple[BinaryIO, int]:
    """A seekable stream over the (decompressed) file, and its size in bytes; the caller closes it."""
    if path.is_dir():
        raise InputError(path, "is a folder, not a FITS file")
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, f"cannot open ({exc.strerror or exc})") from None
    if fh.read(2) != b"\x1f\x8b":
        return fh, os.fstat(fh.fileno()).st_size
    with fh:
        fh.seek(0)
        try:
            data = gzip.decompress(fh.read())
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(path, f"corrupt or truncated gzip file ({exc})") from None
    return io.BytesIO(data), len(data)


# --------------------------------------------------------------------------------------------------
# Reading spectra
# --------------------------------------------------------------------------------------------------

_COADD_COLUMNS = ("LOGLAM", "FLUX", "IVAR", "AND_MASK", "MASK")
_LABEL_COLUMNS = ("PLATE", "MJD", "FIBERID", "Z", "Z_ERR", "CLASS", "SUBCLASS", "ZWARNING", "RUN2D",
                  "SN_MEDIAN_ALL", "PLUG_RA", "PLUG_DEC")


def read_spectrum(path: str | os.PathLike) -> Spectrum:
    """Read one SDSS spectrum file (``spec``/``spec-lite`` table format or the old image format).

    Returns a :class:`Spectrum` at the file's native sampling: ``loglam`` (n,) float64 log10(vacuum
    Angstrom), ``flux`` (n,) float32 in 1e-17 erg/s/cm^2/A, ``ivar`` (n,) float32, ``mask`` (n,) int32
    ``and_mask`` bits (zeros for the image format). SDSS stores loglam as float32 (precision 2.4e-7 dex,
    ~1/400 pixel); when those values are the float32 roundings of the exact 1e-4 dex SDSS grid the exact
    grid is returned. Pixels with non-finite flux or ivar get ``flux = 0`` and ``ivar = 0``.

    ``id`` is ``"PPPP-MMMMM-FFFF"`` when plate, MJD and fibre are known, else the file name without its
    FITS extension. ``z`` and ``cls`` come from the file's pipeline redshift and CLASS (NaN / None when the
    file has none). ``meta`` holds ``plate``, ``mjd``, ``fiberid``, ``subclass``, ``zwarning``, ``z_err``,
    ``sn_median_all``, ``run2d``, ``class_sdss``, ``ra``/``dec`` (plug position, degrees) when present,
    plus ``path`` and ``format`` (``"spec"`` or ``"image"``); image files add ``good_pixel_fraction``
    (the share of pixels their own 0/1 flag HDU calls good). Every meta value is a JSON-ready scalar.

    Raises :class:`InputError` (``"<path>: <problem>"``) for anything that is not a usable spectrum.
    """
    path = Path(path)
    fh, size = _open_stream(path)
    try:
        with fh:
            if size == 0:
                raise InputError(path, "empty file, not a FITS file")
            fits_file = _FitsFile(fh, size, path)
            primary = fits_file.hdu(0)
            if primary.is_image:
                return _read_image_format(fits_file, primary)
            return _read_table_format(fits_file, primary)
    except InputError:
        raise
    except (ValueError, TypeError, OverflowError, IndexError, KeyError, EOFError, OSError, MemoryError) as exc:
        # The parser checks what it relies on; this is the last line so that no odd byte pattern can
        # escape as anything but a one-line input error.
        log.debug("unexpected error reading %s", path, exc_info=True)
        raise InputError(path, f"corrupt FITS file ({type(exc).__name__}: {exc})") from None


def _find_coadd(fits_file: _FitsFile) -> _Hdu:
    hdu1 = fits_file.hdu(1)
    if hdu1 is not None and hdu1.is_bintable and hdu1.extname in (None, "COADD"):
        return hdu1
    for hdu in fits_file.all_hdus():
        if hdu.is_bintable and hdu.extname == "COADD":
            return hdu
    # Last resort: any binary table carrying a flux column.
    for hdu in fits_file.all_hdus():
        if hdu.is_bintable and "FLUX" in fits_file.columns(hdu):
            return hdu
    hdus = fits_file.all_hdus()
    hint = ""
    for hdu in hdus:
        if hdu.is_bintable and {"PLATE", "MJD", "FIBERID"} <= set(fits_file.columns(hdu)) and hdu.shape[1] > 1:
            hint = f" (HDU{hdu.index} looks like a catalogue: {hdu.shape[1]} rows with PLATE, MJD, FIBERID)"
            break
    raise InputError(fits_file.path, f"no spectrum table: none of the file's {len(hdus)} HDU(s) is a COADD "
                                     f"binary table{hint}")


def _find_labels(fits_file: _FitsFile, coadd: _Hdu) -> _Hdu | None:
    nxt = fits_file.hdu(coadd.index + 1)
    if nxt is not None and nxt.is_bintable:
        if nxt.extname in LABEL_EXTNAMES or (nxt.extname is None and "Z" in fits_file.columns(nxt)):
            return nxt
    for hdu in fits_file.all_hdus():
        if hdu.is_bintable and hdu.extname in LABEL_EXTNAMES:
            return hdu
    return None


def _read_table_format(fits_file: _FitsFile, primary: _Hdu) -> Spectrum:
    path = fits_file.path
    coadd = _find_coadd(fits_file)
    cols = fits_file.table(coadd, _COADD_COLUMNS)
    for name in ("FLUX", "LOGLAM", "IVAR"):
        if name not in cols:
            available = ", ".join(fits_file.columns(coadd)) or "none"
            raise InputError(path, f"no {name.lower()} column in the spectrum table HDU{coadd.index} "
                                   f"(columns: {available})")
        if cols[name].ndim != 1:
            raise InputError(path, f"column {name.lower()} of HDU{coadd.index} holds arrays, expected one value "
                                   f"per pixel")
    mask = cols.get("AND_MASK", cols.get("MASK"))
    loglam, flux, ivar, mask = _checked_arrays(path, cols["LOGLAM"], cols["FLUX"], cols["IVAR"], mask)

    labels: dict[str, Any] = {}
    label_hdu = _find_labels(fits_file, coadd)
    if label_hdu is not None and label_hdu.shape[1] > 0:
        for name, values in fits_file.table(label_hdu, _LABEL_COLUMNS, max_rows=1).items():
            if len(values) and np.ndim(values[0]) == 0:
                labels[name] = values[0].item() if isinstance(values[0], np.generic) else values[0]
    meta = _label_meta(labels, primary.header)
    meta.update(path=str(path), format=FORMAT_SPEC)
    z = labels.get("Z")
    return Spectrum(
        loglam=loglam, flux=flux, ivar=ivar, mask=mask,
        id=_spectrum_id(path, meta),
        z=float(z) if isinstance(z, (int, float)) else float("nan"),
        cls=class_from_sdss(labels.get("CLASS")),
        meta=meta,
    )


def _label_meta(labels: dict[str, Any], header: _Header) -> dict[str, Any]:
    """meta entries from the label row, falling back on the primary header for plate/MJD/fibre/run2d."""
    meta: dict[str, Any] = {}
    for key, row_name, header_name in (("plate", "PLATE", "PLATEID"), ("mjd", "MJD", "MJD"),
                                       ("fiberid", "FIBERID", "FIBERID")):
        value = labels.get(row_name, header.get(header_name))
        meta[key] = int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value) and value >= 0 else None
    run2d = labels.get("RUN2D", header.get("RUN2D"))
    meta["run2d"] = str(run2d).strip() if run2d is not None else None
    for key, name in (("class_sdss", "CLASS"), ("subclass", "SUBCLASS")):
        meta[key] = str(labels[name]).strip() if name in labels else None
    meta["zwarning"] = int(labels["ZWARNING"]) if "ZWARNING" in labels else None
    for key, name in (("z_err", "Z_ERR"), ("sn_median_all", "SN_MEDIAN_ALL"), ("ra", "PLUG_RA"),
                      ("dec", "PLUG_DEC")):
        if name in labels:
            meta[key] = float(labels[name])
    return meta


def _spectrum_id(path: Path, meta: dict[str, Any]) -> str:
    if None not in (meta.get("plate"), meta.get("mjd"), meta.get("fiberid")):
        return spec_id(meta["plate"], meta["mjd"], meta["fiberid"])
    name = path.name
    for suffix in (".gz", ".fits", ".fit"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _exact_sdss_loglam(loglam32: np.ndarray) -> np.ndarray | None:
    """The exact 1e-4 dex grid if ``loglam32`` holds its float32 roundings (within one float32 ulp)."""
    # SDSS grids start on a multiple of the step; k / 1e4 is the float64 nearest to the decimal value.
    first = round(float(loglam32[0]) / SDSS_LOGLAM_STEP)
    grid = (first + np.arange(loglam32.size)) / (1 / SDSS_LOGLAM_STEP)
    ulp = np.spacing(np.abs(loglam32)).astype(np.float64)
    if np.all(np.abs(grid - loglam32.astype(np.float64)) <= ulp):
        return grid
    return None


def _checked_arrays(path: Path, loglam: np.ndarray, flux: np.ndarray, ivar: np.ndarray,
                    mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate one spectrum's arrays and return them native-endian, bad pixels zeroed."""
    lengths = {"loglam": loglam.shape, "flux": flux.shape, "ivar": ivar.shape}
    if mask is not None:
        lengths["mask"] = mask.shape
    if len(set(lengths.values())) > 1 or any(len(s) != 1 for s in lengths.values()):
        shown = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, s in lengths.items())
        raise InputError(path, f"array lengths differ ({shown})")
    n = loglam.shape[0]
    if n < 2:
        raise InputError(path, f"spectrum has {n} pixel(s)")
    if not np.all(np.isfinite(loglam)):
        raise InputError(path, "loglam has NaN/inf values")
    steps = np.diff(loglam.astype(np.float64))
    if not np.all(steps > 0):
        i = int(np.argmax(~(steps > 0)))
        raise InputError(path, f"loglam not increasing (pixel {i + 1} of {n})")
    if not np.all((loglam > 2.0) & (loglam < 6.0)):
        raise InputError(path, f"loglam {float(loglam.min()):.4g}-{float(loglam.max()):.4g} is not log10 of "
                               f"an optical wavelength in Angstrom")
    finite = np.isfinite(flux)
    if not finite.any():
        raise InputError(path, "flux all NaN/inf")
    good_ivar = np.isfinite(ivar) & (ivar > 0)
    if not good_ivar.any():
        raise InputError(path, "ivar all zero (no pixel has a measurement)")
    if not (good_ivar & finite).any():
        raise InputError(path, "no pixel has both a finite flux and ivar > 0")

    exact = _exact_sdss_loglam(loglam) if loglam.dtype.itemsize == 4 else None
    loglam = exact if exact is not None else loglam.astype(np.float64)
    flux = flux.astype(flux.dtype.newbyteorder("="), copy=True)
    ivar = ivar.astype(ivar.dtype.newbyteorder("="), copy=True)
    bad = ~(finite & (good_ivar | (ivar == 0)))
    if bad.any():
        log.debug("%s: %d pixel(s) with NaN/inf flux or invalid ivar set to flux=0, ivar=0", path, int(bad.sum()))
        flux[bad] = 0
        ivar[bad] = 0
    if mask is None:
        mask = np.zeros(n, dtype=np.int32)
    else:
        mask = mask.astype(mask.dtype.newbyteorder("="))
    return loglam, flux, ivar, mask


def _read_image_format(fits_file: _FitsFile, primary: _Hdu) -> Spectrum:
    path = fits_file.path
    header = primary.header
    flux = fits_file.image(primary)
    n = flux.shape[0]
    coeff0 = header.get("COEFF0", header.get("CRVAL1"))
    coeff1 = header.get("COEFF1", header.get("CD1_1", header.get("CDELT1")))
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in (coeff0, coeff1)):
        raise InputError(path, "image HDU0 has no COEFF0/COEFF1 (log10 wavelength) keywords")
    crpix = header.get("CRPIX1", 1) if "COEFF0" not in header else 1
    # COEFF0 is log10(lambda) of the first pixel; CRVAL1 is at 1-based pixel CRPIX1.
    loglam = float(coeff0) + float(coeff1) * (np.arange(n) + 1 - float(crpix))

    ivar = None
    good_flag = None
    mask = None
    for hdu in fits_file.all_hdus()[1:]:
        if not hdu.is_image:
            continue
        data = fits_file.image(hdu)
        if data.shape != flux.shape:
            raise InputError(path, f"array lengths differ (HDU0 flux has {n} pixels, HDU{hdu.index} has "
                                   f"{data.shape[0]})")
        if data.dtype.kind == "f":
            if np.all(np.isfinite(data)) and np.allclose(data, loglam, rtol=0, atol=1e-5):
                continue  # an explicit loglam array that agrees with COEFF0/COEFF1
            if ivar is None:
                ivar = data
        elif data.dtype == np.uint8 and set(np.unique(data).tolist()) <= {0, 1}:
            good_flag = data.astype(bool)
        elif mask is None:
            mask = data.astype(np.int64)
    if ivar is None:
        log.warning("%s: no inverse-variance HDU; using ivar = 1 wherever the flux is finite", path)
        ivar = np.isfinite(flux).astype(np.float32)
    if mask is not None and (mask.min() < -(1 << 31) or mask.max() >= (1 << 31)):
        mask = None
    loglam, flux, ivar, mask = _checked_arrays(path, loglam, flux, ivar,
                                               None if mask is None else mask.astype(np.int32))
    meta = _label_meta({}, header)
    meta.update(path=str(path), format=FORMAT_IMAGE)
    if good_flag is not None:
        # The file's own 0/1 good-pixel flag is 0 at bright sky lines as well as at the empty ends. It is
        # not folded into ivar: spec files flag such sky pixels BRIGHTSKY, which we keep (see masks.py).
        meta["good_pixel_fraction"] = float(good_flag.mean())
    z = header.get("Z")
    return Spectrum(
        loglam=loglam, flux=flux, ivar=ivar, mask=mask,
        id=_spectrum_id(path, meta),
        z=float(z) if isinstance(z, (int, float)) and not isinstance(z, bool) else float("nan"),
        cls=class_from_sdss(header.get("CLASS")),
        meta=meta,
    )


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

def _plate_mjd_fiber(spectrum: Spectrum) -> tuple[int, int, int]:
    meta = spectrum.meta
    values = [meta.get(k) for k in ("plate", "mjd", "fiberid")]
    if any(v is None for v in values):
        m = _ID_TAIL.search(spectrum.id or "")
        if m:
            values = [int(g) for g in m.groups()]
        else:
            log.warning("spectrum %r has no plate/mjd/fiberid; writing -1", spectrum.id)
            values = [-1 if v is None else v for v in values]
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _meta_array(spectrum: Spectrum, key: str, default: np.ndarray) -> np.ndarray:
    value = spectrum.meta.get(key)
    if value is None:
        return default
    value = np.asarray(value)
    if value.shape != spectrum.loglam.shape:
        raise ValueError(f"spectrum {spectrum.id!r}: meta[{key!r}] has shape {value.shape}, "
                         f"loglam has {spectrum.loglam.shape}")
    return value


def _sdss_class(spectrum: Spectrum) -> str:
    return {"qso": "QSO", "galaxy": "GALAXY", "star": "STAR"}.get(spectrum.cls or "", "")


def _median_snr(flux: np.ndarray, ivar: np.ndarray) -> float:
    good = ivar > 0
    return float(np.median(flux[good] * np.sqrt(ivar[good]))) if good.any() else 0.0


def _uniform_step(loglam: np.ndarray) -> float | None:
    if loglam.size < 2:
        return None
    step = (loglam[-1] - loglam[0]) / (loglam.size - 1)
    return float(step) if np.allclose(np.diff(loglam), step, rtol=0, atol=1e-9) else None


def write_hdul(hdul, path: str | os.PathLike) -> None:
    """Write an astropy HDUList atomically; ``.gz`` names are gzipped with a zero timestamp (same bytes
    on every run)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.name.lower().endswith(".gz"):
            buf = io.BytesIO()
            hdul.writeto(buf)
            with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(buf.getvalue())
        else:
            hdul.writeto(tmp, overwrite=True)


def write_spec_lite(spectrum: Spectrum, path: str | os.PathLike, *, extname: bool = True,
                    label_extname: str = "SPALL", run2d: str | None = None) -> Path:
    """Write ``spectrum`` as an SDSS spec-lite file that :func:`read_spectrum` (and SDSS tools) read.

    Layout: primary HDU (no data; PLATEID, MJD, FIBERID, RUN2D, COEFF0/COEFF1 when the grid is uniform),
    HDU1 ``COADD`` table with SDSS's columns and dtypes (flux, loglam, ivar, wdisp, sky, model float32;
    and_mask, or_mask int32), HDU2 ``SPALL`` (or ``label_extname``, e.g. ``"SPECOBJ"`` as in legacy
    files) with one row: PLATE, MJD, FIBERID, RUN2D, CLASS, SUBCLASS, Z, Z_ERR, ZWARNING, SN_MEDIAN_ALL.

    ``wdisp``, ``sky``, ``model`` and ``or_mask`` come from ``spectrum.meta`` when present ((n,) arrays),
    else zeros (``or_mask`` defaults to the and_mask). ``extname=False`` writes the layout of the older
    BOSS files: no EXTNAMEs and upper-case column names. A name ending in ``.gz`` is gzipped.
    Plate/MJD/fibre come from ``meta`` or from an id ending in ``P-M-F``. Written atomically; returns the path.
    """
    from astropy.io import fits

    path = Path(path)
    n = spectrum.loglam.shape
    plate, mjd, fiberid = _plate_mjd_fiber(spectrum)
    meta = spectrum.meta
    run2d = run2d if run2d is not None else str(meta.get("run2d") or "v5_13_0")
    flux = np.asarray(spectrum.flux, dtype=np.float32)
    ivar = np.asarray(spectrum.ivar, dtype=np.float32)
    and_mask = np.asarray(spectrum.mask, dtype=np.int32)

    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["TELESCOP"] = ("SDSS 2.5-M", "Sloan Digital Sky Survey")
    hdr["PLATEID"] = (plate, "Current plate")
    hdr["MJD"] = (mjd, "MJD of observation")
    hdr["FIBERID"] = (fiberid, "Fiber ID")
    hdr["RUN2D"] = (run2d, "Spectroscopic 2D reduction (extraction) name")
    step = _uniform_step(spectrum.loglam)
    if step is not None:
        hdr["COEFF0"] = (float(spectrum.loglam[0]), "Central wavelength (log10) of first pixel")
        hdr["COEFF1"] = (step, "Log10 dispersion per pixel")
    hdr["VACUUM"] = (True, "Wavelengths are in vacuum")
    hdr["BUNIT"] = FLUX_UNIT

    def name(col: str) -> str:
        return col.lower() if extname else col.upper()

    zeros = np.zeros(n, dtype=np.float32)
    coadd = fits.BinTableHDU.from_columns([
        fits.Column(name=name("flux"), format="E", array=flux),
        fits.Column(name=name("loglam"), format="E", array=spectrum.loglam.astype(np.float32)),
        fits.Column(name=name("ivar"), format="E", array=ivar),
        fits.Column(name=name("and_mask"), format="J", array=and_mask),
        fits.Column(name=name("or_mask"), format="J",
                    array=_meta_array(spectrum, "or_mask", and_mask).astype(np.int32)),
        fits.Column(name=name("wdisp"), format="E", array=_meta_array(spectrum, "wdisp", zeros).astype(np.float32)),
        fits.Column(name=name("sky"), format="E", array=_meta_array(spectrum, "sky", zeros).astype(np.float32)),
        fits.Column(name=name("model"), format="E", array=_meta_array(spectrum, "model", zeros).astype(np.float32)),
    ])
    cls = _sdss_class(spectrum)
    subclass = str(meta.get("subclass") or "")
    snr = meta.get("sn_median_all")
    z_err = meta.get("z_err")
    labels = fits.BinTableHDU.from_columns([
        fits.Column(name="PLATE", format="J", array=np.array([plate], dtype=np.int32)),
        fits.Column(name="MJD", format="J", array=np.array([mjd], dtype=np.int32)),
        fits.Column(name="FIBERID", format="J", array=np.array([fiberid], dtype=np.int32)),
        fits.Column(name="RUN2D", format=f"{max(len(run2d), 1)}A", array=np.array([run2d])),
        fits.Column(name="CLASS", format="6A", array=np.array([cls])),
        fits.Column(name="SUBCLASS", format=f"{max(len(subclass), 21)}A", array=np.array([subclass])),
        fits.Column(name="Z", format="E", array=np.array([spectrum.z], dtype=np.float32)),
        fits.Column(name="Z_ERR", format="E", array=np.array([-1.0 if z_err is None else z_err], dtype=np.float32)),
        fits.Column(name="ZWARNING", format="J", array=np.array([int(meta.get("zwarning") or 0)], dtype=np.int32)),
        fits.Column(name="SN_MEDIAN_ALL", format="E",
                    array=np.array([_median_snr(flux, ivar) if snr is None else snr], dtype=np.float32)),
    ])
    if extname:
        coadd.header["EXTNAME"] = "COADD"
        labels.header["EXTNAME"] = label_extname
    write_hdul(fits.HDUList([primary, coadd, labels]), path)
    return path


def write_image_spectrum(spectrum: Spectrum, path: str | os.PathLike, *, with_ivar: bool = True,
                         with_loglam: bool = True, with_good_pixel: bool = True) -> Path:
    """Write ``spectrum`` in the old BOSS image-HDU layout (for fixtures and tests).

    HDU0 float32 flux with COEFF0/COEFF1 (and the equivalent CRVAL1/CD1_1), PLATEID, MJD, then unnamed
    image HDUs as in the real file: ivar (float32), loglam (float64), good-pixel flag (uint8, 1 = ivar > 0
    and no ``and_mask`` bit). Z, CLASS and FIBERID go in the primary header only when known. The grid must
    be uniform in log10(lambda). Written atomically; returns the path.
    """
    from astropy.io import fits

    path = Path(path)
    step = _uniform_step(spectrum.loglam)
    if step is None:
        raise ValueError(f"spectrum {spectrum.id!r}: the image format needs a grid uniform in log10(lambda)")
    meta = spectrum.meta
    primary = fits.PrimaryHDU(np.asarray(spectrum.flux, dtype=np.float32))
    hdr = primary.header
    hdr["TELESCOP"] = ("SDSS 2.5-M", "Sloan Digital Sky Survey")
    for key, value in (("PLATEID", meta.get("plate")), ("MJD", meta.get("mjd")), ("FIBERID", meta.get("fiberid"))):
        if value is not None:
            hdr[key] = int(value)
    if meta.get("run2d"):
        hdr["RUN2D"] = str(meta["run2d"])
    if np.isfinite(spectrum.z):
        hdr["Z"] = float(spectrum.z)
    if spectrum.cls:
        hdr["CLASS"] = _sdss_class(spectrum)
    hdr["VACUUM"] = (True, "Wavelengths are in vacuum")
    hdr["NWORDER"] = (2, "Linear-log10 coefficients")
    hdr["WFITTYPE"] = ("LOG-LINEAR", "Linear-log10 dispersion")
    hdr["COEFF0"] = (float(spectrum.loglam[0]), "Central wavelength (log10) of first pixel")
    hdr["COEFF1"] = (step, "Log10 dispersion per pixel")
    hdr["CRVAL1"] = (float(spectrum.loglam[0]), "Central wavelength (log10) of first pixel")
    hdr["CD1_1"] = (step, "Log10 dispersion per pixel")
    hdr["CRPIX1"] = (1, "Starting pixel (1-indexed)")
    hdr["CTYPE1"] = "LINEAR"
    hdr["DC-FLAG"] = (1, "Log-linear flag")
    hdr["BUNIT"] = FLUX_UNIT
    hdus = [primary]
    if with_ivar:
        hdus.append(fits.ImageHDU(np.asarray(spectrum.ivar, dtype=np.float32)))
    if with_loglam:
        hdus.append(fits.ImageHDU(spectrum.loglam.astype(np.float64)))
    if with_good_pixel:
        good = (np.asarray(spectrum.ivar) > 0) & (np.asarray(spectrum.mask) == 0)
        hdus.append(fits.ImageHDU(good.astype(np.uint8)))
    write_hdul(fits.HDUList(hdus), path)
    return path


__all__ = [
    "FORMAT_IMAGE", "FORMAT_SPEC", "LABEL_EXTNAMES", "SDSS_LOGLAM_STEP", "find_spec_files", "parse_spec_filename",
    "read_spectrum", "spec_filename", "spec_id", "write_hdul", "write_image_spectrum", "write_spec_lite",
]
