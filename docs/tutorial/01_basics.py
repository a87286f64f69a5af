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
# # 1. Basics: a neuron, gradient descent, and training a network
#
# This notebook follows Section 2 of *Introduction of Machine Learning for Astronomy* (Wang, Moradi,
# Zhoolideh Haghighi, Rastegarnia 2022). It needs no data files: everything is simulated here.
#
# What you will see:
#
# 1. **A neuron** (the paper's equation 1): a weighted sum of the inputs and an activation function, as code.
# 2. **Gradient descent** on a loss with two parameters, drawn as the paper's **figure 2**.
# 3. **The training procedure** of the paper's **figure 3**, written out in plain PyTorch: He-uniform
#    initialisation, forward pass, loss, backpropagation, an Adam step, and the convergence test.
# 4. **The same problem with astrocnn's trainer**, and what it adds: early stopping, checkpoints, resuming a
#    killed run, metrics.
#
# The exercises at the end have their solutions in `solutions/01_basics_solutions.ipynb`.
#
# **Quick mode.** With the environment variable `ASTROCNN_TUTORIAL_QUICK=1` every notebook of the tutorial
# shrinks its data and epochs so it runs in well under a minute (that is how the test suite runs it); the
# numbers are then rougher than in the text.

# %%
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from astrocnn.core.config import default_config
from astrocnn.core.plots import plot_loss_curves
from astrocnn.models import he_uniform_
from astrocnn.spectra import LogLambdaGrid, Prepared, SpectraWriter
from astrocnn.train import load_run, read_history, train

QUICK = os.environ.get("ASTROCNN_TUTORIAL_QUICK", "") not in ("", "0")
# the repository this notebook belongs to (the first folder above holding pyproject.toml), if any
HERE = Path.cwd()
REPO = next((p for p in (HERE, *HERE.parents) if (p / "pyproject.toml").is_file()), HERE)
FIGURES = Path(os.environ.get("ASTROCNN_FIGURES") or REPO / "docs" / "figures")  # the paper's figures go here
WORK = Path(os.environ.get("ASTROCNN_TUTORIAL_WORK") or tempfile.mkdtemp(prefix="astrocnn-tutorial-"))
FIGURES.mkdir(parents=True, exist_ok=True)
WORK.mkdir(parents=True, exist_ok=True)
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # Lightning's start-up messages: not needed here
# Small networks run fastest on one thread: with several, the threads spend their time waiting for each other.
torch.set_num_threads(1)
torch.manual_seed(0)
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## 1. A neuron: equation (1)
#
# A neuron takes inputs $x_1 \dots x_n$, multiplies each by a weight $w_i$, adds a bias $b$ and passes the sum
# through an *activation function* $f$:
#
# $$ y = f\Big(\sum_{i=1}^{n} w_i x_i + b\Big) \qquad (1)$$
#
# The activation the paper's network uses is the rectified linear unit, $\mathrm{ReLU}(s) = \max(0, s)$: without a
# non-linear $f$, any stack of neurons would still be one linear function of its inputs.

# %%
def relu(s):
    return np.maximum(0.0, s)


def neuron(x, w, b, f=relu):
    """Equation (1): the weighted sum of the inputs plus a bias, through the activation f."""
    return f(np.dot(w, x) + b)


x = np.array([0.5, -1.2, 3.0])   # three inputs, e.g. fluxes in three pixels
w = np.array([0.8, 0.1, -0.4])   # one weight per input
b = 0.3
print("weighted sum:", np.dot(w, x) + b, " -> output:", neuron(x, w, b))

# %% [markdown]
# A *layer* is many neurons reading the same inputs, each with its own weights: the weights become a matrix
# and the layer is one matrix product. That is what `torch.nn.Linear` computes; followed by `torch.nn.ReLU` it
# is equation (1) for a whole layer at once. Here we copy our neuron's weights into a one-neuron PyTorch layer
# and check that it gives the same number.

# %%
layer = nn.Sequential(nn.Linear(3, 1), nn.ReLU())
with torch.no_grad():
    layer[0].weight[:] = torch.tensor(w, dtype=torch.float32)
    layer[0].bias[:] = b
print("PyTorch:", layer(torch.tensor(x, dtype=torch.float32)).item(), " numpy:", neuron(x, w, b))

# %% [markdown]
# ## 2. Gradient descent on a two-parameter loss surface (figure 2)
#
# Training means choosing the weights that make a *loss* small. With two parameters the loss is a surface over a
# plane, and we can draw it. Our problem: a Hubble diagram. Galaxies at distances $d$ recede at $v = H_0 d$ plus
# peculiar velocities; we fit $v = w\,d + b$ by minimising the mean squared error
#
# $$ L(w, b) = \frac{1}{N}\sum_{j=1}^{N} \big(w\,d_j + b - v_j\big)^2 .$$
#
# (Distances in units of 100 Mpc and velocities in 1000 km/s keep the two parameters of similar size.)
#
# Gradient descent starts somewhere and repeatedly steps downhill, against the gradient:
# $(w, b) \leftarrow (w, b) - \eta\, \nabla L$, where the *learning rate* $\eta$ sets the step size.

# %%
rng = np.random.default_rng(1)
d = rng.uniform(0.1, 1.0, 60)                     # 10-100 Mpc, in units of 100 Mpc
v = 7.0 * d + rng.normal(0, 0.35, d.size)         # H0 = 70 km/s/Mpc, 350 km/s peculiar velocities (1000 km/s)


def loss(w, b):
    """L(w, b) for single values or whole arrays of them (the last axis runs over the galaxies)."""
    r = np.asarray(w, float)[..., None] * d + np.asarray(b, float)[..., None] - v
    return np.mean(r**2, axis=-1)


def gradient(w, b):
    r = w * d + b - v                               # residuals
    return np.array([2 * np.mean(r * d), 2 * np.mean(r)])


def descend(start, lr, steps):
    path = [np.array(start, float)]
    for _ in range(steps):
        path.append(path[-1] - lr * gradient(*path[-1]))
    return np.array(path)


# %% [markdown]
# The gradient above was worked out by hand. PyTorch can do it for us: *automatic differentiation* records the
# arithmetic and runs it backwards (backpropagation). Both agree:

# %%
wt = torch.tensor([2.0, 4.0], dtype=torch.float64, requires_grad=True)
dt, vt = torch.from_numpy(d), torch.from_numpy(v)
((wt[0] * dt + wt[1] - vt) ** 2).mean().backward()
print("by hand:", gradient(2.0, 4.0), " autograd:", wt.grad.numpy())

# %%
start, steps = (1.0, 5.0), 60
rates = {0.1: "tab:blue", 0.6: "tab:red", 0.74: "tab:orange"}
paths = {lr: descend(start, lr, steps) for lr in rates}
W, B = np.meshgrid(np.linspace(0, 12, 120), np.linspace(-3, 6, 120))
L = loss(W, B)

fig = plt.figure(figsize=(12, 4.8))
ax3 = fig.add_subplot(1, 2, 1, projection="3d", computed_zorder=False)
ax3.plot_surface(W, B, L, cmap="viridis", alpha=0.8, linewidth=0, rstride=4, cstride=4, zorder=1)
p = paths[0.6]
ax3.plot(p[:, 0], p[:, 1], loss(p[:, 0], p[:, 1]) + 0.3, color="tab:red", marker="o", ms=2.5, lw=1.2, zorder=10)
ax3.set_xlabel("w (slope)")
ax3.set_ylabel("b (intercept)")
ax3.set_zlabel("loss L(w, b)")
ax3.view_init(elev=40, azim=-65)
ax3.set_title("the loss surface and a path down it (learning rate 0.6)")
ax = fig.add_subplot(1, 2, 2)
ax.contour(W, B, L, levels=np.geomspace(L.min() * 1.05, L.max(), 25), cmap="viridis", linewidths=0.7)
for lr, colour in rates.items():
    p = paths[lr]
    ax.plot(p[:, 0], p[:, 1], "-o", color=colour, ms=2, lw=0.8, label=f"learning rate {lr}: L = {loss(*p[-1]):.3f}")
ax.plot(*start, "ks", label="start")
ax.plot(*np.polyfit(d, v, 1), "k*", ms=10, label="minimum (least squares)")
ax.set_xlabel("w (slope)")
ax.set_ylabel("b (intercept)")
ax.set_title(f"{steps} steps of gradient descent")
ax.legend(fontsize=8, loc="upper right")
fig.suptitle("Figure 2: gradient descent on a two-parameter loss")
fig.tight_layout()
fig.savefig(FIGURES / "fig2_gradient_descent.png", dpi=110)
plt.show()
print(f"least-squares answer: w, b = {np.polyfit(d, v, 1).round(3)};  after {steps} steps at 0.6: {paths[0.6][-1].round(3)}")

# %% [markdown]
# **What to look at.** The surface is a long, narrow valley: slope and intercept trade off against each other
# (a steeper line with a lower intercept fits almost as well). Along the valley floor the loss is nearly flat, so
# a small learning rate (blue) crawls; a larger one (red) gets there in a few dozen steps; near the stability
# limit (orange) every step overshoots across the valley and zig-zags. A learning rate only a little larger diverges
# (exercise 1). This is why the paper (and we) use **Adam**, which adapts the step size of every parameter to
# the size of its recent gradients.

# %% [markdown]
# ## 3. The training procedure (figure 3) in plain PyTorch
#
# A network has thousands of parameters instead of two, but it is trained exactly the same way. The paper's
# figure 3:
#
# 1. **initialise** the weights (He-uniform: uniform in $\pm\sqrt{6 / n_\mathrm{in}}$, which keeps the size of
#    the signal steady through ReLU layers);
# 2. **forward pass**: run a batch of training examples through the network;
# 3. **loss**: compare the outputs with the labels (here the mean squared error);
# 4. **backpropagation**: the gradient of the loss with respect to every weight;
# 5. **update** the weights (an Adam step);
# 6. **convergence test**: after each pass over the training set (an *epoch*), measure the loss on validation
#    examples the network does not train on; stop when it has not improved for `patience` epochs, and keep the
#    best weights.
#
# Our small problem is a toy redshift: a spectrum of 256 pixels, uniform in log wavelength over 4000-8000 A, with
# a sloped continuum, noise, and one broad emission line (rest wavelength 5008 A) redshifted to $0 < z < 0.5$. The
# network must read $z$ off the spectrum. Each spectrum is normalised to zero mean and unit variance, as the paper
# does, and so is the target: the network learns $(z - \bar z)/\sigma_z$ (with $\bar z$ and $\sigma_z$ of the
# training spectra), and its output is turned back into $z$. Without this the first epochs are spent only on
# getting the scale of the output right.

# %%
TOY_GRID = LogLambdaGrid(4000.0, 8000.0, 256)
REST = 5008.24  # [OIII], Angstrom


def toy_spectra(n, seed):
    """n toy spectra on TOY_GRID: (flux (n, 256) float32, normalised; z (n,))."""
    r = np.random.default_rng(seed)
    z = r.uniform(0.0, 0.5, n)
    wave = TOY_GRID.wave
    line = r.uniform(2.0, 5.0, (n, 1)) * np.exp(-0.5 * ((wave - REST * (1 + z[:, None])) / 40.0) ** 2)
    flux = 1 + r.normal(0, 0.5, (n, 1)) * (wave / 6000 - 1) + line + r.normal(0, 0.3, (n, wave.size))
    flux = (flux - flux.mean(axis=1, keepdims=True)) / flux.std(axis=1, keepdims=True)
    return flux.astype(np.float32), z


n_toy = 1200 if QUICK else 4000
flux, z = toy_spectra(n_toy, seed=2)
n_val = n_toy // 5
fig, axes = plt.subplots(1, 3, figsize=(12, 2.6), sharey=True)
for i, ax in enumerate(axes):
    ax.plot(TOY_GRID.wave, flux[i], lw=0.7)
    ax.axvline(REST * (1 + z[i]), color="tab:red", ls="--", lw=0.8)
    ax.set_title(f"toy spectrum {i}: z = {z[i]:.3f}", fontsize=9)
    ax.set_xlabel("wavelength [A]")
axes[0].set_ylabel("normalised flux")
plt.show()

# %% [markdown]
# The network: two convolutions (kernels of 15 and 7 pixels) with ReLU and max pooling, then two fully connected
# layers: the paper's design at toy scale. It outputs one number, the redshift.

# %%
def toy_network():
    body = nn.Sequential(nn.Conv1d(1, 8, 15), nn.ReLU(), nn.MaxPool1d(4),
                         nn.Conv1d(8, 16, 7), nn.ReLU(), nn.MaxPool1d(4), nn.Flatten())
    n_features = body(torch.zeros(1, 1, TOY_GRID.n)).shape[1]
    return nn.Sequential(body, nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 1))


def train_plain(flux, z, n_val, max_epochs, patience, lr=3e-3, batch_size=32, seed=0, optimizer="adam"):
    """The training procedure of figure 3, step by step. The first ``n_val`` spectra are the validation set.
    Returns (network with the best weights, history, (mean, std) of the training targets)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(flux)[:, None, :]                     # (n, channels = 1, pixels)
    z_mean, z_std = z[n_val:].mean(), z[n_val:].std()
    y = torch.from_numpy(((z - z_mean) / z_std).astype(np.float32))   # standardised targets
    x_val, y_val, x_tr, y_tr = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    net = he_uniform_(toy_network())                            # 1. initialise (He-uniform)
    if optimizer == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=lr)
    mse = nn.MSELoss()
    history = {"epoch": [], "train_loss": [], "val_loss": []}
    best, best_state, waited = float("inf"), {k: v.clone() for k, v in net.state_dict().items()}, 0
    for epoch in range(max_epochs):
        net.train()
        order = torch.randperm(len(x_tr))
        losses = []
        for i in range(0, len(order), batch_size):
            batch = order[i:i + batch_size]
            pred = net(x_tr[batch])[:, 0]                       # 2. forward pass
            loss = mse(pred, y_tr[batch])                       # 3. loss
            opt.zero_grad()
            loss.backward()                                     # 4. backpropagation
            opt.step()                                          # 5. the Adam step
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            val_loss = mse(net(x_val)[:, 0], y_val).item()
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(val_loss)
        if not np.isfinite(val_loss):
            break                                               # diverged: the steps were too large
        if val_loss < best:                                     # 6. the convergence test
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    return net, {k: np.array(v) for k, v in history.items()}, (z_mean, z_std)


t0 = time.time()
net, hist, (z_mean, z_std) = train_plain(flux, z, n_val, max_epochs=12 if QUICK else 80, patience=5)
best_epoch = int(np.argmin(hist["val_loss"]))
with torch.no_grad():
    z_pred = net(torch.from_numpy(flux[:n_val])[:, None, :])[:, 0].numpy() * z_std + z_mean
print(f"{len(hist['epoch'])} epochs in {time.time() - t0:.1f} s; best epoch {best_epoch + 1}; "
      f"validation RMS error in z: {np.sqrt(np.mean((z_pred - z[:n_val]) ** 2)):.4f}")

# %%
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [0.75, 1.3]})
steps_text = ["initialise\n(He-uniform)", "forward pass", "loss", "backpropagation", "Adam step",
              "converged?\n(validation loss)"]
ys = np.linspace(0.92, 0.08, len(steps_text))
for i, (text, yy) in enumerate(zip(steps_text, ys)):
    ax0.text(0.35, yy, text, ha="center", va="center", fontsize=9,
             bbox=dict(boxstyle="round", fc="tab:orange" if i == len(ys) - 1 else "lavender", ec="0.4"))
    if i:
        ax0.annotate("", (0.35, yy + 0.06), (0.35, ys[i - 1] - 0.06), arrowprops=dict(arrowstyle="->"))
ax0.annotate("", (0.55, ys[1]), (0.55, ys[-1]), arrowprops=dict(arrowstyle="->", connectionstyle="arc3,rad=0.6"))
ax0.text(0.78, 0.5, "no: next\nbatch / epoch", ha="center", va="center", fontsize=8)
ax0.text(0.35, -0.04, "yes: stop, keep the best weights", ha="center", fontsize=8, color="tab:orange")
ax0.set_xlim(0, 1)
ax0.set_ylim(-0.08, 1)
ax0.axis("off")
ax1.plot(hist["epoch"] + 1, hist["train_loss"], "o-", ms=3, label="training loss")
ax1.plot(hist["epoch"] + 1, hist["val_loss"], "o-", ms=3, label="validation loss")
ax1.axvline(best_epoch + 1, color="0.5", ls=":", label=f"best epoch ({best_epoch + 1})")
ax1.axvspan(best_epoch + 1, hist["epoch"][-1] + 1, color="0.9", label="patience: no improvement")
ax1.set_yscale("log")
ax1.set_xlabel("epoch")
ax1.set_ylabel("mean squared error (standardised z)")
ax1.legend(fontsize=8)
fig.suptitle("Figure 3: the training procedure, and the learning curves it produces")
fig.tight_layout()
fig.savefig(FIGURES / "fig3_training.png", dpi=110)
plt.show()

# %% [markdown]
# **What to look at.** Both losses fall quickly, then flatten. The validation loss is what the convergence test
# watches: the training loss keeps falling as the network starts to memorise its training examples, while the
# validation loss stops improving. The shaded epochs are the `patience` the test waits before it gives up; the
# weights kept are those of the best epoch, not the last.

# %% [markdown]
# ## 4. The same problem with astrocnn's trainer
#
# astrocnn trains on *prepared sets*: HDF5 files of spectra on a wavelength grid with their labels
# (`astrocnn.spectra.SpectraSet`). We write our toy spectra into one, on their own 256-pixel grid, and ask for the
# same network: `model` settings give the kernels, channels, pooling and dense layers, and the redshift task with
# the paper's MSE head (`task.head = "mse"`) gives the one output and the squared-error loss, on a standardised
# target as above (astrocnn's target is $\log(1+z)$, which makes an error in it a velocity error at any redshift).
# `classes: None` means every spectrum with a redshift is used (by default the redshift task takes quasars only).

# %%
toy_set = WORK / "toy.h5"
with SpectraWriter(toy_set, TOY_GRID, source="tutorial toy spectra", expected_rows=n_toy) as writer:
    for i in range(n_toy):
        writer.append(Prepared(flux=flux[i], ivar=np.ones(TOY_GRID.n, np.float32), coverage=1.0, snr=2.0,
                               mean=0.0, std=1.0), id=f"toy-{i}", z=float(z[i]), cls=None)

config = default_config(
    "redshift",
    task={"head": "mse", "classes": None},
    model={"length": TOY_GRID.n, "kernels": [15, 7], "channels": [8, 16], "pools": [4, 4], "dense": [32]},
    data={"num_workers": 0, "test_fraction": 0.1, "val_fraction": 0.15},
    train={"max_epochs": 6 if QUICK else 100, "patience": 5, "lr": 3e-3, "batch_size": 32, "schedule": "constant",
           "threads": 1, "progress_bar": False, "seed": 0},
)
t0 = time.time()
result = train("redshift", toy_set, WORK / "toy_run", config)
print(f"{result.epochs} epochs in {time.time() - t0:.1f} s; best epoch {result.best_epoch + 1}; "
      f"{result.n_parameters} parameters")

# %% [markdown]
# One call did all of section 3, and more. What the trainer adds:
#
# * **The split.** The rows were split (seeded) into training, validation and *test* rows. The test rows are
#   scored once, at the end, with the best weights: a number that early stopping has not seen.
# * **Early stopping** is the paper's convergence rule (`train.patience`), and the best weights are kept.
# * **A run folder** with everything needed to use or reproduce the run:

# %%
for f in sorted((WORK / "toy_run").iterdir()):
    print(f"{f.name:24s} {f.stat().st_size:>9,d} bytes")

# %% [markdown]
# `config.yaml` is everything that built the run; `best.safetensors` and `last.safetensors` are the weights
# (tensors only: loading them runs no code), `history.csv` has one row per epoch, `metrics.json` the test scores.
# The history, and the learning curves astrocnn draws from it:

# %%
history = read_history(WORK / "toy_run")
print("columns:", ", ".join(history))
plot_loss_curves(history, WORK / "toy_loss.png")
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(history["epoch"] + 1, history["train_loss"], "o-", ms=3, label="training")
ax.plot(history["epoch"] + 1, history["val_loss"], "o-", ms=3, label="validation")
ax.axvline(result.best_epoch + 1, color="0.5", ls=":", label="best epoch")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("loss (on standardised log(1+z))")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# * **Metrics.** For redshifts these are the paper's accuracy, the fraction of test spectra with
#   $|c\,\Delta z/(1+z)| < 6000$ km/s, and more (`median_abs_dv_kms`, `nmad`, `bias`). A toy pixel is ~1000
#   km/s wide, so expect errors of a few hundred km/s.

# %%
m = result.metrics
print(f"test spectra: {m['n']}")
print(f"accuracy (|dv| < 6000 km/s): {m['frac_dv_lt_6000']:.4f}")
print(f"median |dv|: {m['median_abs_dv_kms']:.0f} km/s")

# %% [markdown]
# * **Loading a run** gives the network back, with its task (which knows how to turn outputs into redshifts)
#   and configuration:

# %%
network, task, run_config = load_run(WORK / "toy_run")
with torch.no_grad():
    out = task.decode(network(torch.from_numpy(flux[:3])[:, None, :]))
print("predicted z:", out["z"].numpy().round(4), " true z:", z[:3].round(4))

# %% [markdown]
# * **Resuming a killed run.** Long trainings get killed: a cluster job runs out of time, a laptop sleeps. At the
#   end of every epoch astrocnn saves the whole training state (weights, Adam's moments, the random generators,
#   early stopping's counters), so a killed run continues where it stopped and ends *exactly* as an
#   uninterrupted run would.
#
#   We start the same training from the command line (`astrocnn train`), kill it (`kill -9`) once it has
#   finished an epoch, and continue it with `resume=True` (`--resume` on the command line):

# %%
settings = WORK / "toy_settings.yaml"
config.save(settings)
killed = WORK / "toy_killed"
proc = subprocess.Popen([sys.executable, "-m", "astrocnn", "train", "redshift", "--data", str(toy_set),
                         "--out", str(killed), "--config", str(settings)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
epochs_done = 0
while proc.poll() is None:
    if (killed / "resume.json").exists():     # the training state of a finished epoch is on disk
        epochs_done = len((killed / "history.csv").read_text().splitlines()) - 1
        if epochs_done >= 2:
            proc.kill()                        # SIGKILL: no chance to clean up
            break
    time.sleep(0.02)
proc.wait()
print(f"killed when history.csv held {epochs_done} epochs; the folder holds:",
      ", ".join(sorted(p.name for p in killed.iterdir())))

resumed = train("redshift", toy_set, killed, config, resume=True)
summary = json.loads((killed / "metrics.json").read_text())["summary"]
same = (np.array_equal(read_history(killed)["val_loss"], history["val_loss"])
        and all(torch.equal(a, b) for a, b in zip(load_run(killed)[0].state_dict().values(),
                                                   network.state_dict().values())))
print(f"the resumed run went on from its last complete saved state, after epoch "
      f"{summary.get('resumed_after_epoch', -1) + 1}; {resumed.epochs} epochs in all, best epoch {resumed.best_epoch + 1}")
print("identical to the uninterrupted run (history and best weights):", same)

# %% [markdown]
# The saved state is written under a hidden temporary name and renamed when complete; a kill in the middle of
# writing one (a `.partial` file in the listing) loses only that epoch, and the run continues from the last complete
# state. On the command line the same is `astrocnn train redshift --data toy.h5 --out DIR --config settings.yaml`,
# and after a kill the same command with `--resume`.
#
# ## What's next
#
# Notebook 2 trains the paper's network on (simulated and real) quasar spectra of 4618 pixels; notebook 3 turns it
# into a quasar/galaxy classifier.
#
# ## Exercises
#
# 1. **The learning rate.** In section 2, find the largest learning rate for which gradient descent still
#    converges. (Hint: the curvature of the loss along its steepest direction is the largest eigenvalue of the
#    Hessian $\partial^2 L / \partial(w, b)^2$; theory says the limit is $2/\lambda_\mathrm{max}$.) What do the
#    paths look like just above it?
# 2. **Adam against plain gradient descent.** Train the toy network of section 3 with stochastic gradient descent
#    (`optimizer="sgd"` in `train_plain`) at a few learning rates. How many epochs does it need, and where does
#    it end, compared with Adam?
# 3. **Patience.** Train the toy set with astrocnn's trainer with `patience` 1 and 10. How do the number of
#    epochs, the best epoch and the test accuracy change? Why is a patience of 1 risky?
#
# Solutions: `solutions/01_basics_solutions.ipynb`.
