#!/usr/bin/env python
"""Benchmark the simulated SDSS/BOSS survey: speed per core, the quasar composite, the forest transmission.

    python scripts/bench_simulate.py                       # numbers only
    python scripts/bench_simulate.py --plot stack.png      # and a figure of the composite and F(z)

Speed is measured in one process (spectra per second per core) on the default class mix. The composite is a
median rest-frame stack of simulated quasars, measured like Vanden Berk et al. (2001); the mean Ly-alpha
transmission at z_abs = 2.5 and 3.0 (bins of +-0.1) is compared with Becker et al. (2013).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def create_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=1, help="survey seed")
    p.add_argument("--n-speed", type=int, default=2000, help="objects simulated for the speed measurement")
    p.add_argument("--n-qso", type=int, default=4000, help="quasars simulated for the composite and the forest")
    p.add_argument("--plot", default=None, help="write a PNG of the composite and F(z) here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = create_parser().parse_args(argv)
    from astrocnn.spectra.simulate import simulate_survey
    from astrocnn.spectra.simulate.diagnostics import (
        VANDEN_BERK_2001,
        measure_composite,
        measure_forest_transmission,
        rest_frame_stack,
    )
    from astrocnn.spectra.simulate.forest import mean_transmission_becker

    # warm-up: templates, sky and line-spread tables are built once per process
    list(simulate_survey(3, args.seed, start=10**7))

    t0 = time.perf_counter()
    objs = list(simulate_survey(args.n_speed, args.seed))
    dt = time.perf_counter() - t0
    print(f"speed: {args.n_speed / dt:.0f} spectra/s per core ({args.n_speed} objects, default class mix, "
          f"{dt:.1f} s)")
    for cls in ("qso", "galaxy", "star"):
        t0 = time.perf_counter()
        n = max(args.n_speed // 4, 50)
        list(simulate_survey(n, args.seed, classes=(cls,), start=10**6))
        print(f"  {cls:7s} {n / (time.perf_counter() - t0):.0f} spectra/s")
    snr = {c: np.median([t["snr"] for _, t in objs if t["cls"] == c]) for c in ("qso", "galaxy", "star")}
    print("median S/N per pixel: " + ", ".join(f"{c} {v:.1f}" for c, v in snr.items()))

    t0 = time.perf_counter()
    qsos = list(simulate_survey(args.n_qso, args.seed + 1, classes=("qso",), with_model=True))
    print(f"\n{args.n_qso} quasars simulated in {time.perf_counter() - t0:.1f} s")
    wave, stack = rest_frame_stack(qsos, 10 ** np.arange(np.log10(800.0), np.log10(9000.0), 1e-4))
    comp = measure_composite(wave, stack)
    print("composite (median stack)     simulated   Vanden Berk 2001 / design")
    for k, v in comp.items():
        print(f"  {k:12s}            {v:9.2f}   {VANDEN_BERK_2001.get(k, float('nan')):9.2f}")

    forest = measure_forest_transmission(qsos, [2.4, 2.6, 2.9, 3.1])
    noisy = measure_forest_transmission(qsos, [2.4, 2.6, 2.9, 3.1], use_model=False)
    print("\nLy-alpha forest mean transmission (rest 1041-1185 A, no BAL/DLA sightlines)")
    print("  z_abs   F(model/cont)   F(flux/cont)   Becker 2013   n_spectra")
    for i in (0, 2):
        print(f"  {forest['z'][i]:.2f}   {forest['mean_transmission'][i]:.3f} +- {forest['error'][i]:.3f}"
              f"   {noisy['mean_transmission'][i]:.3f}          {forest['becker'][i]:.3f}         "
              f"{forest['n_spectra'][i]}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        zb = np.arange(2.0, 4.21, 0.2)
        fz = measure_forest_transmission(qsos, zb)
        fig, ax = plt.subplots(2, 1, figsize=(11, 8))
        ax[0].loglog(wave, stack, lw=0.6, label="simulated quasars, median composite")
        f1450 = np.nanmedian(stack[(wave > 1440) & (wave < 1460)])
        ref = f1450 * (wave / 1450.0) ** (-2.0 - VANDEN_BERK_2001["alpha_nu"])
        ax[0].loglog(wave, ref, "--", lw=0.8, label=r"$\alpha_\nu=-0.44$")
        ax[0].set_xlabel("rest wavelength (A)")
        ax[0].set_ylabel(r"$f_\lambda$ (arbitrary)")
        ax[0].legend()
        ax[1].errorbar(fz["z"], fz["mean_transmission"], fz["error"], fmt="o", label="simulated")
        zz = np.linspace(2.0, 4.2, 100)
        ax[1].plot(zz, mean_transmission_becker(zz), label="Becker et al. 2013")
        ax[1].set_xlabel("z_abs")
        ax[1].set_ylabel("mean transmission")
        ax[1].legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"\nplot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
