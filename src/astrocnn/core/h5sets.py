"""The HDF5 container every prepared set is written in, whatever its domain: atomic, and safe against failed writes.

Core layer. :class:`AtomicH5Writer` writes a new file under a temporary name and renames it when complete;
write failures (disk full, file-size limits) become one :class:`~astrocnn.core.errors.OutputError` line and
never crash the process (HDF5 writes through :class:`~astrocnn.core.io.LatchingFile`). :class:`LazyH5Reader`
opens a file on first use and never pickles it, so readers travel to data-loader workers. The domains build
their prepared-set formats on these (:mod:`astrocnn.spectra.dataset`, :mod:`astrocnn.gw.dataset`); every
such file carries ``format = "astrocnn-prepared"`` and a ``kind`` attribute naming its domain.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from astrocnn.core.errors import InputError
from astrocnn.core.io import LatchingFile, atomic_path, io_errno, output_error

log = logging.getLogger(__name__)

#: the ``format`` attribute of every prepared set
FORMAT = "astrocnn-prepared"
#: variable-length UTF-8 strings (ids, names)
STR = h5py.string_dtype("utf-8")
#: bytes per HDF5 chunk a writer aims at when it knows how many rows the file will hold (see :func:`chunk_rows`)
TARGET_CHUNK_BYTES = 8 << 20


def chunk_rows(row_bytes: int, expected_rows: int | None, default: int) -> int:
    """Rows per HDF5 chunk: ``default``, but never more than the file will hold, so a small set stays small
    (a chunk is allocated whole: 256-row chunks made a set of two spectra 9.6 MB)."""
    rows = int(default)
    if expected_rows is not None:
        rows = min(rows, max(1, int(expected_rows)))
    return max(1, min(rows, max(1, TARGET_CHUNK_BYTES // max(1, int(row_bytes)))))


def h5_dtype(kind: str):
    """The HDF5 dtype of a column given by a numpy kind letter (``f``, ``i``, ``b``, ``U``) or dtype string."""
    return STR if kind in ("U", "S", "O") else np.dtype(kind if len(kind) > 1 else {"f": "f8", "i": "i8", "b": "?"}[kind])


def read_strings(ds) -> np.ndarray:
    """A string dataset as an object array of ``str``."""
    return np.array([s.decode() if isinstance(s, bytes) else s for s in ds[:]], dtype=object)


def prepared_kind(path: str | os.PathLike) -> str:
    """The ``kind`` attribute of a prepared set (``"spectra"``, ``"strain"``); refuses a file that is not one."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        with h5py.File(path, "r") as h5:
            if h5.attrs.get("format") != FORMAT:
                raise InputError(path, "not an astrocnn prepared set (run 'astrocnn prepare' or 'astrocnn simulate')")
            kind = h5.attrs.get("kind", "spectra")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file ({exc})") from exc
    return kind.decode() if isinstance(kind, bytes) else str(kind)


def is_prepared_set(path: str | os.PathLike) -> bool:
    """True for an astrocnn prepared set (as opposed to, say, a GWOSC strain file)."""
    try:
        prepared_kind(path)
    except InputError:
        return False
    return True


class AtomicH5Writer:
    """An HDF5 file written under a temporary name and moved to ``path`` only by :meth:`close`.

    Subclasses call :meth:`_open` first, count rows in ``self._n``, may override :meth:`_flush`, and call
    :meth:`_check_io` after writing. Use as a context manager: an exception inside the block discards the
    partial file. A write that fails (disk full, file-size limit ...) raises :class:`OutputError` naming
    ``path``; the partial file is removed and an existing file at ``path`` is left as it was.
    """

    #: what a row is, and how loud the line saying the file was written
    row_name = "rows"
    log_level = logging.INFO
    _h5: h5py.File | None = None

    def _open(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._n = 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            # HDF5 writes through a file object that keeps write errors from HDF5 (see LatchingFile)
            self._fh = LatchingFile(self._tmp)
            self._h5 = h5py.File(self._fh, "w")
        except BaseException as exc:
            self._discard(exc)
            raise
        self._check_io()

    def _flush(self) -> None:
        """Write buffered rows (nothing by default)."""

    def _check_io(self, exc: BaseException | None = None) -> None:
        """Raise :class:`OutputError` (discarding the partial file) if a write has failed.

        ``exc``: an error HDF5 raised while writing; without a failed write behind it, it is re-raised.
        """
        failed = getattr(self, "_fh", None) is not None and self._fh.error is not None
        if not failed and exc is None:
            return
        cause = self._fh.error if failed else exc
        if failed or io_errno(exc) is not None:
            self._discard(cause)
            raise output_error(self.path, cause) from cause
        raise exc

    def _guard(self, func, *args, **kwargs):
        """Run a write, turning a failed write into :class:`OutputError`."""
        try:
            out = func(*args, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            self._check_io(exc)
            raise
        self._check_io()
        return out

    def close(self) -> Path:
        """Flush, close and move the file to its final name. Returns the path."""
        if self._h5 is None:
            return self.path
        try:
            self._guard(self._flush)
            self._guard(self._h5.attrs.__setitem__, "n", self._n)
            h5, self._h5 = self._h5, None
            try:
                h5.close()
            except (OSError, RuntimeError) as exc:
                self._check_io(exc)
            self._fh.sync()
            self._fh.close()
            self._check_io()
        except BaseException:
            self._discard()
            raise
        atomic, self._atomic = self._atomic, None
        atomic.__exit__(None, None, None)  # the rename; a failure there is an OutputError too
        log.log(self.log_level, "wrote %d %s to %s", self._n, self.row_name, self.path)
        return self.path

    def _discard(self, exc: BaseException | None = None) -> None:
        h5, self._h5 = self._h5, None
        if h5 is not None:
            try:
                h5.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
        atomic, self._atomic = getattr(self, "_atomic", None), None
        if atomic is not None:
            try:
                raise RuntimeError("aborted") from exc
            except RuntimeError as aborted:
                try:
                    atomic.__exit__(type(aborted), aborted, aborted.__traceback__)
                except RuntimeError:
                    pass

    def abort(self) -> None:
        """Discard the partial file."""
        self._discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()



class LazyH5Reader:
    """Base for prepared-set readers: the HDF5 file opens on first use and is never pickled, so a
    reader can be handed to forked or spawned data-loader workers."""

    _h5: h5py.File | None = None

    def _file(self) -> h5py.File:
        if self._h5 is None:
            self._h5 = h5py.File(self.path, "r")
        return self._h5

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_h5"] = None
        return state


