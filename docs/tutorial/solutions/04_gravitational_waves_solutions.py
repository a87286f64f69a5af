# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions to the exercises of notebook 4 (gravitational waves)
#
# This notebook simulates its own training and held-out sets and trains the detector exactly as notebook 4 does
# (same seeds, same settings), so it runs on its own. It reads the real G2Net samples and the GWOSC files around
# GW151012 from `../shared/data` (or the folder `ASTROCNN_DATA` names); without them it says so and simulates
# stand-ins.

# %%
import logging
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import torch

from astrocnn.apps.gwscan import event_report, predict_g2net_dir, predict_gwosc
from astrocnn.core.config import default_config
from astrocnn.gw.dataset import StrainSet
from astrocnn.gw.events import segments_with_events
from astrocnn.gw.matched_filter import CoincidentSearch
from astrocnn.gw.prepare import prepare_g2net
from astrocnn.gw.readers import gwosc_network, load_g2net_batch, read_g2net
from astrocnn.gw.simulate import detector_signals, draw_parameters, optimal_snr, simulate_g2net, simulate_noise
from astrocnn.gw.whitening import Whitener, periodogram_psd, whiten_long_segment
from astrocnn.train import predict_set, train

QUICK = os.environ.get("ASTROCNN_TUTORIAL_QUICK", "") not in ("", "0")
HERE = Path.cwd()
REPO = next((p for p in (HERE, *HERE.parents) if (p / "pyproject.toml").is_file()), HERE)
DATA = Path(os.environ.get("ASTROCNN_DATA") or REPO.parent / "shared" / "data")
WORK = Path(os.environ.get("ASTROCNN_TUTORIAL_WORK") or tempfile.mkdtemp(prefix="astrocnn-tutorial-"))
WORK.mkdir(parents=True, exist_ok=True)
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
logging.getLogger("astrocnn").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", "Wswiglal-redir-stdio")
# torch threads: 0 = every core. On a machine shared with other work one thread is often faster.
THREADS = int(os.environ.get("ASTROCNN_TUTORIAL_THREADS") or (1 if QUICK else 0))
if THREADS:
    torch.set_num_threads(THREADS)
plt.rcParams["figure.dpi"] = 80
FS, N = 2048.0, 4096
DETS = ("H1", "L1", "V1")
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ### The real files, or stand-ins

# %%
GWOSC_DIR, G2NET_DIR = DATA / "gwosc", DATA / "g2net"
events = segments_with_events(GWOSC_DIR.glob("*.hdf5")) if GWOSC_DIR.is_dir() else {}
HAVE_GWOSC = "GW151012" in events
HAVE_G2NET = (G2NET_DIR / "training_labels.csv").is_file()
if HAVE_GWOSC:
    EVENT = "GW151012"
    T_EVENT, EVENT_FILES = events[EVENT]
else:
    print("=" * 100)
    print(f"NOTE: the real GWOSC files are not here ({GWOSC_DIR} has no GW151012 files).")
    print("      Exercise 3 uses a SIMULATED faint merger in simulated noise, written as GWOSC files.")
    print("=" * 100)
    rng = np.random.default_rng(1510)
    gps0, T_EVENT, EVENT = 1_200_000_000, 1_200_000_016.4, "GW-SIM"
    noise = simulate_noise(rng, n=int(32 * FS), sample_rate=FS, detectors=("H1", "L1"))
    source = replace(draw_parameters(rng, "IMRPhenomD"), mass1=23.0, mass2=13.0, t_merger=1.7)   # GW151012-like
    signal = detector_signals(source, "IMRPhenomD", detectors=("H1", "L1"), gps_start=T_EVENT - 1.7)
    signal *= 9.0 / np.sqrt(np.sum(optimal_snr(signal) ** 2))
    start = int(round((T_EVENT - 1.7 - gps0) * FS))
    noise[:, start:start + N] += signal
    (WORK / "gwosc-simulated").mkdir(exist_ok=True)
    EVENT_FILES = []
    for k, det in enumerate(("H1", "L1")):
        path = WORK / "gwosc-simulated" / f"{det[0]}-{det}_SIMULATED-{gps0}-32.hdf5"
        with h5py.File(path, "w") as h5:
            h5.create_dataset("strain/Strain", data=noise[k]).attrs["Xspacing"] = 1.0 / FS
            h5["meta/GPSstart"] = gps0
            h5["meta/Detector"] = det
            h5["quality/simple/DQmask"] = np.full(32, 127)
        EVENT_FILES.append(path)
if not HAVE_G2NET:
    print("=" * 100)
    print(f"NOTE: the real G2Net samples are not here ({G2NET_DIR} is absent).")
    print("      Exercise 1 uses SIMULATED samples in their place (so real and simulated noise are the same).")
    print("=" * 100)
    G2NET_DIR = simulate_g2net(88, seed=41, out_dir=WORK / "g2net-simulated", workers=1)
print(f"{EVENT} (GPS {T_EVENT}): {', '.join(p.name for p in EVENT_FILES)}")

# %% [markdown]
# ### The detector of notebook 4, trained again

# %%
n_train, n_heldout = (300, 100) if QUICK else (6000, 600)
workers = 1 if QUICK else 2
simulate_g2net(n_train, seed=11, out_dir=WORK / "gw-train", workers=workers)
simulate_g2net(n_heldout, seed=12, out_dir=WORK / "gw-heldout", workers=workers)
prepare_g2net(WORK / "gw-train", WORK / "gw-train.h5", workers=workers)
prepare_g2net(WORK / "gw-heldout", WORK / "gw-heldout.h5", whitener=WORK / "gw-train.h5", workers=workers)
train_set = StrainSet(WORK / "gw-train.h5")
budget = {"max_epochs": 2, "schedule": "constant"} if QUICK else {"max_epochs": 4, "schedule": "cosine",
                                                                  "warmup_epochs": 0.5}
config = default_config("detect", data={"num_workers": 0, "test_fraction": 0.0, "val_fraction": 0.1,
                                        "aug_flip": True, "aug_swap": True, "aug_delay": 8},
                        train={**budget, "patience": 100, "threads": THREADS, "progress_bar": False, "seed": 0},
                        task={"n_boot": 200})
RUN = WORK / "run_detect"
result = train("detect", WORK / "gw-train.h5", RUN, config)
print(f"{result.epochs} epochs; validation ROC AUC {result.metrics['roc_auc']:.3f}")

# %% [markdown]
# ## Exercise 1: real noise against simulated noise
#
# The ASD of the real G2Net noise-only samples (a whitener fitted on them, for this comparison only: fitting on
# the samples we score would leak their labels) divided by the ASD the training set was whitened with. Then the real
# noise-only samples whitened as the network sees them, with the *training* whitener: where the ratio is not 1,
# their whitened spectrum is not flat.

# %%
g2 = read_g2net(G2NET_DIR)
real_noise = load_g2net_batch([g2.paths[i] for i in np.flatnonzero(g2.target == 0)])
real_whitener = Whitener(sample_rate=FS, n_samples=N).fit(real_noise)
f = np.fft.rfftfreq(N, 1 / FS)
ratio = np.sqrt(real_whitener.psd.numpy() / train_set.whitening_psd)
trained = train_set.whitener()
as_seen = np.sqrt(periodogram_psd(trained.whiten(real_noise), FS, trained.window).mean(0).numpy())
band = (f >= 20) & (f <= 500)
print(f"{'' if HAVE_G2NET else 'simulated '}G2Net noise-only samples: {len(real_noise)}")
for k, det in enumerate(DETS):
    lo, hi = (f >= 20) & (f < 60), (f >= 60) & (f <= 500)
    print(f"{det}: ASD real / simulated, median over 20-60 Hz {np.median(ratio[k, lo]):.2f}, over 60-500 Hz "
          f"{np.median(ratio[k, hi]):.2f}; over 20-500 Hz from {ratio[k, band].min():.2f} "
          f"to {ratio[k, band].max():.2f}")

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 3.8))
for k, det in enumerate(DETS):
    ax0.semilogx(f[1:], ratio[k, 1:], lw=0.8, label=det)
    ax1.loglog(f[1:], as_seen[k, 1:], lw=0.8, label=det)
for ax in (ax0, ax1):
    ax.axvspan(20, 500, color="0.9", zorder=0)
    ax.set_xlim(8, FS / 2)
    ax.set_xlabel("frequency [Hz]")
    ax.legend(fontsize=8)
ax0.axhline(1, color="k", lw=0.6)
ax0.set_ylim(0, 3)
ax0.set_ylabel("ASD real / ASD simulated")
ax1.set_ylim(1e-3, 10)
ax1.set_ylabel("ASD after the training whitener")
ax1.set_title("real noise-only samples, as the network sees them", loc="left", fontsize=10)
fig.tight_layout()
plt.show()

real_scores = predict_g2net_dir(RUN, G2NET_DIR)
held = StrainSet(WORK / "gw-heldout.h5")
sim_scores = predict_set(RUN, WORK / "gw-heldout.h5")
real_noise_score = real_scores["score"][real_scores["target"] == 0]
print(f"network score of noise-only samples: real G2Net median {np.median(real_noise_score):.3f}, "
      f"simulated held-out median {np.median(sim_scores['score'][held.target == 0]):.3f}")

# %% [markdown]
# With the real samples present: the organisers' noise is not our simulator's. In H1 and L1 the real noise has 1.10
# times our amplitude at 20-60 Hz and 0.84 times above 60 Hz (the medians printed above), and narrow lines our
# simulator does not have (the spikes of the left panel, up to 5.72 times our level in H1). After the training
# whitener the real noise is therefore not flat: it is tilted towards the bottom of the band, where a merger's chirp
# spends most of its cycles, and since every sample is then scaled to unit variance, the tilt is what the network
# sees. It takes it for a signal: the real noise-only samples score a median of 0.818, simulated noise 0.279. The cure
# is to whiten real data with a noise estimate from the same detectors: G2Net's own training noise, or, for a long
# real segment, the segment itself, as `predict_gwosc` does (notebook 4's scan of GW170104, where real LIGO noise
# scores low). Without the real files, the stand-ins come from the same simulator, and the ratio is one up to the
# scatter of the estimate.
#
# ## Exercise 2: efficiency against SNR
#
# For each detector the threshold is the score that 1% of the held-out noise samples exceed; the efficiency in an
# SNR bin is the fraction of its signals above that threshold. With a few hundred noise samples, the 1% threshold
# rests on a handful of them, so it is itself uncertain.

# %%
raw = load_g2net_batch(read_g2net(WORK / "gw-heldout").paths)
mf = CoincidentSearch(train_set.whitening_psd).scores(raw)
scores = {"CNN": sim_scores["logit"], "matched filter": mf}
y, snr = held.target == 1, held.snr
edges = [0, 4, 6, 8, 10, 12, 15, 20, np.inf]
in_bin = [y & (snr >= lo) & (snr < hi) for lo, hi in zip(edges[:-1], edges[1:])]
centres = [np.median(snr[sel]) for sel in in_bin]
eff = {}
for name, s in scores.items():
    threshold = np.quantile(s[~y], 0.99)
    eff[name] = np.array([np.mean(s[sel] > threshold) for sel in in_bin])
    crossing = next((c for c, e in zip(centres, eff[name]) if e >= 0.5), None)
    half = f"the first SNR bin with half its signals found has median SNR {crossing:.1f}" if crossing is not None \
        else "no SNR bin has half its signals found"
    print(f"{name:15s} threshold {threshold:.3f} ({int((s[~y] > threshold).sum())} of {int((~y).sum())} noise samples "
          f"above); {half}")
print(f"{'SNR bin':>9s} {'n':>4s} {'CNN':>6s} {'filter':>7s}")
for lo, hi, sel, e_cnn, e_mf in zip(edges[:-1], edges[1:], in_bin, eff["CNN"], eff["matched filter"]):
    print(f"{lo:>4g}-{hi:<4g} {int(sel.sum()):4d} {e_cnn:6.2f} {e_mf:7.2f}")
fig, ax = plt.subplots(figsize=(6, 3.8))
for (name, e), colour in zip(eff.items(), ("tab:blue", "tab:red")):
    ax.plot(centres, e, "o-", color=colour, label=name)
ax.axhline(0.5, color="0.6", ls="--", lw=0.8)
ax.set_xscale("log")
ax.set_xlabel("injected network SNR (bin median)")
ax.set_ylabel("fraction found at 1% false positives")
ax.set_ylim(-0.02, 1.02)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# With 311 noise samples, the 1% threshold rests on the 4 loudest of them, so it is itself uncertain; still, the picture
# is clear. The matched filter finds almost half of the signals in the 6-8 bin (0.48) and nearly all from 8-10 on
# (0.94); the network, trained for a few minutes, reaches one half only in the 10-12 bin (0.64, median SNR 10.9).
# Both find every signal above SNR 15, and almost none below 6 (0.07 in the 4-6 bin): there the signal is within the
# noise's own fluctuations. The filter knows the shapes of the signals in advance, the network has learnt them from
# a few thousand examples; the README's network, trained far longer, passes the filter.
#
# ## Exercise 3: a quieter event

# %%
scan = predict_gwosc(RUN, EVENT_FILES)
report = event_report(RUN, EVENT_FILES, T_EVENT)
ok = scan["valid"]
t_score = scan["gps_centre"] - T_EVENT + 0.7
print(f"{EVENT}: {report['n_windows']} valid windows; median score {report['median_score']:.3f}")
print(f"top window: centre {report['top_minus_event_s']:+.2f} s from the merger, score {report['top_score']:.3f}; "
      f"the merger is in it: {report['event_in_top_window']}")
print(f"the window with the merger 0.7 s after its centre: score {report['event_score']:.3f}, "
      f"rank {report['event_rank']} of {report['n_windows']}")
order = np.argsort(-np.where(ok, scan["score"], -1))[:5]
print("highest five (time of the merger slot from the event): "
      + "; ".join(f"{t_score[i]:+.2f} s: {scan['score'][i]:.3f}" for i in order))

net = gwosc_network(EVENT_FILES, sample_rate=FS)
white = whiten_long_segment(net.strain[:2], FS)
t = net.gps_start + np.arange(white.shape[1]) / FS - T_EVENT
freqs = np.geomspace(20, 500, 60)


def qtransform(x, sample_rate, freqs, q=6.0):
    """Normalised energy (len(freqs), n) of a whitened series x (n,): a constant-Q map (as in notebook 4)."""
    spec = np.fft.fft(x)
    fq = np.fft.fftfreq(x.size, 1 / sample_rate)
    energy = np.empty((freqs.size, x.size))
    for i, f0 in enumerate(freqs):
        e = np.abs(np.fft.ifft(spec * np.exp(-0.5 * ((fq - f0) / (f0 / q)) ** 2))) ** 2
        energy[i] = e / np.median(e)
    return energy


qmap = qtransform(white[0], FS, freqs) + qtransform(white[1], FS, freqs)
i_top = int(np.argmax(np.where(ok, scan["score"], -1)))
loudest = np.unravel_index(np.argmax(np.where(np.abs(t) > 0.5, qmap, 0)), qmap.shape)
print(f"loudest point of the H1 + L1 map away from the merger: {t[loudest[1]]:+.2f} s, {freqs[loudest[0]]:.0f} Hz, "
      f"energy {qmap[loudest]:.0f}; at the merger (within 0.2 s): {qmap[:, np.abs(t) < 0.2].max():.0f}")
fig, axes = plt.subplots(3, 1, figsize=(12, 7.5), gridspec_kw={"height_ratios": [3, 2, 3]})
stride = 64
n_keep = qmap.shape[1] // stride * stride
coarse = qmap[:, :n_keep].reshape(freqs.size, -1, stride).max(-1)
cmap = plt.get_cmap("viridis", 12)
axes[0].pcolormesh(t[:n_keep:stride], freqs, coarse, shading="auto", cmap=cmap, vmin=0,
                   vmax=np.percentile(coarse, 99.9))
axes[1].plot(t_score[ok], scan["score"][ok], "o-", ms=2.5, lw=0.8, color="tab:red")
axes[1].set_ylim(-0.02, 1.02)
axes[1].set_ylabel("network score")
axes[1].set_xlim(axes[0].get_xlim())
for ax in axes[:2]:
    ax.axvline(0, color="k", ls=":", lw=1)
    ax.axvspan(t_score[i_top] - 1.7, t_score[i_top] + 0.3, color="tab:red", alpha=0.1)   # the top window's 2 s
axes[0].set_yscale("log")
axes[0].set_ylabel("frequency [Hz]")
axes[0].set_title(f"{'' if HAVE_GWOSC else 'simulated, '}{EVENT}: whitened H1 + L1 map, the network's score, and "
                  "the top window (shaded)", loc="left", fontsize=10)
zoom = (t > -3.5) & (t < 0.5)                 # the merger and the seconds before it
axes[2].pcolormesh(t[zoom], freqs, qmap[:, zoom], shading="auto", cmap=cmap, vmin=0,
                   vmax=np.percentile(qmap[:, zoom], 99.9))
axes[2].axvline(0, color="w", ls=":", lw=1)
axes[2].set_yscale("log")
axes[2].set_ylabel("frequency [Hz]")
axes[2].set_xlabel(f"time from {EVENT} [s]")
fig.tight_layout()
plt.show()

# %% [markdown]
# GW151012 is fainter than GW170104: in the zoom its chirp is a faint track rising in frequency up to the merger,
# whose largest energy within 0.2 s of the merger is 28. Brighter still is a short burst at 29 Hz, 1.33 s before
# the merger (energy 32). That is a *glitch*: a short transient of the detectors themselves, common in real data
# and absent from Gaussian training noise. The network has never seen one and takes its power for a signal: the top
# window (score 0.944), centred 2.19 s before the merger, holds the glitch and not the merger, and places its merger
# slot (-1.49 s) next to the glitch. The window that places GW151012's merger where the training samples had theirs
# scores 0.435, rank 21 of 113. Real searches deal with glitches by requiring coincidence and consistency between
# detectors, and by training on real noise, glitches included.
