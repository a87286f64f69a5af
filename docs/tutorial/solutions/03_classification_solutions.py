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
# # Solutions to the exercises of notebook 3 (classification)
#
# One network serves all three solutions: a three-class classifier (quasar, galaxy, star) trained on a simulated
# survey of all three. The notebook reads no real files.

# %%
import logging
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Image, display

from astrocnn.core.config import default_config
from astrocnn.core.metrics import classification_metrics
from astrocnn.core.plots import plot_confusion
from astrocnn.spectra import PAPER_GRID, SpectraSet
from astrocnn.spectra.lines import PLOT_LINES
from astrocnn.spectra.prepare import simulate_prepared
from astrocnn.train import load_run, predict_set, train

QUICK = os.environ.get("ASTROCNN_TUTORIAL_QUICK", "") not in ("", "0")
WORK = Path(os.environ.get("ASTROCNN_TUTORIAL_WORK") or tempfile.mkdtemp(prefix="astrocnn-tutorial-"))
WORK.mkdir(parents=True, exist_ok=True)
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message="IProgress not found")
# torch threads per training: 0 = every core. On a machine shared with other work one thread is often faster.
THREADS = int(os.environ.get("ASTROCNN_TUTORIAL_THREADS") or (1 if QUICK else 0))
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## Exercise 1: three classes

# %%
classes = ["qso", "galaxy", "star"]
n_train, n_heldout = (300, 100) if QUICK else (6000, 1000)
workers = 1 if QUICK else 2
simulate_prepared(n_train, seed=3, out=WORK / "mix3.h5", classes=classes, workers=workers)
simulate_prepared(n_heldout, seed=4, out=WORK / "mix3_heldout.h5", classes=classes, workers=workers)
budget = {"max_epochs": 2, "schedule": "constant"} if QUICK else {"max_epochs": 100, "max_minutes": 3.0,
                                                                  "schedule": "cosine_time"}
config = default_config("classify", task={"classes": classes}, data={"num_workers": 0},
                        train={**budget, "threads": THREADS, "progress_bar": False, "seed": 0})
run = WORK / "run_classify3"
train("classify", WORK / "mix3.h5", run, config)

heldout = SpectraSet(WORK / "mix3_heldout.h5")
pred = predict_set(run, WORK / "mix3_heldout.h5")
y_true = np.array([classes.index(c) for c in np.asarray(heldout.class_names)[heldout.cls]])
m = classification_metrics(y_true, pred["cls"], classes)
print(f"accuracy on {m['n']} held-out spectra: {m['accuracy']:.4f}")
for c in classes:
    print(f"  {c:7s} completeness {m['completeness'][c]:.3f}, purity {m['purity'][c]:.3f}")
plot_confusion(np.array(m["confusion"]["matrix"]), classes, WORK / "confusion3.png")
display(Image(filename=str(WORK / "confusion3.png")))

# %% [markdown]
# In full mode the three classes separate almost perfectly (about 99%): stars, though only 10% of the survey, have
# no redshifted lines and a continuum shaped by their temperature alone, and are easy. Look at the few errors in the
# matrix: which pairs get confused, and in which direction? (In quick mode the network has seen too few stars to
# find any.)
#
# ## Exercise 2: what the network uses, on average, in the rest frame

# %%
network, task, _ = load_run(run)
n_each = 10 if QUICK else 30
rest_edges = np.geomspace(900, 9000, 181)            # a common rest-frame grid, log-spaced
width, stride = 100, 100 if QUICK else 50


def log_odds(log_p, k):
    """log(p_k / (1 - p_k)) from the network's log-probabilities (n, classes): unlike log p_k, it does not
    saturate when the network is sure."""
    others = torch.cat([log_p[:, :k], log_p[:, k + 1:]], dim=1)
    return log_p[:, k] - torch.logsumexp(others, dim=1)


def occlusion_drop(flux, k):
    starts = np.arange(0, flux.size - width + 1, stride)
    x = np.repeat(flux[None, :], starts.size, axis=0)
    for i, s0 in enumerate(starts):
        x[i, s0:s0 + width] = 0.0
    with torch.no_grad():
        base = log_odds(network(torch.tensor(flux)[None, None, :]), k).item()
        drop = base - log_odds(network(torch.tensor(x)[:, None, :]), k).numpy()
    return PAPER_GRID.wave[starts + width // 2], drop


fig, axes = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
for ax, cls in zip(axes, ("qso", "galaxy")):
    k = classes.index(cls)
    rows = np.flatnonzero(y_true == k)[:n_each]
    total, count = np.zeros(rest_edges.size - 1), np.zeros(rest_edges.size - 1)
    batch = heldout.read(rows)
    for flux, z in zip(batch["flux"], batch["z"]):
        wave, drop = occlusion_drop(flux, k)
        idx = np.digitize(wave / (1 + z), rest_edges) - 1
        ok = (idx >= 0) & (idx < total.size)
        np.add.at(total, idx[ok], drop[ok])
        np.add.at(count, idx[ok], 1)
    centres = np.sqrt(rest_edges[1:] * rest_edges[:-1])
    ax.plot(centres, np.where(count > 0, total / np.maximum(count, 1), np.nan), color="tab:green")
    ax.axhline(0, color="0.6", lw=0.5)
    for name, rest in PLOT_LINES[cls].items():
        ax.axvline(rest, color="tab:red", ls="--", lw=0.6)
        ax.text(rest, ax.get_ylim()[1], name, rotation=90, va="top", ha="right", fontsize=7, color="tab:red")
    ax.set_ylabel("mean drop in log-odds")
    ax.set_title(f"{cls}: occlusion averaged over {rows.size} held-out spectra", fontsize=9, loc="left")
axes[-1].set_xscale("log")
axes[-1].set_xlabel("rest-frame wavelength [A]")
fig.tight_layout()
plt.show()

# %% [markdown]
# For quasars the average map peaks sharply on the broad emission lines: Ly$\alpha$ above all, then MgII, CIV,
# CIII] and H$\alpha$. The network has learnt what makes a quasar a quasar. For galaxies the evidence is spread along
# the continuum (its shape, with the 4000 Å break, says "starlight"), with the strongest single feature at
# H$\alpha$ (+[NII]). Hiding one broad quasar line costs far more log-odds than hiding any stretch of a galaxy: the
# quasar's evidence is concentrated, the galaxy's distributed. With the small quick-mode training the maps are noisy.
#
# ## Exercise 3: accuracy against signal to noise

# %%
snr = heldout.snr
right = pred["cls"] == y_true
edges = [0, 2, 4, 8, 16, np.inf]
for lo, hi in zip(edges[:-1], edges[1:]):
    sel = (snr >= lo) & (snr < hi)
    if not sel.any():
        continue
    wrong = sel & ~right
    went = {c: int((pred["cls"][wrong] == i).sum()) for i, c in enumerate(classes) if (pred["cls"][wrong] == i).any()}
    print(f"S/N {lo:g}-{hi:g}: n = {sel.sum():4d}, accuracy {right[sel].mean():.3f}; misclassified as {went or '-'}")

# %% [markdown]
# In full mode the errors are a handful in a thousand and spread over all S/N: at these signal-to-noise ratios the
# classes differ in features spread over hundreds of pixels (broad lines, continuum shape), which survive the noise.
# The exercise is still worth doing on real data, or on a survey simulated with fainter objects, where the S/N
# falls below 1 per pixel: there the network has to fall back on its prior, the most common class of its training
# set.
