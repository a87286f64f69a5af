"""Gravitational-wave data: simulator, readers, whitening, prepared sets, matched filter, ROC.

Known answers, not shapes: detector geometry against LAL's own functions, projections against
lalsimulation's injection code, injected SNRs recovered by the matched filter, whitening against scipy,
real files read with their known GPS times, and a real event found where it happened.
"""
import csv
import glob
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.signal as ss
import torch

from astrocnn.core.errors import InputError
from astrocnn.core import roc
from astrocnn.gw.readers import (gwosc_network, load_g2net_sample, read_g2net, read_gwosc, read_ldas_hdf, resample_rate)
from astrocnn.gw.whitening import (Normalize, Whitener, butter_sos, psd_on_grid, sliding_windows, whiten_array,
                                    whiten_long_segment, whitened_snr)

lal = pytest.importorskip("lal")
lalsim = pytest.importorskip("lalsimulation")
from astrocnn.gw import matched_filter as mf  # noqa: E402  (needs lalsuite)
from astrocnn.gw import simulate as sim  # noqa: E402
from astrocnn.gw.dataset import StrainSet  # noqa: E402
from astrocnn.gw.prepare import fit_whitener, prepare_g2net  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not here")


def _lal_detector(name):
    return next(d for d in lal.CachedDetectors if d.frDetector.prefix == name)


# ---------------------------------------------------------------------------------------------- detectors

def test_antenna_patterns_match_lal():
    rng = np.random.default_rng(0)
    ra, dec, psi = rng.uniform(0, 2 * np.pi, 50), np.arcsin(rng.uniform(-1, 1, 50)), rng.uniform(0, np.pi, 50)
    gmst = sim.gmst(sim.GPS_REFERENCE)
    for det in sim.DETECTORS:
        fp, fc = sim.antenna_patterns(det, ra, dec, psi, gmst)
        ref = np.array([lal.ComputeDetAMResponse(_lal_detector(det).response, a, d, p, gmst)
                        for a, d, p in zip(ra, dec, psi)])
        # same algebra in double precision: agreement to rounding
        np.testing.assert_allclose(fp, ref[:, 0], atol=1e-12)
        np.testing.assert_allclose(fc, ref[:, 1], atol=1e-12)


def test_time_delays_match_lal_and_light_travel_times():
    rng = np.random.default_rng(1)
    ra, dec = rng.uniform(0, 2 * np.pi, 2000), np.arcsin(rng.uniform(-1, 1, 2000))
    gps = sim.GPS_REFERENCE
    g = sim.gmst(gps)
    for det in sim.DETECTORS:
        ours = sim.time_delay_from_geocenter(det, ra[:50], dec[:50], g)
        ref = [lal.TimeDelayFromEarthCenter(_lal_detector(det).location, a, d, gps) for a, d in zip(ra[:50], dec[:50])]
        np.testing.assert_allclose(ours, ref, atol=1e-12)  # seconds
    # light travel times of the design notes: H-L 10.0 ms, H-V 27.3 ms, L-V 26.5 ms
    assert sim.light_travel_time("H1", "L1") == pytest.approx(10.0e-3, abs=0.05e-3)
    assert sim.light_travel_time("H1", "V1") == pytest.approx(27.3e-3, abs=0.1e-3)
    assert sim.light_travel_time("L1", "V1") == pytest.approx(26.5e-3, abs=0.1e-3)
    dt = sim.time_delay_from_geocenter("H1", ra, dec, g) - sim.time_delay_from_geocenter("L1", ra, dec, g)
    assert np.abs(dt).max() <= sim.light_travel_time("H1", "L1") + 1e-12
    assert np.abs(dt).max() > 9.8e-3  # 2000 random skies come close to the baseline direction


@pytest.mark.parametrize("approximant", ["IMRPhenomPv2", "IMRPhenomD"])
def test_projection_matches_lalsimulation_injection(approximant):
    """Our frequency-domain projection against LAL's SimDetectorStrainREAL8TimeSeries + SimAddInjection.

    LAL interpolates the delay in the time domain and lets the antenna pattern follow the Earth's rotation
    during the waveform; both differ from an exact sub-sample shift by well under 1% of the peak.
    """
    rng = np.random.default_rng(11)
    for _ in range(2):
        p = sim.draw_parameters(rng, approximant)
        ours = sim.detector_signals(p, approximant)
        hp, hc, epoch = sim.polarizations(p, approximant)
        t0 = sim.GPS_REFERENCE + p.t_merger + epoch
        for k, det in enumerate(sim.DETECTORS):
            hps = lal.CreateREAL8TimeSeries("hp", lal.LIGOTimeGPS(t0), 0, 1 / 2048, lal.StrainUnit, len(hp))
            hcs = lal.CreateREAL8TimeSeries("hc", lal.LIGOTimeGPS(t0), 0, 1 / 2048, lal.StrainUnit, len(hc))
            hps.data.data[:], hcs.data.data[:] = hp, hc
            h = lalsim.SimDetectorStrainREAL8TimeSeries(hps, hcs, p.ra, p.dec, p.polarization, _lal_detector(det))
            target = lal.CreateREAL8TimeSeries("t", lal.LIGOTimeGPS(sim.GPS_REFERENCE), 0, 1 / 2048,
                                               lal.StrainUnit, 4096)
            target.data.data[:] = 0
            lalsim.SimAddInjectionREAL8TimeSeries(target, h, None)
            ref = target.data.data
            assert np.abs(ours[k] - ref).max() < 0.015 * np.abs(ref).max(), det


# ---------------------------------------------------------------------------------------------- simulation

def test_noise_matches_g2net_levels():
    """Raw per-detector std of noise-only samples: G2Net's ~7.4e-21 (H1/L1) and ~1.8e-21 (V1).

    Both are set by the 10-15 Hz band (the bump for H1/L1, the design curve's steep low end for V1): the
    design curves alone above 20 Hz give only ~1e-22. Above 40 Hz the noise is the design curve: ASD at
    100 Hz ~3.9e-24 (H1/L1) and ~5.7e-24 (V1, design notes: ~5.9e-24).
    """
    rng = np.random.default_rng(2)
    x = np.stack([sim.simulate_noise(rng) for _ in range(300)])
    std = x.std(axis=2).mean(0)  # mean over samples of the per-sample std; its error here is ~1.5%
    np.testing.assert_allclose(std, [7.4e-21, 7.4e-21, 1.8e-21], rtol=0.06)
    f, p = ss.welch(x, fs=2048, nperseg=1024, axis=-1)
    asd100 = np.sqrt(p.mean(0)[:, (f >= 95) & (f <= 105)].mean(1))
    np.testing.assert_allclose(asd100, [3.99e-24, 3.99e-24, 5.69e-24], rtol=0.08)
    # in-band std (20-500 Hz) is two orders below the raw std: the raw numbers are all low-frequency noise
    sos = butter_sos(2048, (20, 500))
    assert ss.sosfiltfilt(sos, x[:20], axis=-1)[..., 512:-512].std() < 3e-22


def test_same_seed_same_bytes_any_workers(tmp_path):
    a = sim.simulate_g2net(6, 7, tmp_path / "a", workers=1, chunk=2)
    b = sim.simulate_g2net(6, 7, tmp_path / "b", workers=2, chunk=3)
    c = sim.simulate_g2net(6, 8, tmp_path / "c", workers=1)
    fa = sorted(p.relative_to(a) for p in a.rglob("*.npy"))
    assert fa == sorted(p.relative_to(b) for p in b.rglob("*.npy")) and len(fa) == 6
    for rel in fa:
        assert (a / rel).read_bytes() == (b / rel).read_bytes()
    for name in ("training_labels.csv", "truth.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert not set(fa) & set(p.relative_to(c) for p in c.rglob("*.npy"))  # another seed, other ids and data
    # a sample depends only on (seed, index)
    strain, truth = sim.simulate_sample(7, 4)
    np.testing.assert_array_equal(np.load(sim.sample_path(a, "train", truth["id"])), strain)


def test_truth_is_consistent_with_the_strain():
    """The truth SNRs are the optimal SNRs of what was added, and the implied distance scales with 1/SNR."""
    for i in range(40):
        strain, truth = sim.simulate_sample(5, i)
        if truth["target"] == 1:
            break
    assert truth["target"] == 1
    _, noise_rng = sim._rngs(5, i)
    signal = strain - sim.simulate_noise(noise_rng)
    snrs = sim.optimal_snr(signal)
    np.testing.assert_allclose(snrs, [truth["snr_H1"], truth["snr_L1"], truth["snr_V1"]], rtol=1e-6)
    assert np.sqrt((snrs ** 2).sum()) == pytest.approx(truth["snr"], rel=1e-6)
    # what the network is given: the signal through a default whitener with the noise's own PSD
    seen = whitened_snr(signal, sim.network_psd())
    assert np.sqrt((seen ** 2).sum()) == pytest.approx(truth["snr_seen"], rel=1e-6)
    params = sim.SourceParameters(**{k: truth[k] for k in sim.SourceParameters.__dataclass_fields__})
    again = sim.detector_signals(params, truth["approximant"])
    np.testing.assert_allclose(again, signal, atol=1e-4 * np.abs(signal).max())
    assert 5 <= truth["mass2"] <= truth["mass1"] <= 100 and 1.5 <= truth["t_merger"] <= 1.9


def test_varied_noise_is_seeded_and_follows_its_own_psd():
    """noise="varied": each sample and detector has its own PSD (sample_psds), drawn from the sample's own
    stream; its noise is drawn from that PSD and its SNRs are measured against it."""
    a, ta = sim.simulate_sample(3, 1, noise="varied")
    b, tb = sim.simulate_sample(3, 1, noise="varied")
    np.testing.assert_array_equal(a, b)
    assert repr(ta) == repr(tb)
    assert not np.array_equal(a, sim.simulate_sample(3, 1)[0])
    psd, psd_seg = sim.sample_psds(3, 1, "varied")
    design = sim.network_psd()
    assert psd.shape == design.shape and psd_seg.shape == (3, 4097)
    np.testing.assert_allclose(psd_seg[:, ::2], psd, rtol=1e-12)  # the same curve on both grids
    if ta["target"] == 0:  # a noise-only sample: exactly the varied noise
        np.testing.assert_array_equal(a, sim.simulate_noise(sim._rngs(3, 1)[1], psd=psd_seg))
    # every detector of every sample is its own curve: the ratio to the design curve at 100 Hz (pivot of the
    # tilt) has the drawn scale's log-spread, 0.3 in ln ASD, apart from bumps and lines that land there
    ratios = np.array([sim.sample_psds(3, i, "varied")[0][:, 200] / design[:, 200] for i in range(200)])
    ln_asd = 0.5 * np.log(ratios)
    assert abs(np.median(ln_asd)) < 0.06 and 0.25 < 1.4826 * np.median(np.abs(ln_asd - np.median(ln_asd))) < 0.4
    assert np.corrcoef(ln_asd[:, 0], ln_asd[:, 1])[0, 1] < 0.2  # drawn per detector
    # a prior that varies nothing gives back the design curves; another prior, another noise (a domain shift)
    from astrocnn.gw.noise_variation import VariationPrior

    still = VariationPrior(scale_sigma=0.0, tilt_max=0.0, bumps_max=0, lines_max=0, low_scale=(1.0, 1.0))
    np.testing.assert_allclose(sim.sample_psds(3, 1, "varied", prior=still)[0], design, rtol=1e-12)
    wide = VariationPrior(tilt_max=1.0)
    assert not np.array_equal(sim.simulate_sample(3, 1, noise="varied", prior=wide)[0], a)
    # the noise follows its drawn PSD: 200 draws of one sample's PSD, Hann periodograms, band means within 3%
    rng = np.random.default_rng(0)
    x = np.stack([sim.simulate_noise(rng, psd=psd_seg) for _ in range(200)])
    w = ss.windows.hann(4096, sym=False)
    pg = (2 * np.abs(np.fft.rfft(x * w, axis=-1)) ** 2 / (2048 * (w ** 2).sum())).mean(0)
    f = np.fft.rfftfreq(4096, 1 / 2048)
    for lo, hi in [(30, 100), (100, 300), (300, 1000)]:
        band = (f >= lo) & (f < hi)
        # 200 samples x >= 140 bins (Hann-correlated in pairs): each band mean is good to ~0.9%, so 4% is
        # 4 sigma and leakage around the drawn lines
        np.testing.assert_allclose((pg[:, band] / psd[:, band]).mean(1), 1.0, atol=0.04)


def test_snr_distribution_and_balance():
    snr, target = [], []
    for i in range(400):
        src, _ = sim._rngs(9, i)  # the label and SNR are the first draws: no waveform needed to check them
        target.append(src.random() < 0.5)
        sim.draw_parameters(src)
        snr.append(8.0 * np.exp(0.5 * src.standard_normal()))
    assert 0.42 < np.mean(target) < 0.58
    assert np.median(snr) == pytest.approx(8.0, rel=0.08)
    assert np.std(np.log(snr)) == pytest.approx(0.5, rel=0.12)


# ---------------------------------------------------------------------------------------------- readers

def test_g2net_round_trip_nested_and_flat(tmp_path):
    root = sim.simulate_g2net(5, 3, tmp_path / "sim", workers=1)
    idx = read_g2net(root)
    assert len(idx) == 5
    assert all(p.parent.parent.parent.parent.name == "train" for p in idx.paths)  # train/a/b/c/id.npy
    for i, (id_, path) in enumerate(zip(idx.ids, idx.paths)):
        assert path.name == f"{id_}.npy" and path.parent.name == id_[2]
    rows = {r["id"]: r for r in csv.DictReader(open(root / "truth.csv"))}
    for k in range(5):
        strain, truth = sim.simulate_sample(3, k)
        j = list(idx.ids).index(truth["id"])
        np.testing.assert_array_equal(load_g2net_sample(idx.paths[j]), strain)
        assert idx.target[j] == truth["target"]
        if truth["target"]:
            # the SNR the reader gives is what the whitener leaves of the signal, not the injected one
            assert idx.snr[j] == pytest.approx(truth["snr_seen"]) and float(rows[truth["id"]]["mass1"]) == truth["mass1"]
            assert idx.snr_column == "snr_seen" and 0.9 * truth["snr"] < truth["snr_seen"] <= truth["snr"]
        else:
            assert np.isnan(idx.snr[j]) and rows[truth["id"]]["mass1"] == ""
    # the same samples in a flat folder with the labels beside it, as in the real shared/data/g2net
    flat = tmp_path / "flat" / "train"
    flat.mkdir(parents=True)
    for p in idx.paths:
        shutil.copy(p, flat / p.name)
    shutil.copy(root / "training_labels.csv", flat.parent)
    for where in (flat.parent, flat):
        f_idx = read_g2net(where)
        assert list(f_idx.ids) == list(idx.ids)
        np.testing.assert_array_equal(f_idx.target, idx.target)
    (flat.parent / "training_labels.csv").unlink()
    assert (read_g2net(flat).target == -1).all()
    # another split: test/<a>/<b>/<c>/ beside test_labels.csv and test_truth.csv
    t_root = sim.simulate_g2net(3, 4, tmp_path / "other", workers=1, split="test")
    t_idx = read_g2net(t_root)
    assert t_idx.root.name == "test" and (t_idx.target >= 0).all() and "mass1" in t_idx.truth


def _g2net_label_counts(labels_csv):
    """(samples, signals) as the labels file lists them, read independently of the reader under test."""
    rows = labels_csv.read_text().split()[1:]
    return len(rows), sum(int(r.split(",")[1]) for r in rows)


@needs_data
def test_real_g2net_samples():
    idx = read_g2net(DATA / "g2net")
    n, n_signal = _g2net_label_counts(DATA / "g2net" / "training_labels.csv")
    assert len(idx) == n and set(idx.target.tolist()) == {0, 1} and (idx.target == 1).sum() == n_signal
    x = np.stack([load_g2net_sample(p) for p in idx.paths])
    assert x.shape == (n, 3, 4096) and x.dtype == np.float64
    std = x.std(axis=2).mean(0)
    np.testing.assert_allclose(std, [7.4e-21, 7.4e-21, 1.8e-21], rtol=0.15)


def test_g2net_bad_files(tmp_path):
    cases = {
        "shape.npy": np.zeros((2, 4096)),
        "dtype.npy": np.zeros((3, 4096), dtype=np.int64),
        "nan.npy": np.where(np.arange(3 * 4096).reshape(3, 4096) == 7, np.nan, 0.0),
    }
    for name, arr in cases.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "text.npy").write_text("not an array")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name, match in [("shape.npy", r"shape \(2, 4096\)"), ("dtype.npy", "dtype int64"),
                        ("nan.npy", "1 NaN/inf"), ("text.npy", "not a .npy array"),
                        ("obj.npy", "not a .npy array"), ("missing.npy", "no such file")]:
        with pytest.raises(InputError, match=match) as err:
            load_g2net_sample(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)
    np.save(tmp_path / "f32.npy", np.ones((3, 4096), np.float32))
    assert load_g2net_sample(tmp_path / "f32.npy").dtype == np.float64


def _write_gwosc(path, strain, fs=4096, gps=1000000000, det="H1", dq=None):
    with h5py.File(path, "w") as h5:
        ds = h5.create_dataset("strain/Strain", data=strain)
        ds.attrs["Xspacing"] = 1.0 / fs
        ds.attrs["Xstart"] = gps
        h5["meta/GPSstart"] = gps
        h5["meta/Detector"] = det.encode()
        n_sec = len(strain) // fs
        h5["quality/simple/DQmask"] = np.full(n_sec, 127) if dq is None else dq
        h5["quality/simple/DQShortnames"] = [b"DATA", b"CBC_CAT1", b"CBC_CAT2", b"CBC_CAT3",
                                             b"BURST_CAT1", b"BURST_CAT2", b"BURST_CAT3"]


def test_gwosc_bad_seconds_and_missing_strain(tmp_path):
    rng = np.random.default_rng(3)
    dq = np.full(8, 127)
    dq[3] = 126  # DATA bit cleared: no usable data in the fourth second
    dq[5] = 127 - 2  # fails CBC_CAT1 only: usable unless CBC_CAT1 is required
    _write_gwosc(tmp_path / "h.hdf5", rng.standard_normal(8 * 4096), dq=dq)
    _write_gwosc(tmp_path / "l.hdf5", rng.standard_normal(8 * 4096), det="L1")
    g = read_gwosc(tmp_path / "h.hdf5")
    assert g.good_seconds().tolist() == [True] * 3 + [False] + [True] * 4
    assert g.good_seconds(("DATA", "CBC_CAT1")).tolist() == [True] * 3 + [False, True, False, True, True]
    net = gwosc_network([tmp_path / "h.hdf5", tmp_path / "l.hdf5"], missing="zeros")
    assert net.strain.shape == (3, 8 * 2048) and net.available.tolist() == [True, True, False]
    assert not net.valid[0, 3 * 2048: 4 * 2048].any() and net.valid[0, :3 * 2048].all()
    assert (net.strain[0, 3 * 2048: 4 * 2048] == 0).all() and (net.strain[2] == 0).all() and net.filled[2] == "zeros"
    with h5py.File(tmp_path / "nostrain.hdf5", "w") as h5:
        h5["meta/GPSstart"] = 0
    with pytest.raises(InputError, match=r"nostrain\.hdf5: no strain/Strain"):
        read_gwosc(tmp_path / "nostrain.hdf5")
    with pytest.raises(InputError, match="a second file for H1"):
        gwosc_network([tmp_path / "h.hdf5", tmp_path / "h.hdf5"])


@needs_data
@pytest.mark.real_data
def test_gwosc_files_read_and_resample():
    files = sorted((DATA / "gwosc").glob("*.hdf5"))
    assert len(files) == 4
    for f in files:
        g = read_gwosc(f)
        gps = int(f.name.split("-")[2])
        assert g.gps_start == gps and g.detector == f.name[2:4] and g.sample_rate == 4096 and g.duration == 32
        assert g.good_seconds(("DATA", "CBC_CAT1", "CBC_CAT2")).all()
        assert 1e-20 < np.std(g.strain) < 1e-17  # raw real strain: ~30x G2Net's, dominated by < 20 Hz
    net = gwosc_network([f for f in files if "1167559920" in f.name], sample_rate=2048, missing="noise", seed=1)
    assert net.strain.shape == (3, 32 * 2048) and net.gps_start == 1167559920
    assert net.available.tolist() == [True, True, False] and net.filled == ("", "", "noise")
    assert net.strain[2].std() == pytest.approx(1.8e-21, rel=0.2)  # V1 stand-in: simulated design noise
    # anti-aliased resampling keeps the in-band spectrum: Welch PSDs agree within 5% from 30 to 800 Hz
    g = read_gwosc([f for f in files if "H-H1" in f.name and "1167559920" in f.name][0])
    f4, p4 = ss.welch(g.strain, fs=4096, nperseg=4 * 4096)
    f2, p2 = ss.welch(net.strain[0], fs=2048, nperseg=4 * 2048)
    band = (f2 >= 30) & (f2 <= 800)
    ratio = p2[band] / np.interp(f2[band], f4, p4)
    assert np.median(np.abs(ratio - 1)) < 0.05
    np.testing.assert_allclose(resample_rate(g.strain, 4096, 2048), net.strain[0], atol=0)


@needs_data
@pytest.mark.real_data
def test_ldas_style_file():
    chans = read_ldas_hdf(DATA / "gwpy" / "HLV-HW100916-968654552-1.hdf")
    assert sorted(chans) == ["H1", "L1", "V1"]
    for g in chans.values():
        assert g.sample_rate == 16384 and g.gps_start == 968654552 and len(g.strain) == 16384


# ---------------------------------------------------------------------------------------------- transforms

@pytest.fixture(scope="module")
def noise():
    rng = np.random.default_rng(4)
    return np.stack([sim.simulate_noise(rng) for _ in range(400)])


def test_whitened_noise_is_flat(noise):
    w = Whitener(band=(20.0, 500.0)).fit(noise[:300])
    y = w.whiten(noise[300:])
    f, p = ss.welch(y[..., 410:-410], fs=2048, nperseg=512, axis=-1)  # skip the Tukey tapers
    p = p.mean(0)
    for lo, hi in [(40, 80), (80, 200), (200, 400)]:
        band = (f >= lo) & (f < hi)
        # 100 samples x ~11 Welch segments: each band mean is good to ~2%; the fitted PSD adds ~6%
        np.testing.assert_allclose(p[:, band].mean(1), 1.0, atol=0.1)
    assert p[:, f > 600].max() < 0.01 and p[:, (f > 2) & (f < 10)].max() < 0.01  # the band-pass


def test_bandpass_is_sosfiltfilt(noise):
    psd = sim.network_psd()
    white = Whitener(band=None).set_psd(psd).whiten(noise[:5])
    bp = Whitener(band=(20.0, 500.0)).set_psd(psd).whiten(noise[:5])
    ref = ss.sosfiltfilt(butter_sos(2048, (20.0, 500.0)), white, axis=-1)
    # the frequency-domain filter is circular and sosfiltfilt pads the ends: equal away from the edges
    mid = slice(512, -512)
    assert np.abs(bp[..., mid] - ref[..., mid]).max() < 1e-4 * np.abs(ref).max()


def test_whitener_state_and_errors(noise):
    w = Whitener()
    with pytest.raises(RuntimeError, match="not fitted"):
        w(torch.as_tensor(noise[:2]))
    with pytest.raises(ValueError, match=r"shape \(batch, 3, 4096\)"):
        w.partial_fit(noise[:2, :2])
    w.fit(noise[:50])
    state = w.state_dict()
    assert {"psd", "n_fit", "window", "gain"} <= set(state) and int(state["n_fit"]) == 50
    w2 = Whitener()
    w2.load_state_dict(state)
    x = torch.as_tensor(noise[50:54])
    torch.testing.assert_close(w2(x), w(x))
    # streaming fit equals the one-shot fit
    w3 = Whitener()
    for lo in range(0, 50, 7):
        w3.partial_fit(noise[lo: min(50, lo + 7)])
    torch.testing.assert_close(w3.psd, w.psd)
    # float32 strain (1e-20) is whitened without underflow
    y32 = w(x.float())
    assert y32.dtype == torch.float32
    torch.testing.assert_close(y32.double(), w(x), rtol=1e-4, atol=1e-3)


def test_legacy_whitener_config_is_rebuilt_as_it_was(noise):
    """A whitener stored before padding existed (no pad in its config) whitens exactly as then: Tukey window
    over the data, no padding, PSD fitted with Tukey periodograms. Prepared sets and runs made then still
    reproduce their inputs."""
    psd = sim.network_psd()
    old = Whitener.from_state({"alpha": 0.2, "band": [20.0, 500.0], "order": 4}, psd)
    assert (old.pad, old.ar_order, old.fit_window) == (0.0, 0, "tukey")
    win = ss.windows.tukey(4096, 0.2)
    from astrocnn.gw.whitening import bandpass_gain, inverse_asd
    resp = inverse_asd(psd) * bandpass_gain(np.fft.rfftfreq(4096, 1 / 2048), 2048.0, (20.0, 500.0))
    expect = np.fft.irfft(np.fft.rfft(noise[:3] * win, axis=-1) * resp, n=4096, axis=-1)
    np.testing.assert_allclose(old.whiten(noise[:3]), expect, rtol=0, atol=1e-10 * np.abs(expect).max())
    np.testing.assert_allclose(old.periodograms(noise[:2]).numpy(),
                               2 * np.abs(np.fft.rfft(noise[:2] * win, axis=-1)) ** 2 / (2048 * (win ** 2).sum())
                               * np.r_[0.5, np.ones(2047), 0.5], rtol=1e-9)
    assert Whitener.from_state(Whitener().config(), psd).config() == Whitener().config()


def test_normalize():
    x = torch.randn(4, 3, 4096, dtype=torch.float64) * torch.tensor([1.0, 5.0, 0.0])[None, :, None]
    y = Normalize("channel")(x)
    torch.testing.assert_close(y[:, :2].std(dim=-1), torch.ones(4, 2, dtype=torch.float64))
    assert (y[:, 2] == 0).all()
    z = Normalize("sample")(x)
    torch.testing.assert_close(z.std(dim=(-2, -1)), torch.ones(4, dtype=torch.float64))


def _band_limited_snr(signal, band=(20.0, 500.0), seconds=8):
    """Reference for what whitening + band-pass can keep of a signal: its optimal SNR with the band-pass's
    power gain |H|^4 (zero phase, forward-backward) as weight, from the exact linear spectrum of the window's
    samples (zero-padded to ``seconds``) and the simulator's PSD on that grid: no padding, taper or crop.
    Below 10 Hz the PSD falls off a cliff (its values reach 1e-300) and the band-pass has removed everything
    (|H|^4 < 2e-5): those bins are left out, as the whitener leaves them out."""
    m = int(seconds * 2048)
    f = np.fft.rfftfreq(m, 1 / 2048)
    _, h = ss.sosfreqz(ss.butter(4, band, "bandpass", fs=2048, output="sos"), worN=f, fs=2048)
    psd = sim.network_psd(n=m)
    spec = np.fft.rfft(signal, n=m, axis=-1) / 2048
    ok = (psd > 0) & (f >= 10.0)
    w = np.where(ok, np.abs(h) ** 4 / np.where(ok, psd, 1.0), 0.0)
    return np.sqrt(4 * (2048 / m) * np.sum(np.abs(spec) ** 2 * w, axis=-1))


def _mergers_at(t_merger, n=6, seed=13):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = sim.draw_parameters(rng)
        p.t_merger = t_merger
        out.append(sim.detector_signals(p))
    # and the two extremes of the prior: the heaviest binary (short, all merger) and the lightest (long inspiral)
    for m in (100.0, 5.0):
        p = sim.draw_parameters(rng)
        p.mass1 = p.mass2 = m
        p.t_merger = t_merger
        out.append(sim.detector_signals(p))
    return np.stack(out)


def test_window_keeps_the_snr_of_a_merger_at_the_end():
    """A merger at 1.9 s of the 2-s window (the latest the simulator draws) keeps >= 99% of its band-limited
    optimal SNR through the default whitening + band-pass: the taper lies in the padding. The Tukey(0.2)
    window over the data that whiteners used before keeps much less (the issue measured ~0.75), so this
    test can tell them apart."""
    signals = _mergers_at(1.9)
    psd = sim.network_psd()
    ref = np.sqrt((_band_limited_snr(signals) ** 2).sum(-1))
    new = Whitener().set_psd(psd).whiten(signals)
    kept = np.sqrt(2 / 2048 * (new ** 2).sum(axis=(-2, -1))) / ref
    assert kept.min() >= 0.99 and kept.max() <= 1.01, kept
    per_det = np.sqrt(2 / 2048 * (new ** 2).sum(-1)) / _band_limited_snr(signals)
    assert per_det.min() >= 0.98, per_det
    old = Whitener.from_state({"alpha": 0.2}, psd).whiten(signals)
    kept_old = np.sqrt(2 / 2048 * (old ** 2).sum(axis=(-2, -1))) / ref
    assert kept_old.min() < 0.9 and np.median(kept_old) < 0.9, kept_old
    # the numpy whitening the simulator uses is the same computation, and whitened_snr is this measure
    np.testing.assert_allclose(whiten_array(signals, psd), new, rtol=0, atol=1e-9 * np.abs(new).max())
    np.testing.assert_allclose(np.sqrt((whitened_snr(signals, psd) ** 2).sum(-1)), kept * ref, rtol=1e-9)


def test_whitened_noise_keeps_its_variance_to_the_ends():
    """Noise whitened with padding keeps its variance up to the window's ends (within 20% in the first and
    last 50 ms), where zeros in the padding raise it many times (the jump from the loud < 20 Hz noise to 0; a
    mirror image, with its kink in the curvature, raised it ~7 times in the first 10 ms) and the Tukey(0.2)
    window lowers it to a few percent."""
    rng = np.random.default_rng(14)
    x = np.stack([sim.simulate_noise(rng) for _ in range(150)])
    w = Whitener().set_psd(sim.network_psd())
    v = (w.whiten(x) ** 2).mean(axis=(0, 1))
    mid = v[1024:3072].mean()
    # 150 samples x 3 detectors x >= 20 time samples: each slice's mean is good to ~2%
    for sl in (slice(0, 20), slice(20, 100), slice(-100, -20), slice(-20, None)):
        assert 0.8 < v[sl].mean() / mid < 1.2, (sl, v[sl].mean() / mid)
    zeros = Whitener(ar_order=0).set_psd(sim.network_psd())  # no predictor: zeros in the padding, a jump at the ends
    v0 = (zeros.whiten(x) ** 2).mean(axis=(0, 1))
    assert v0[:20].mean() / v0[1024:3072].mean() > 2


def test_whiten_long_segment_and_windows():
    rng = np.random.default_rng(6)
    x = sim.simulate_noise(rng, n=64 * 2048)
    x[2] = 0.0  # a masked detector stays zero
    w = whiten_long_segment(x, 2048.0, band=None)
    f, p = ss.welch(w[:2, 4096:-4096], fs=2048, nperseg=2048, axis=-1)
    band = (f >= 30) & (f <= 800)
    np.testing.assert_allclose(p[:, band].mean(1), 1.0, atol=0.08)
    assert (w[2] == 0).all()
    win, centres = sliding_windows(w, 1000.0, 2048.0, window_s=2.0, step_s=0.5)
    assert win.shape == (125, 3, 4096)
    np.testing.assert_allclose(centres[:3], [1001.0, 1001.5, 1002.0])
    np.testing.assert_array_equal(win[3], w[:, 3 * 1024: 3 * 1024 + 4096])


def test_running_psd_follows_a_change_in_the_noise():
    """A 192-s segment whose noise is 3x louder (in amplitude) after 96 s: whitened with a running PSD each
    part comes out at unit variance; with one PSD for the whole segment the loud half is ~9x the quiet one.
    A segment no longer than the span is whitened with its own single PSD, exactly as before."""
    from astrocnn.gw.whitening import whiten_running

    rng = np.random.default_rng(15)
    x = sim.simulate_noise(rng, n=192 * 2048)
    x[:, 96 * 2048:] *= 3.0
    run, how = whiten_running(x, 2048.0)
    once = whiten_long_segment(x, 2048.0)
    assert how.startswith("running: median Welch PSD (4-s FFTs) of the 64 s around each 8-s stretch")
    quiet, loud = slice(8 * 2048, 56 * 2048), slice(136 * 2048, 184 * 2048)  # 40 s clear of the change
    ratio_run = run[:2, loud].var() / run[:2, quiet].var()
    ratio_once = once[:2, loud].var() / once[:2, quiet].var()
    assert 0.9 < ratio_run < 1.1 and ratio_once > 6, (ratio_run, ratio_once)
    # whitened noise of unit one-sided PSD through the band-pass has variance integral |H|^4 df (441 Hz)
    from astrocnn.gw.whitening import bandpass_gain

    f = np.fft.rfftfreq(4096, 1 / 2048)
    expected = np.sum(bandpass_gain(f, 2048.0, (20.0, 500.0)) ** 2) * 0.5
    for part in (quiet, loud):
        assert run[:2, part].var() == pytest.approx(expected, rel=0.05)
    short = x[:, : 32 * 2048]
    white, how = whiten_running(short, 2048.0)
    np.testing.assert_array_equal(white, whiten_long_segment(short, 2048.0))
    assert how == "segment: median Welch PSD (4-s FFTs) of the whole 32-s segment"


# ---------------------------------------------------------------------------------------------- matched filter

def _injection(seed, snr=20.0):
    p = sim.draw_parameters(np.random.default_rng(seed), "IMRPhenomD")
    signal = sim.detector_signals(p, "IMRPhenomD")
    signal *= snr / np.sqrt((sim.optimal_snr(signal) ** 2).sum())
    bank = mf.make_template_bank(templates=[(p.mass1, p.mass2, p.spin1z, p.spin2z)])
    return p, signal, bank


def test_matched_filter_recovers_injected_snr_without_noise():
    """With the true template and no noise the network score is the injected SNR: the only losses are the
    10% Tukey taper at the window's ends and the lag grid, well under 3%."""
    psd = sim.network_psd()
    for seed in (1, 2, 3):
        p, signal, bank = _injection(seed)
        score, det = mf.matched_filter_scores(signal[None], psd, bank, return_details=True)
        assert score[0] == pytest.approx(20.0, rel=0.03)
        np.testing.assert_allclose(det["detector_snr"][0], sim.optimal_snr(signal), rtol=0.03)
        assert abs(det["time"][0] - p.t_merger) < 0.022  # H1 time: geocentre time + at most 21.3 ms


def test_matched_filter_in_noise():
    """In Gaussian noise the recovered SNR scatters by ~1 around the injected one (each detector's noise adds
    a unit-variance term along the template), and noise alone gives |snr|^2 ~ chi^2_2 (mean 2) at every lag."""
    rng = np.random.default_rng(8)
    noise = np.stack([sim.simulate_noise(rng) for _ in range(8)])
    psd = sim.network_psd()
    _, signal, bank = _injection(4)
    scores = mf.matched_filter_scores(noise + signal, psd, bank)
    assert abs(scores.mean() - 20.0) < 1.0 and np.abs(scores - 20.0).max() < 3.5
    snr2, lags = mf.matched_filter_snr(noise, psd, bank, lag_range=(3000, 3900))
    np.testing.assert_allclose(snr2.mean(axis=(0, 2, 3)), 2.0, rtol=0.15)


def test_default_bank():
    bank = mf.make_template_bank()
    assert len(bank) == 252
    assert bank.chirp_mass.min() == pytest.approx(4.0) and bank.chirp_mass.max() == pytest.approx(90.0)
    assert bank.waveforms.shape == (252, 6144) and np.isfinite(bank.waveforms).all()


@needs_data
@pytest.mark.real_data
def test_matched_filter_finds_gw170104():
    """The recipe of the design notes on real strain: whiten the 32-s segment with its own median Welch PSD,
    cut 2-s windows, matched-filter them. GW170104 (GPS 1167559936.6, network SNR ~13 in GWTC-1) must be
    the loudest window, found within 20 ms."""
    files = sorted((DATA / "gwosc").glob("*1167559920-32.hdf5"))
    net = gwosc_network(files, missing="zeros")
    white, f, p = whiten_long_segment(net.strain, net.sample_rate, band=None, return_psd=True)
    windows, centres = sliding_windows(white, net.gps_start, net.sample_rate, step_s=0.5)
    scores, det = mf.matched_filter_scores(windows, psd_on_grid(f, p), whitened=True, lag_step=2,
                                           return_details=True)
    best = int(np.argmax(scores))
    gps = centres[best] - 1.0 + det["time"][best]
    assert abs(gps - 1167559936.6) < 0.02
    assert 10.0 < scores[best] < 15.0
    assert np.sort(scores)[-3] < 8.0  # the event's two overlapping windows, then background


# ---------------------------------------------------------------------------------------------- store

def test_prepare_and_read_back(tmp_path):
    train = sim.simulate_g2net(16, 21, tmp_path / "train", workers=1)
    test = sim.simulate_g2net(6, 22, tmp_path / "test", workers=1)
    out = prepare_g2net(train, tmp_path / "train.h5", batch_size=5)
    ds = StrainSet(out)
    idx = read_g2net(train)
    assert len(ds) == 16 and ds.attrs["format"] == "astrocnn-prepared" and ds.attrs["kind"] == "strain"
    assert ds.attrs["format_version"] == 1 and ds.sample_rate == 2048.0
    w = fit_whitener(idx)
    np.testing.assert_allclose(ds.whitening_psd, w.psd.numpy())
    rows = ds.read([9, 2, 2])
    raw = np.stack([load_g2net_sample(idx.paths[i]) for i in (9, 2, 2)])
    expect = ds.preprocess_module()(torch.as_tensor(raw)).numpy()
    np.testing.assert_allclose(rows["strain"], expect, rtol=1e-5, atol=1e-5)
    assert list(rows["id"]) == [idx.ids[9], idx.ids[2], idx.ids[2]] and rows["strain"].dtype == np.float32
    np.testing.assert_array_equal(rows["target"], idx.target[[9, 2, 2]])
    np.testing.assert_allclose(ds.snr, idx.snr, equal_nan=True)
    assert np.allclose(rows["strain"].std(axis=-1), 1.0, atol=1e-3)  # normalised per channel
    assert "mass1" in ds.truth()
    # an evaluation set takes the training set's whitener, never its own labels
    ev = StrainSet(prepare_g2net(test, tmp_path / "test.h5", whitener=out))
    np.testing.assert_array_equal(ev.whitening_psd, ds.whitening_psd)
    # a corrupt sample aborts the write and leaves no file behind
    bad = read_g2net(test).paths[0]
    np.save(bad, np.zeros((2, 4096)))
    with pytest.raises(InputError, match="shape"):
        prepare_g2net(test, tmp_path / "bad.h5", whitener=out)
    assert not (tmp_path / "bad.h5").exists() and not list(tmp_path.glob(".bad.h5*"))


@pytest.fixture(scope="module")
def noise_folder(tmp_path_factory):
    """A folder of 200 noise-only simulated samples (design PSD)."""
    return sim.simulate_g2net(200, 31, tmp_path_factory.mktemp("noise") / "sim", positive_fraction=0.0, workers=1)


def _expected_hann_periodogram(psd_segment, n=4096):
    """Exact expectation of the Hann periodogram (1/Hz) of the simulator's noise: the 2-s crop of a circular
    4-s series whose rfft components m have variance PSD_m N fs / 2 (simulate_noise). The windowed DFT mixes
    components at frequency offsets (2k -+ m) / N, whose weights |W|^2 an N-point FFT of the zero-padded window
    gives exactly. (C, n // 2 + 1)."""
    big = 2 * n
    w = ss.windows.hann(n, sym=False)
    w2 = np.abs(np.fft.fft(w, n=big)) ** 2
    k = np.arange(n // 2 + 1)[:, None]
    m = np.arange(1, n)[None, :]  # 4-s components, DC (PSD 0) and Nyquist left out
    kern = w2[(2 * k - m) % big] + w2[(2 * k + m) % big]
    return (kern @ psd_segment[:, 1:n].T).T / (big * (w ** 2).sum())


def test_label_free_psd_of_pure_noise_matches_the_generating_psd(noise_folder):
    """The median-over-samples PSD of a folder of pure noise is the generating PSD within its own statistical
    error: per bin the bias-corrected median of 200 exponentials scatters by median_relative_error(200) =
    10.2% (exact), so over 25-1000 Hz (~1950 bins, neighbours correlated in pairs by the Hann window) the
    ratio to the PSD has that spread and a mean of 1 to well under 1%. Compared with the PSD as the Hann
    window sees it (exactly computed), and with the PSD itself away from the design curves' narrow lines
    (480 Hz H1/L1, 438 Hz V1), whose leakage a 2-s window cannot avoid."""
    from astrocnn.gw.psd import folder_psd, median_relative_error

    est = folder_psd(read_g2net(noise_folder), Whitener())
    assert est.n == 200 and est.psd.shape == (3, 2049)
    f = np.fft.rfftfreq(4096, 1 / 2048)
    band = (f >= 25) & (f <= 1000)
    sigma = median_relative_error(200)
    assert sigma == pytest.approx(1.443 / np.sqrt(200), rel=0.02)
    expected = _expected_hann_periodogram(sim.network_psd(n=8192))
    ratio = est.psd[:, band] / expected[:, band]
    np.testing.assert_allclose(ratio.mean(1), 1.0, atol=0.012)
    np.testing.assert_allclose(ratio.std(1), sigma, rtol=0.1)
    assert (np.abs(ratio - 1) > 4.5 * sigma).mean() < 0.002
    clear = band & (np.abs(f - 480) > 5) & (np.abs(f - 438) > 5)
    plain = est.psd[:, clear] / sim.network_psd()[:, clear]
    np.testing.assert_allclose(plain.mean(1), 1.0, atol=0.015)
    np.testing.assert_allclose(plain.std(1), sigma, rtol=0.1)
    # without the median's bias correction it would sit at ln 2 = 0.69: the test tells them apart
    assert np.all(np.abs(np.median(plain, 1) - 1) < 0.05)


def test_label_free_psd_does_not_depend_on_file_order_or_labels(noise_folder, tmp_path):
    from astrocnn.core.errors import InputError as Err
    from astrocnn.gw.psd import folder_psd, median_psd

    idx = read_g2net(noise_folder)
    est = folder_psd(idx, Whitener(), batch_size=37)
    # the same files, flat, in reverse order of writing and without any labels file
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in idx.paths[::-1]:
        shutil.copy(p, flat / p.name)
    again = folder_psd(read_g2net(flat), Whitener(), batch_size=64)
    np.testing.assert_array_equal(again.psd, est.psd)
    assert again.digest == est.digest and again.describe().startswith("data: median of 200 samples of ")
    pg = Whitener().periodograms(np.stack([load_g2net_sample(p) for p in idx.paths[:65]])).numpy()
    perm = np.random.default_rng(0).permutation(65)
    np.testing.assert_array_equal(median_psd(pg[perm]), median_psd(pg))
    few = tmp_path / "few"
    few.mkdir()
    for p in idx.paths[:10]:
        shutil.copy(p, few / p.name)
    with pytest.raises(Err, match=r"few: 10 readable samples; a PSD estimated from the data needs at least 64"):
        folder_psd(read_g2net(few), Whitener())


def test_prepare_whitens_a_set_by_its_own_data_psd(noise_folder, tmp_path):
    from astrocnn.gw.psd import folder_psd

    (noise_folder / "training_labels.csv").rename(tmp_path / "labels.csv")  # label-free: no labels needed
    try:
        out = prepare_g2net(noise_folder, tmp_path / "data.h5", psd="data")
    finally:
        (tmp_path / "labels.csv").rename(noise_folder / "training_labels.csv")
    ds = StrainSet(out)
    est = folder_psd(read_g2net(noise_folder), Whitener())
    np.testing.assert_array_equal(ds.whitening_psd, est.psd)
    assert ds.attrs["whitening_fit"] == est.describe() and int(ds.attrs["whitening_n_fit"]) == 200
    with pytest.raises(InputError, match="not both"):
        prepare_g2net(noise_folder, tmp_path / "x.h5", whitener=out, psd="data")


def test_strain_set_refuses_other_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5.attrs["format"] = "astrocnn-prepared"
        h5.attrs["kind"] = "spectra"
    with pytest.raises(InputError, match="kind 'spectra', not strain"):
        StrainSet(tmp_path / "other.h5")


# ---------------------------------------------------------------------------------------------- ROC

def test_roc_hand_computed_with_ties():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4]
    # 9 positive-negative pairs: 0.35 beats 1; 0.8 beats 3; 0.4 beats 1 and ties 2 (half each) -> 6 / 9
    assert roc.roc_auc(y, s) == pytest.approx(6 / 9)
    fpr, tpr, thr = roc.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert np.trapezoid(tpr, fpr) == pytest.approx(6 / 9)
    assert roc.tpr_at_fpr(y, s, 0.01) == pytest.approx(1 / 3)
    assert roc.tpr_at_fpr(y, s, 0.7) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        roc.roc_auc([1, 1], [0.2, 0.3])


def test_bootstrap_interval():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(400), np.zeros(400)].astype(int)
    s = np.r_[rng.normal(1.0, 1, 400), rng.normal(0, 1, 400)]
    b = roc.bootstrap_auc(y, s, n_boot=300)
    # AUC of N(1,1) vs N(0,1) is Phi(1/sqrt(2)) = 0.760; its sampling error at 400+400 is ~0.017
    assert b["low"] < b["auc"] < b["high"] and b["low"] < 0.760 < b["high"]
    assert 0.01 < b["std"] < 0.025
