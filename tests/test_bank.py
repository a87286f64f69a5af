"""The template bank's fitting factor and its stochastic growth, against overlaps computed independently here
(numpy on an 8-s grid, textbook formula) rather than with the search's own correlation code."""
from __future__ import annotations

import csv
import math
from importlib import resources

import numpy as np
import pytest

from astrocnn.core.errors import InputError

pytest.importorskip("lalsimulation")
from astrocnn.gw import simulate as sim  # noqa: E402  (needs lalsuite)
from astrocnn.gw.bank import BANK_COLUMNS, fitting_factors, grow_bank, read_bank, write_bank  # noqa: E402
from astrocnn.gw.matched_filter import make_template_bank  # noqa: E402

FS = sim.SAMPLE_RATE


def _face_on(m1, m2, s1z=0.0, s2z=0.0, t_merger=1.7):
    """h+ of a face-on aligned-spin source in an otherwise empty 2-s window (the merger at t_merger)."""
    p = sim.SourceParameters(m1, m2, 0.0, 0.0, s1z, 0.0, 0.0, s2z, 0.0, 0.0, 0.0, 0.0, 0.0, t_merger)
    hp, _, epoch = sim.polarizations(p, "IMRPhenomD", FS)
    out = np.zeros(sim.N_SAMPLES)
    start = int(round((t_merger + epoch) * FS))
    lo = max(0, -start)
    out[start + lo: start + len(hp)] = hp[lo: sim.N_SAMPLES - start]
    return out


def _overlap(a, b, psd_row, band=(20.0, 1000.0), pad_s=8.0):
    """max over time and phase of (a|b) / sqrt((a|a)(b|b)), (a|b) = 4 Re sum a(f) b*(f) / S(f) df, on a grid
    padded to ``pad_s`` seconds: the phase maximum is the modulus of the complex (positive-frequency) overlap."""
    n = int(pad_s * FS)
    f = np.fft.rfftfreq(n, 1 / FS)
    s = np.interp(f, np.fft.rfftfreq(sim.N_SAMPLES, 1 / FS), psd_row)
    w = np.zeros(f.size)
    inside = (f >= band[0]) & (f <= band[1])
    w[inside] = 1.0 / s[inside]
    A, B = np.fft.rfft(a, n), np.fft.rfft(b, n)
    full = np.zeros(n, complex)
    full[: f.size] = A * np.conj(B) * w
    corr = np.abs(np.fft.ifft(full)) * n
    norm = math.sqrt(np.sum(np.abs(A) ** 2 * w) * np.sum(np.abs(B) ** 2 * w))
    return float(corr.max() / norm)


def test_fitting_factor_between_two_templates_matches_an_independent_overlap():
    """A signal between two templates: the bank's fitting factor is the better of the two overlaps, each
    maximised over time and phase independently (the search's Tukey taper touches only the empty 0.1 s at the
    window's ends, so a 2e-3 tolerance covers the lag grid and the taper's edges)."""
    bank = make_template_bank(templates=[(32.0, 25.0, 0.0, 0.0), (36.0, 25.0, 0.0, 0.0)])
    signal = _face_on(34.0, 25.0)
    psd = sim.network_psd()
    x = np.zeros((1, 3, sim.N_SAMPLES))
    x[0, 0] = signal  # H1 only: the network fitting factor is H1's
    ff = float(fitting_factors(x, bank, psd)[0])
    expected = max(_overlap(signal, _face_on(32.0, 25.0), psd[0]), _overlap(signal, _face_on(36.0, 25.0), psd[0]))
    assert 0.8 < expected < 0.995  # really between the two: neither template is the signal
    assert ff == pytest.approx(expected, abs=2e-3)
    # and a signal that is a template is fitted fully, with its sky projection and an inclination
    p = sim.SourceParameters(32.0, 25.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9, 1.1, 2.0, -0.3, 0.4, 1.6)
    assert fitting_factors(sim.detector_signals(p, "IMRPhenomD")[None], bank, psd)[0] > 0.998


def test_grown_bank_keeps_only_templates_unlike_its_others(tmp_path):
    """Every template stochastic placement adds overlaps each other template of nearby chirp mass below the
    minimal match (independent overlaps; 0.01 of slack for the placement's 3-s buffer against the 8-s grid), and
    a bank written and read back is the same bank."""
    start = make_template_bank(templates=[(30.0, 25.0, 0.0, 0.0)])
    bank, record = grow_bank(start, n_max=7, min_match=0.9, seed=3, mc_window=0.3)
    assert len(bank) == record["templates"] == 7 and record["candidates"] >= 6
    psd = sim.network_psd()[0]
    waves = [_face_on(m1, m2, s1, s2, t_merger=1.9) for m1, m2, s1, s2 in zip(bank.mass1, bank.mass2, bank.spin1z, bank.spin2z)]
    mc = bank.chirp_mass
    for i in range(1, len(bank)):
        for j in range(i):
            if abs(math.log(mc[i] / mc[j])) <= 0.3:
                assert _overlap(waves[i], waves[j], psd) < 0.91
    path = write_bank(tmp_path / "bank.csv", bank)
    again = read_bank(path)
    np.testing.assert_array_equal(again.mass1, bank.mass1)
    np.testing.assert_array_equal(again.spin2z, bank.spin2z)


def test_bank_files_and_the_shipped_bank(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("m1,m2\n1,2\n")
    with pytest.raises(InputError, match="bad.csv.*header"):
        read_bank(bad)
    with pytest.raises(InputError, match="no such bank file"):
        read_bank(tmp_path / "missing.csv")
    with open(resources.files("astrocnn.gw") / "banks" / "dense.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == BANK_COLUMNS
    r = np.array(rows[1:], dtype=float)
    assert 1000 <= len(r) <= 2000
    # it starts with the 252-template grid (which reaches beyond the population's masses), then adds draws
    # from the aligned-spin population
    grid = make_template_bank()
    np.testing.assert_allclose(r[: len(grid)], np.c_[grid.mass1, grid.mass2, grid.spin1z, grid.spin2z], rtol=1e-12)
    added = r[len(grid):]
    assert np.all((added[:, :2] >= 5.0) & (added[:, :2] <= 100.0)) and np.all(added[:, 0] >= added[:, 1])
    assert np.all(np.abs(added[:, 2:]) <= 0.99)
    # unequal masses are in it, down to the population's q = 0.05
    assert (r[:, 1] / r[:, 0]).min() < 0.1
