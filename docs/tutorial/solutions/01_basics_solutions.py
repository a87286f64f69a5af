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
# # Solutions to the exercises of notebook 1 (basics)
#
# Each solution repeats what it needs from `01_basics.ipynb`, so this notebook runs on its own. Try the exercises
# before reading on.

# %%
import logging
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn

from astrocnn.core.config import default_config
from astrocnn.models import he_uniform_
from astrocnn.spectra import LogLambdaGrid, Prepared, SpectraWriter
from astrocnn.train import train

QUICK = os.environ.get("ASTROCNN_TUTORIAL_QUICK", "") not in ("", "0")
WORK = Path(os.environ.get("ASTROCNN_TUTORIAL_WORK") or tempfile.mkdtemp(prefix="astrocnn-tutorial-"))
WORK.mkdir(parents=True, exist_ok=True)
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
torch.set_num_threads(1)
print("quick mode" if QUICK else "full mode")

# %% [markdown]
# ## Exercise 1: the largest learning rate
#
# For a quadratic loss, one gradient-descent step multiplies the distance to the minimum, along each eigenvector of
# the Hessian $H$, by $(1 - \eta\lambda)$. The steps shrink only if $|1 - \eta\lambda| < 1$ for every eigenvalue,
# i.e. $\eta < 2/\lambda_\mathrm{max}$. For $L(w, b) = \overline{(w d + b - v)^2}$ the Hessian is
# $H = 2\begin{pmatrix}\overline{d^2} & \bar d\\ \bar d & 1\end{pmatrix}$, the same everywhere.

# %%
rng = np.random.default_rng(1)
d = rng.uniform(0.1, 1.0, 60)
v = 7.0 * d + rng.normal(0, 0.35, d.size)


def loss(w, b):
    r = np.asarray(w, float)[..., None] * d + np.asarray(b, float)[..., None] - v
    return np.mean(r**2, axis=-1)


def gradient(w, b):
    r = w * d + b - v
    return np.array([2 * np.mean(r * d), 2 * np.mean(r)])


def descend(start, lr, steps):
    path = [np.array(start, float)]
    for _ in range(steps):
        path.append(path[-1] - lr * gradient(*path[-1]))
    return np.array(path)


H = 2 * np.array([[np.mean(d**2), np.mean(d)], [np.mean(d), 1.0]])
eigenvalues = np.linalg.eigvalsh(H)
lr_max = 2 / eigenvalues.max()
print(f"Hessian eigenvalues {eigenvalues.round(3)}; largest stable learning rate 2 / lambda_max = {lr_max:.4f}")

fig, ax = plt.subplots(figsize=(7, 3.8))
for factor, colour in ((0.9, "tab:blue"), (0.99, "tab:orange"), (1.01, "tab:red")):
    path = descend((1.0, 5.0), factor * lr_max, 200)
    ax.plot(loss(path[:, 0], path[:, 1]), color=colour, label=f"learning rate {factor:.2f} x 2/lambda_max")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("loss")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Just below the limit the loss still falls, slowly, while the parameters jump from one side of the valley to the
# other; just above it each jump is larger than the last and the loss grows without bound. The *small* eigenvalue
# sets how slowly the valley floor is followed: with $\eta < 2/\lambda_\mathrm{max}$ the slow direction shrinks by
# only $1 - 2\lambda_\mathrm{min}/\lambda_\mathrm{max}$ per step. That ratio, the *condition number*, is why plain
# gradient descent is slow on long valleys, and why rescaling the inputs (or an optimiser like Adam) helps.

# %% [markdown]
# ## Exercise 2: Adam against stochastic gradient descent
#
# The toy problem and the training function of notebook 1, with `optimizer="sgd"`:

# %%
TOY_GRID = LogLambdaGrid(4000.0, 8000.0, 256)
REST = 5008.24


def toy_spectra(n, seed):
    r = np.random.default_rng(seed)
    z = r.uniform(0.0, 0.5, n)
    wave = TOY_GRID.wave
    line = r.uniform(2.0, 5.0, (n, 1)) * np.exp(-0.5 * ((wave - REST * (1 + z[:, None])) / 40.0) ** 2)
    flux = 1 + r.normal(0, 0.5, (n, 1)) * (wave / 6000 - 1) + line + r.normal(0, 0.3, (n, wave.size))
    flux = (flux - flux.mean(axis=1, keepdims=True)) / flux.std(axis=1, keepdims=True)
    return flux.astype(np.float32), z


def toy_network():
    body = nn.Sequential(nn.Conv1d(1, 8, 15), nn.ReLU(), nn.MaxPool1d(4),
                         nn.Conv1d(8, 16, 7), nn.ReLU(), nn.MaxPool1d(4), nn.Flatten())
    n_features = body(torch.zeros(1, 1, TOY_GRID.n)).shape[1]
    return nn.Sequential(body, nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 1))


def train_plain(flux, z, n_val, max_epochs, patience, lr=3e-3, batch_size=32, seed=0, optimizer="adam"):
    torch.manual_seed(seed)
    x = torch.from_numpy(flux)[:, None, :]
    z_mean, z_std = z[n_val:].mean(), z[n_val:].std()
    y = torch.from_numpy(((z - z_mean) / z_std).astype(np.float32))
    x_val, y_val, x_tr, y_tr = x[:n_val], y[:n_val], x[n_val:], y[n_val:]
    net = he_uniform_(toy_network())
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
            loss_ = mse(net(x_tr[batch])[:, 0], y_tr[batch])
            opt.zero_grad()
            loss_.backward()
            opt.step()
            losses.append(loss_.item())
        net.eval()
        with torch.no_grad():
            val_loss = mse(net(x_val)[:, 0], y_val).item()
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["val_loss"].append(val_loss)
        if not np.isfinite(val_loss):
            break                                               # diverged: the steps were too large
        if val_loss < best:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    net.load_state_dict(best_state)
    return net, {k: np.array(v) for k, v in history.items()}, (z_mean, z_std)


n_toy = 1200 if QUICK else 4000
flux, z = toy_spectra(n_toy, seed=2)
epochs = 10 if QUICK else 60
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, lr, colour in (("adam", 3e-3, "k"), ("sgd", 3e-3, "tab:blue"), ("sgd", 1e-2, "tab:green"),
                         ("sgd", 3e-2, "tab:orange"), ("sgd", 1e-1, "tab:red")):
    _, hist, _ = train_plain(flux, z, n_toy // 5, max_epochs=epochs, patience=epochs, lr=lr, optimizer=name)
    finite = np.isfinite(hist["val_loss"])
    ax.plot(hist["epoch"][finite] + 1, hist["val_loss"][finite], "o-", ms=2, color=colour, label=f"{name}, lr {lr:g}")
    if finite.all():
        print(f"{name:4s} lr {lr:<6g} best validation loss {hist['val_loss'].min():.4f} at epoch "
              f"{hist['val_loss'].argmin() + 1} of {len(hist['epoch'])}")
    else:
        print(f"{name:4s} lr {lr:<6g} diverged in epoch {len(hist['epoch'])} (the loss became infinite)")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("validation loss (standardised z)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# Compare the curves with Adam's (black). At the same learning rate SGD learns, but far more slowly: every weight
# moves by the same multiple of its gradient, and the gradients of the first convolution are much smaller than those
# of the last layer. Raising the rate speeds it up only to a point: somewhat larger, the steps knock the network into
# a state where it predicts the mean for every spectrum (a standardised loss of ~1: its ReLUs have died); larger
# still, the loss diverges (exercise 1 again, in thousands of dimensions). Adam divides each parameter's step by the
# running size of its own gradient, so one learning rate suits every layer: this is why it is the default choice
# (and the paper's).

# %% [markdown]
# ## Exercise 3: patience
#
# The toy set of notebook 1, trained with astrocnn's trainer with a patience of 1 and of 10:

# %%
toy_set = WORK / "toy_patience.h5"
with SpectraWriter(toy_set, TOY_GRID, source="tutorial toy spectra", expected_rows=n_toy) as writer:
    for i in range(n_toy):
        writer.append(Prepared(flux=flux[i], ivar=np.ones(TOY_GRID.n, np.float32), coverage=1.0, snr=2.0,
                               mean=0.0, std=1.0), id=f"toy-{i}", z=float(z[i]), cls=None)
for patience in (1, 10):
    config = default_config(
        "redshift", task={"head": "mse", "classes": None},
        model={"length": TOY_GRID.n, "kernels": [15, 7], "channels": [8, 16], "pools": [4, 4], "dense": [32]},
        data={"num_workers": 0, "val_fraction": 0.15},
        train={"max_epochs": 8 if QUICK else 80, "patience": patience, "lr": 3e-3, "batch_size": 32,
               "schedule": "constant", "threads": 1, "progress_bar": False, "seed": 0})
    r = train("redshift", toy_set, WORK / f"toy_patience_{patience}", config)
    print(f"patience {patience:2d}: {r.epochs} epochs, best epoch {r.best_epoch + 1}, best validation loss "
          f"{r.best_val_loss:.4f}, test accuracy (|dv| < 6000 km/s) {r.metrics['frac_dv_lt_6000']:.3f}")

# %% [markdown]
# With a patience of 1 training stops at the first epoch that is not better than the one before, and validation
# losses are noisy: a single unlucky epoch ends the run long before the network has converged. A larger patience
# costs a few epochs past the best one (their weights are discarded: the best are kept), and finds a better
# minimum. The paper's convergence test is exactly this rule; astrocnn's default patience is 5.
