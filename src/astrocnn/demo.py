"""``astrocnn demo``: the main job on the built-in simulated data, with a short report."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from .io import write_text_atomic

log = logging.getLogger(__name__)

#: Where the demo looks for the few real SDSS spectra shipped beside the repository (optional).
DEFAULT_REAL_SDSS = Path("../shared/data/sdss")


def _pick_examples(ds, want=(("qso", 0.0, 1.0), ("qso", 1.0, 2.2), ("qso", 2.2, 6.0), ("galaxy", 0, 2), ("star", -1, 1))):
    picks = []
    for name, lo, hi in want:
        if name not in ds.class_names:
            continue
        c = ds.class_names.index(name)
        hit = np.flatnonzero((ds.cls == c) & (ds.z >= lo) & (ds.z < hi))
        if hit.size:
            picks.append(int(hit[np.argmax(ds.snr[hit])]))
    return picks


def run_demo(out: str | os.PathLike, n: int | None = None, seed: int = 1, real_sdss: str | os.PathLike | None = None) -> Path:
    """Simulate a survey, run it through the real-format path, plot examples; return ``out/report.md``."""
    from .spectra.pipeline import prepare_sdss, simulate_prepared
    from .spectra.showcase import show_prepared
    from .store import PreparedSet

    out = Path(out)
    n = n or 400
    data = out / "data"
    t0 = time.perf_counter()
    sim = simulate_prepared(n, seed, data / "survey.h5", sdss_dir=data / "sdss")
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    fits = prepare_sdss([data / "sdss"], data / "survey-from-fits.h5", catalog=data / "sdss" / "catalog.fits")
    t_prep = time.perf_counter() - t0
    ds = PreparedSet(sim.out)
    picks = _pick_examples(ds)
    png = show_prepared(sim.out, picks, out / "spectra.png")
    lines = [
        "# astrocnn demo",
        "",
        f"- simulated {n} objects (seed {seed}) in {t_sim:.1f} s: {sim.summary}",
        f"- wrote them as SDSS spec-lite files with a DR16Q-like catalogue and prepared them back in "
        f"{t_prep:.1f} s: {fits.summary}",
        f"- classes: " + ", ".join(f"{name} {int((ds.cls == i).sum())}" for i, name in enumerate(ds.class_names)),
        "",
        f"![examples]({png.name})",
    ]
    real = Path(real_sdss) if real_sdss is not None else DEFAULT_REAL_SDSS
    if real.is_dir():
        rep = prepare_sdss([real], data / "real-sdss.h5")
        rds = PreparedSet(rep.out)
        rpng = show_prepared(rep.out, list(range(len(rds))), out / "real-sdss.png")
        lines += ["", f"- real SDSS spectra in {real}: {rep.summary}", "", f"![real]({rpng.name})"]
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
