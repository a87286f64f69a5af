"""Atomic file output: a file appears complete under its final name, or not at all.

Write failures (disk full, file-size or quota limits, permissions) become :class:`OutputError` with one
line naming the file and the problem; the temporary file is removed and a file that already had the
final name is left as it was.

Core layer: knows no domain, no task and no trainer.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator

from astrocnn.core.errors import AstrocnnError, OutputError

#: plain words for the errors a user can do something about
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "file too large for the file-size limit of this process or file system",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a path component is a file, not a folder",
    errno.EEXIST: "a path component is a file, not a folder",
    errno.EIO: "input/output error; is the device failing or disconnected?",
}
# HDF5 reports "errno = 28"; Rust libraries (safetensors) "(os error 28)"
_ERRNO_IN_TEXT = re.compile(r"errno\s*=\s*(\d+)|os error (\d+)|\[Errno (\d+)\]")


def io_errno(exc: BaseException) -> int | None:
    """The OS error number behind ``exc``: an :class:`OSError`'s own, or one quoted in the message of a
    library's error (HDF5, safetensors). None when there is none."""
    if isinstance(exc, OSError) and exc.errno:
        return int(exc.errno)
    m = _ERRNO_IN_TEXT.search(str(exc))
    if m:
        return int(next(g for g in m.groups() if g))
    return None


def describe_os_error(exc: BaseException) -> str:
    """One line saying what went wrong with a write, in plain words ("no space left on device ...")."""
    code = io_errno(exc)
    if code in _REASONS:
        return _REASONS[code]
    if code is not None:
        return os.strerror(code)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def output_error(path: str | os.PathLike, exc: BaseException) -> OutputError:
    """``OutputError("<path>: could not be written (<reason>)")`` for a failed write of ``path``."""
    return OutputError(f"{path}: could not be written ({describe_os_error(exc)})")


def _is_write_failure(exc: BaseException) -> bool:
    if isinstance(exc, AstrocnnError):
        return False
    return isinstance(exc, OSError) or (isinstance(exc, Exception) and io_errno(exc) is not None)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary file lives in the same folder (same filesystem, so the rename is atomic) and is
    removed if the block raises. Its name starts with ``.`` and ends with ``.partial`` so an
    interrupted run never leaves anything that looks finished. An OS-level write failure inside the
    block (an :class:`OSError`, or a library error quoting an OS error number) becomes
    :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(suffix or "") + ".partial", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write here ({describe_os_error(exc)})") from exc
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the output the permissions an ordinary open() would
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp_path, 0o666 & ~umask)
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if _is_write_failure(exc):
            raise output_error(path, exc) from exc
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class LatchingFile:
    """A binary file for HDF5 to write through (``h5py.File(LatchingFile(path), "w")``) that keeps write
    errors away from HDF5.

    HDF5 (as shipped with h5py 3.16) crashes the process (SIGSEGV) after a failed write, so a disk-full
    error must never reach it. Once a write fails, :attr:`error` holds the first :class:`OSError` and
    that write and all later ones go to memory instead, so HDF5 still reads back what it wrote and goes
    on undisturbed until the caller notices :attr:`error`, discards the file and reports it.
    """

    PAGE = 1 << 16

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = open(self.path, "w+b", buffering=0)
        self._fd = self._f.fileno()
        self.error: OSError | None = None
        self._pos = 0
        self._size = 0
        self._pages: dict[int, bytearray] = {}  # after a failure: what HDF5 wrote, by page

    # positions are kept here: after a failure the file on disk no longer follows HDF5's view of it
    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.error is None:
            try:
                done = 0
                while done < len(view):
                    n = os.pwrite(self._fd, view[done:], self._pos + done)
                    if not n:
                        raise OSError(errno.EIO, "write made no progress")
                    done += n
            except OSError as exc:
                self.error = exc
        if self.error is not None:
            self._write_pages(view, self._pos)
        self._pos += len(view)
        self._size = max(self._size, self._pos)
        return len(view)

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        data = os.pread(self._fd, n, self._pos) if n else b""
        view[:len(data)] = data
        view[len(data):n] = bytes(n - len(data))  # written to memory only, or a hole
        if self._pages:
            self._read_pages(view[:n], self._pos)
        self._pos += n
        return n

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = max(0, self._size - self._pos)
        buf = bytearray(n)
        got = self.readinto(buf)
        return bytes(buf[:got])

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else int(size)
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                self.error = exc
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def sync(self) -> None:
        """Flush the data to the device (errors latched like write errors)."""
        if self.error is None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP):  # file systems without fsync
                    self.error = exc

    def close(self) -> None:
        self._pages.clear()
        if not self._f.closed:
            try:
                self._f.close()
            except OSError as exc:
                if self.error is None:
                    self.error = exc

    @property
    def closed(self) -> bool:
        return self._f.closed

    def _page(self, k: int) -> bytearray:
        page = self._pages.get(k)
        if page is None:
            # start from what the disk holds (the data written before the failure)
            page = bytearray(self.PAGE)
            try:
                data = os.pread(self._fd, self.PAGE, k * self.PAGE)
            except OSError:
                data = b""
            page[:len(data)] = data
            self._pages[k] = page
        return page

    def _write_pages(self, view: memoryview, pos: int) -> None:
        done = 0
        while done < len(view):
            k, off = divmod(pos + done, self.PAGE)
            m = min(self.PAGE - off, len(view) - done)
            self._page(k)[off:off + m] = view[done:done + m]
            done += m

    def _read_pages(self, view: memoryview, pos: int) -> None:
        done = 0
        while done < len(view):
            k, off = divmod(pos + done, self.PAGE)
            m = min(self.PAGE - off, len(view) - done)
            page = self._pages.get(k)
            if page is not None:
                view[done:done + m] = page[off:off + m]
            done += m
