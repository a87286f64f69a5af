"""Catalogued events and GWOSC file names: which real segment holds which merger.

Gravitational-wave domain.
"""
from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Iterable

#: GWTC catalogue merger times (GPS) of a few events whose GWOSC files users meet first; used to say
#: whether the top-scoring window of a file holds the event.
KNOWN_EVENTS = {"GW150914": 1126259462.4, "GW151012": 1128678900.44, "GW151226": 1135136350.6,
                "GW170104": 1167559936.6, "GW170814": 1186741861.5, "GW170817": 1187008882.4}


def gwosc_start(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(GPS start, duration in s)`` from a GWOSC file name (``H-H1_LOSC_4_V2-1128678884-32.hdf5``), or None."""
    parts = Path(path).stem.split("-")
    try:
        return int(parts[-2]), int(parts[-1])
    except (IndexError, ValueError):
        return None


def segments_with_events(paths: Iterable[str | os.PathLike]) -> dict[str, tuple[float, list[Path]]]:
    """Group GWOSC files by their GPS span (one file per detector) and name the catalogued event each group
    holds: ``{event: (merger GPS time, [files])}``."""
    groups: dict[tuple[int, int], list[Path]] = defaultdict(list)
    for p in sorted(map(Path, paths)):
        span = gwosc_start(p)
        if span is not None:
            groups[span].append(p)
    found = {}
    for (start, duration), files in groups.items():
        for name, t_event in KNOWN_EVENTS.items():
            if start <= t_event < start + duration:
                found[name] = (t_event, files)
    return found
