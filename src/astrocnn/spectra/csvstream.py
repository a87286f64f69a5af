"""Numbers from CSV files of any line length, read as a stream: the workshop's flux file holds its 22,454,000
values on a single 448 MB line.

Spectra domain, on the core; it knows nothing of spectra and is used by the readers of arrays already on a grid
(:mod:`~astrocnn.spectra.gridded`). A file is read ``chunk_bytes`` at a time and never whole, so memory stays
bounded however long its lines are; values may be quoted (``csv.QUOTE_NONNUMERIC``); the first value that is not
a number is refused by its place, as an :class:`~astrocnn.core.errors.InputError` naming the file.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from astrocnn.core.errors import InputError

#: bytes of a CSV file read at a time
DEFAULT_CHUNK_BYTES = 8 << 20
#: the longest CSV value accepted, in bytes (a file without separators is not a CSV of numbers)
MAX_VALUE_BYTES = 1 << 16


def scan_csv(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[int]:
    """The number of values on each non-blank line of a CSV file, read ``chunk_bytes`` at a time."""
    counts: list[int] = []
    commas, content = 0, False
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_bytes):
                for k, piece in enumerate(chunk.split(b"\n")):
                    if k > 0:  # a newline ended the line before this piece
                        if content:
                            counts.append(commas + 1)
                        commas, content = 0, False
                    commas += piece.count(b",")
                    content = content or bool(piece.strip())
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc
    if content:
        counts.append(commas + 1)
    return counts


def _parse_slow(tokens: list[bytes], path, first: int) -> np.ndarray:
    """Values one by one (quoted numbers allowed); the first that is not a number is refused by its place."""
    out = np.empty(len(tokens))
    for k, tok in enumerate(tokens):
        text = tok.strip()
        try:
            out[k] = float(text[1:-1] if text[:1] == b'"' and text[-1:] == b'"' and len(text) > 1 else text)
        except ValueError:
            shown = text[:24].decode("utf-8", "replace")
            raise InputError(path, f"value {first + k + 1:,} is not a number ({shown!r})") from None
    return out


def _parse(text: bytes, path, first: int) -> np.ndarray:
    """The values in ``text`` (whole values separated by commas and newlines; blank lines ignored)."""
    lines = [s for s in text.split(b"\n") if s.strip()]
    if not lines:
        return np.zeros(0)
    joined = lines[0] if len(lines) == 1 else b",".join(lines)
    expected = joined.count(b",") + 1
    try:
        values = np.fromstring(joined, sep=",")  # numpy's C parser: ~40 MB/s, no Python object per value
    except ValueError:
        values = None
    if values is None or values.size != expected:
        values = _parse_slow(joined.split(b","), path, first)
    return values


def iter_csv_values(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[np.ndarray]:
    """The numbers of a CSV file in file order, as float64 arrays of about ``chunk_bytes / 20`` values: the file
    is read ``chunk_bytes`` at a time, so memory stays bounded however long its lines are."""
    rest, done = b"", 0
    try:
        with open(path, "rb") as fh:
            while True:
                chunk = fh.read(chunk_bytes)
                data = rest + chunk if rest else chunk
                if not chunk:
                    if data.strip():
                        yield _parse(data, path, done)
                    return
                cut = max(data.rfind(b","), data.rfind(b"\n"))
                if cut < 0:
                    if len(data) > MAX_VALUE_BYTES:
                        raise InputError(path, f"{len(data):,} bytes without a comma or a newline: not a CSV of "
                                               "numbers")
                    rest = data
                    continue
                rest = data[cut + 1:]
                values = _parse(data[:cut], path, done)
                done += values.size
                yield values
    except OSError as exc:
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc


def read_csv_values(path: str | os.PathLike, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> np.ndarray:
    """All the numbers of a (small) CSV file, e.g. the redshifts of the workshop's pair."""
    parts = list(iter_csv_values(path, chunk_bytes))
    return np.concatenate(parts) if parts else np.zeros(0)
