"""Pictures of prepared spectra (the ``astrocnn show`` command)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..store import PreparedSet


def show_prepared(path: str | os.PathLike, indices: Sequence[int], out: str | os.PathLike | None = None) -> Path:
    """Plot rows ``indices`` of a prepared set with the main lines marked at each label z.

    Returns the PNG written (default ``<file stem>-<i>.png`` beside the set).
    """
    from ..plots import plot_spectra

    ds = PreparedSet(path)
    idx = [int(i) for i in indices]
    bad = [i for i in idx if not -len(ds) <= i < len(ds)]
    if bad:
        raise InputError(path, f"index {bad[0]} out of range: the set holds {len(ds)} spectra")
    idx = [i % len(ds) for i in idx]
    b = ds.read(idx)
    names = [ds.class_names[c] if c >= 0 else None for c in b["cls"]]
    titles = [
        f"{oid}  {name or 'unknown class'}  z={z:.4f}  S/N={s:.1f}"
        for oid, name, z, s in zip(b["id"], names, b["z"], ds.snr[idx])
    ]
    if out is None:
        p = Path(path)
        out = p.with_name(f"{p.stem}-{'-'.join(map(str, idx))}.png")
    plot_spectra(ds.grid.wave, b["flux"], b["ivar"], titles, np.asarray(b["z"], float), names, out)
    ds.close()
    return Path(out)
