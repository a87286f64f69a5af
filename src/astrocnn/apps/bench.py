"""``astrocnn bench``: how fast this machine runs the networks, the data path and the simulators.

Applications layer.

Python API::

    from astrocnn.apps.bench import run_bench, format_table

    result = run_bench("bench.json")            # full run, a few minutes
    table = format_table(result)               # a text table for the terminal
    run_bench("bench.json", quick=True)         # under a minute: fewer repeats, smaller sets

What is measured, in one process on this machine (torch threads = all usable cores):

- the paper's spectral network (default :class:`~astrocnn.models.CNNConfig`, 1 x 4618, default binned
  redshift head) and a GW network (3 x 4096, kernels 64/32/16): inference samples/s (``inference_mode``,
  batch 256) and training samples/s (forward + backward + Adam step, batch 64), with every convolution
  direct (``fft_min_kernel`` above every kernel) and with the default FFT threshold. Each timing is the
  median of several repeats after warm-up.
- FLOPs per sample of each variant (see :func:`network_flops`), the GFLOP/s achieved, and the machine's
  float32 matrix-multiply rate (``torch.mm`` of 2048 x 2048) for comparison.
- the training data loader (:func:`astrocnn.train.loader.make_loader`) reading a temporary prepared HDF5 set;
- the spectra simulator (:func:`~astrocnn.spectra.simulate.simulate_survey`) and the GW simulator
  (:func:`~astrocnn.gw.simulate.simulate_sample`), samples/s on one core;
- ``predict`` from SDSS spec-lite FITS files (:func:`astrocnn.apps.predict.predict_inputs`) with an untrained
  run folder (the speed does not depend on the weights).

Benchmarks are noisy on a shared machine; ratios measured in one run are what to compare.
"""
from __future__ import annotations

import json
import logging
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from astrocnn.apps.predict import predict_inputs
from astrocnn.core.config import DETECT_MODEL, DataConfig, default_config
from astrocnn.core.errors import MissingDependency
from astrocnn.core.io import write_text_atomic
from astrocnn.core.parallel import default_workers
from astrocnn.gw.simulate import simulate_sample
from astrocnn.models.cnn import CNN, CNNConfig, Network, he_uniform_
from astrocnn.models.fftconv import fast_size
from astrocnn.models.heads import ScalarHead
from astrocnn.spectra.dataset import SpectraSet, SpectraWriter
from astrocnn.spectra.prepare import simulate_prepared
from astrocnn.spectra.preprocess import Prepared, PreprocessConfig
from astrocnn.spectra.simulate import simulate_survey
from astrocnn.spectra.spectrum import CLASS_NAMES
from astrocnn.tasks import make_task
from astrocnn.train import build_network, save_weights
from astrocnn.train.loader import make_loader
from astrocnn.train.runs import CONFIG_FILE

log = logging.getLogger(__name__)

#: the GW network benchmarked: the detect task's default (3 detectors x 4096 samples), FFT threshold set per run
GW_MODEL = {k: v for k, v in DETECT_MODEL.items() if k != "fft_min_kernel"}


def fft_flops(n: int) -> float:
    """FLOPs of one real FFT of length ``n``: ``2.5 n log2 n``, half of a complex FFT's ``5 n log2 n``."""
    return 2.5 * n * math.log2(n) if n > 1 else 0.0


@dataclass
class BenchSizes:
    """How much work each measurement does (``quick`` and full runs differ only here)."""
    infer_batch: int = 256
    train_batch: int = 64
    warmup: int = 2
    repeats: int = 5
    matmul_n: int = 2048
    loader_rows: int = 2000
    loader_epochs: int = 3
    fits_files: int = 300
    sim_spectra: int = 500
    sim_gw: int = 300
    threads: int = 0  # torch threads; 0 = every usable core

    @classmethod
    def quick(cls) -> "BenchSizes":
        return cls(infer_batch=64, train_batch=16, warmup=1, repeats=3, matmul_n=1024, loader_rows=512,
                   loader_epochs=2, fits_files=32, sim_spectra=100, sim_gw=50)


# ----------------------------------------------------------------------------------------------------------
# FLOP counts


def conv_layers(config: CNNConfig) -> list[dict[str, int]]:
    """Shapes of the convolution layers: ``cin, cout, k, lin`` (after padding), ``lout``, ``pool``."""
    layers = []
    c_in, n = config.in_channels, config.length
    for k, c, p in zip(config.kernels, config.channels, config.pools):
        lin = n + (k - 1 if config.padding == "same" else 0)
        lout = lin - k + 1
        layers.append(dict(cin=c_in, cout=c, k=k, lin=lin, lout=lout, pool=p))
        c_in, n = c, lout // p
    return layers


def conv_flops(cin: int, cout: int, k: int, lout: int) -> int:
    """Direct convolution: ``2 * cin * cout * k * lout`` (one multiply and one add per kernel tap)."""
    return 2 * cin * cout * k * lout


def fft_conv_flops(cin: int, cout: int, k: int, lin: int, batch: int = 1) -> float:
    """Estimated FLOPs per sample of :func:`~astrocnn.models.fftconv.fft_conv1d` (forward).

    With ``n`` the FFT length used (``fast_size(lin)``) and ``n_f = n // 2 + 1`` bins: ``cin`` real FFTs
    of the input, ``cout`` inverse FFTs, the weights' ``cin * cout`` FFTs shared by the ``batch``, and the
    spectral products: 8 real FLOPs per complex multiply-add (6 per product when ``cin == 1``, where
    nothing is summed), each per bin.
    """
    n = fast_size(lin)
    nf = n // 2 + 1
    f = fft_flops(n)
    mix = (6 if cin == 1 else 8) * cin * cout * nf
    return cin * f + cout * f + cin * cout * f / max(1, batch) + mix


def network_flops(config: CNNConfig, head_outputs: int, *, batch: int = 1, fft: bool | None = None) -> dict[str, float]:
    """FLOPs per sample of one forward pass of ``CNN(config)`` plus a linear head with ``head_outputs`` outputs.

    Convolutions use FFT where ``config.fft_min_kernel`` says so (or everywhere/nowhere with ``fft``
    True/False). Dense layers count ``2 * in * out``; biases, ReLU and pooling are left out (under 1 %).
    ``train`` is the usual 3 x forward (gradients for inputs and for weights), except 2 x for the first
    convolution, whose input needs no gradient, plus Adam's ~12 FLOPs per parameter shared by the batch.
    """
    conv = first = 0.0
    n_params = 0
    for i, L in enumerate(conv_layers(config)):
        use_fft = fft if fft is not None else bool(config.fft_min_kernel) and L["k"] >= config.fft_min_kernel
        f = fft_conv_flops(L["cin"], L["cout"], L["k"], L["lin"], batch) if use_fft else \
            float(conv_flops(L["cin"], L["cout"], L["k"], L["lout"]))
        conv += f
        first = f if i == 0 else first
        n_params += L["cin"] * L["cout"] * L["k"] + L["cout"]
    widths = [config.channels[-1] * config.out_length(), *config.dense, head_outputs]
    dense = float(sum(2 * a * b for a, b in zip(widths[:-1], widths[1:])))
    n_params += sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    forward = conv + dense
    train = 3 * forward - first + 12.0 * n_params / max(1, batch)
    return {"conv": conv, "dense": dense, "forward": forward, "train": train}


# ----------------------------------------------------------------------------------------------------------
# timing helpers


def _median_time(fn: Callable[[], Any], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, warmup: int = 2, repeats: int = 7) -> float:
    """float32 ``torch.mm`` of two ``n x n`` matrices: GFLOP/s (``2 n^3`` FLOPs)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    t = _median_time(lambda: torch.mm(a, b), warmup, repeats)
    return 2.0 * n ** 3 / t / 1e9


def _spectral_network(fft_min_kernel: int) -> tuple[Network, Callable, Callable, int]:
    """The paper's spectral network with the default redshift head; returns (net, make_target, loss, outputs)."""
    cfg = CNNConfig(fft_min_kernel=fft_min_kernel)
    task = make_task(default_config("redshift").task)
    body = CNN(cfg)
    net = he_uniform_(Network(body, task.make_head(body.features)))
    y_hi = math.log1p(task.config.z_max)

    def target(b: int, g: torch.Generator) -> torch.Tensor:
        return torch.rand(b, generator=g) * y_hi

    heads = sum(m.out_features for m in net.head.modules() if isinstance(m, nn.Linear))
    return net, target, task.loss, heads


def _gw_network(fft_min_kernel: int) -> tuple[Network, Callable, Callable, int]:
    """The GW network (:data:`GW_MODEL`) with one logit, trained with binary cross-entropy."""
    cfg = CNNConfig(**GW_MODEL, fft_min_kernel=fft_min_kernel)
    body = CNN(cfg)
    net = he_uniform_(Network(body, ScalarHead(body.features)))

    def target(b: int, g: torch.Generator) -> torch.Tensor:
        return (torch.rand(b, generator=g) < 0.5).float()

    def loss(out, y):
        return F.binary_cross_entropy_with_logits(out, y, reduction="none")

    return net, target, loss, 1


class _Variant:
    """One network variant ready to time: an inference call and a training step on fixed random data."""
    def __init__(self, build: Callable[[int], tuple], fft_min_kernel: int, sizes: BenchSizes):
        torch.manual_seed(0)
        self.net, make_target, self.loss_fn, self.head_outputs = build(fft_min_kernel)
        self.cfg: CNNConfig = self.net.body.config
        g = torch.Generator().manual_seed(1)
        shape = (self.cfg.in_channels, self.cfg.length)
        self.sizes = sizes
        self.x_inf = torch.randn(sizes.infer_batch, *shape, generator=g)
        self.x_tr = torch.randn(sizes.train_batch, *shape, generator=g)
        self.y_tr = make_target(sizes.train_batch, g)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4)
        self.t_inf: list[float] = []
        self.t_tr: list[float] = []

    def infer(self) -> float:
        self.net.eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.net(self.x_inf)
        return time.perf_counter() - t0

    def step(self) -> float:
        self.net.train()
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        self.loss_fn(self.net(self.x_tr), self.y_tr).mean().backward()
        self.opt.step()
        return time.perf_counter() - t0

    def result(self) -> dict[str, Any]:
        cfg, sizes, heads = self.cfg, self.sizes, self.head_outputs
        infer_per_s = sizes.infer_batch / statistics.median(self.t_inf)
        train_per_s = sizes.train_batch / statistics.median(self.t_tr)
        f_inf = network_flops(cfg, heads, batch=sizes.infer_batch)
        f_tr = network_flops(cfg, heads, batch=sizes.train_batch)
        d_inf = network_flops(cfg, heads, batch=sizes.infer_batch, fft=False)
        d_tr = network_flops(cfg, heads, batch=sizes.train_batch, fft=False)
        return {
            "infer_per_s": infer_per_s,
            "train_per_s": train_per_s,
            "flops_infer": f_inf["forward"],
            "flops_train": f_tr["train"],
            "gflops_infer": f_inf["forward"] * infer_per_s / 1e9,
            "gflops_train": f_tr["train"] * train_per_s / 1e9,
            # the direct convolution's FLOPs delivered per second (what the FFT "buys")
            "effective_gflops_infer": d_inf["forward"] * infer_per_s / 1e9,
            "effective_gflops_train": d_tr["train"] * train_per_s / 1e9,
            "fft_kernels": [k for k in cfg.kernels if cfg.fft_min_kernel and k >= cfg.fft_min_kernel],
            "n_parameters": int(self.net.n_parameters()),
            # best of the repeats: the closest to an unloaded machine when others share it
            "infer_per_s_best": sizes.infer_batch / min(self.t_inf),
            "train_per_s_best": sizes.train_batch / min(self.t_tr),
            # slowest / fastest repeat: well above 1 means the machine was busy (or a stall), see the log
            "spread_infer": max(self.t_inf) / min(self.t_inf),
            "spread_train": max(self.t_tr) / min(self.t_tr),
            "infer_s": [round(t, 5) for t in self.t_inf],
            "train_s": [round(t, 5) for t in self.t_tr],
        }


def bench_pair(build: Callable[[int], tuple], sizes: BenchSizes) -> dict[str, Any]:
    """Direct and FFT variants of one network: samples/s, FLOPs and GFLOP/s of each, and FFT / direct ratios.

    The two variants are timed alternately (direct, FFT, direct, FFT, ...) so that a change in the load
    of a shared machine hits both alike; each number is the median over ``sizes.repeats``.
    """
    default = CNNConfig().fft_min_kernel
    kernels = build(default)[0].body.config.kernels
    variants = {"direct": _Variant(build, max(kernels) + 1, sizes), "fft": _Variant(build, default, sizes)}
    for v in variants.values():
        for _ in range(sizes.warmup):
            v.infer()
            v.step()
    for _ in range(max(1, sizes.repeats)):
        for v in variants.values():
            v.t_inf.append(v.infer())
    for _ in range(max(1, sizes.repeats)):
        for v in variants.values():
            v.t_tr.append(v.step())
    conv = {k: v.result() for k, v in variants.items()}
    for k, r in conv.items():
        for what in ("infer", "train"):
            if r[f"spread_{what}"] > 2.0:
                log.warning("bench: %s %s %s times vary by %.1fx between repeats (busy machine?): %s",
                            build.__name__.strip("_"), k, what, r[f"spread_{what}"], r[f"{what}_s"])
    ratio = {k: conv["fft"][f"{k}_per_s"] / conv["direct"][f"{k}_per_s"] for k in ("infer", "train")}
    ratio.update({f"{k}_best": conv["fft"][f"{k}_per_s_best"] / conv["direct"][f"{k}_per_s_best"]
                  for k in ("infer", "train")})
    return {"conv": conv, "ratio": ratio}


# ----------------------------------------------------------------------------------------------------------
# data path and simulators


def bench_simulate_spectra(n: int) -> float:
    """Spectra simulated per second on one core (:func:`simulate_survey`).

    Warm-up first: each class's first objects set up templates (~0.5 s in all), which would otherwise
    dominate a short timing (steady state is a few ms per object).
    """
    for cls in CLASS_NAMES:
        list(simulate_survey(5, 12345, classes=(cls,)))
    list(simulate_survey(20, 12346))
    t0 = time.perf_counter()
    list(simulate_survey(n, 1, start=100))
    return n / (time.perf_counter() - t0)


def bench_simulate_gw(n: int) -> float:
    """GW samples simulated per second on one core (:func:`simulate_sample`, after warm-up samples)."""
    for i in range(6):  # negatives and positives: the noise and waveform code set things up on first use
        simulate_sample(12345, i, positive_fraction=float(i % 2))
    t0 = time.perf_counter()
    for i in range(n):
        simulate_sample(1, 100 + i)
    return n / (time.perf_counter() - t0)


def _tile_set(src: Path, out: Path, rows: int) -> None:
    """A prepared set of ``rows`` rows made by repeating the rows of ``src`` (the loader's speed does not
    depend on what the spectra are, and simulating thousands would dominate the benchmark)."""
    with SpectraSet(src) as s:
        data = s.read(np.arange(len(s)), fields=("flux", "ivar"))
        z, cls, ids = s.z, s.cls, s.ids
        pre = PreprocessConfig(**json.loads(s.attrs.get("preprocess", "{}")))
        grid, names = s.grid, s.class_names
        n = len(s)
    with SpectraWriter(out, grid, preprocess=pre, source="bench", class_names=names) as w:
        for i in range(rows):
            j = i % n
            p = Prepared(flux=data["flux"][j], ivar=data["ivar"][j], coverage=1.0, snr=1.0, mean=0.0, std=1.0)
            w.append(p, id=f"{ids[j]}-{i}", z=float(z[j]), cls=int(cls[j]))


def bench_loader(path: Path, epochs: int, batch_size: int = 64) -> float:
    """Samples/s through the training data loader (default :class:`DataConfig`: its worker count, batch 64),
    median over epochs after a first (warm-up) epoch that starts the worker processes."""
    cfg = default_config("redshift")
    task = make_task(cfg.task)
    store = SpectraSet(path)
    rows = np.arange(len(store))
    loader = make_loader(store, rows, task, DataConfig(), batch_size=batch_size, train=True, seed=0)
    rates = []
    for epoch in range(epochs + 1):
        loader.sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        n = sum(int(b["x"].shape[0]) for b in loader)
        if epoch:
            rates.append(n / (time.perf_counter() - t0))
    store.close()
    return statistics.median(rates)


def _untrained_run(run_dir: Path, prepared: Path) -> None:
    """A run folder ``predict`` accepts: default redshift configuration, fresh weights, the set's grid."""
    cfg = default_config("redshift")
    with SpectraSet(prepared) as s:
        cfg.input = {"grid": json.loads(s.grid.to_json()), "length": int(s.grid.n),
                     "preprocess": json.loads(s.attrs.get("preprocess", "{}")), "class_names": list(s.class_names)}
        cfg.model.length = int(s.grid.n)
    torch.manual_seed(0)
    net = build_network(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / CONFIG_FILE)
    save_weights(net, cfg, run_dir / "best.safetensors")


def bench_predict(run_dir: Path, files: list[Path], out_csv: Path) -> float:
    """Spectrum files per second through :func:`predict_inputs` (read, preprocess, network, CSV)."""
    t0 = time.perf_counter()
    _, rows = predict_inputs(run_dir, files, out_csv)
    dt = time.perf_counter() - t0
    bad = sum(1 for r in rows if r[-1])
    if bad:
        log.warning("predict: %d of %d files could not be used", bad, len(rows))
    return len(rows) / dt


# ----------------------------------------------------------------------------------------------------------
# the whole benchmark


def machine_info() -> dict[str, Any]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": cores, "cpu": cpu, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "torch_threads": torch.get_num_threads()}


def run_bench(out_json: str | os.PathLike | None, quick: bool = False, *, sizes: BenchSizes | None = None) -> dict[str, Any]:
    """Run every measurement (see the module docstring) and write the result as JSON to ``out_json``.

    quick : fewer repeats and smaller sets (well under a minute); the full run takes a few minutes.
    sizes : override the amount of work (for tests).
    Returns the result dict (the JSON's content).
    """
    sizes = sizes or (BenchSizes.quick() if quick else BenchSizes())
    t_start = time.perf_counter()
    threads_before = torch.get_num_threads()
    info = machine_info()
    torch.set_num_threads(sizes.threads or info["cores"])
    info["torch_threads"] = torch.get_num_threads()
    result: dict[str, Any] = {"machine": info, "quick": bool(quick), "sizes": asdict(sizes)}
    sections: dict[str, float] = {}
    mark = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        sections[name] = round(now - mark[0], 2)
        mark[0] = now

    try:
        log.info("bench: matrix multiply")
        result["matmul_gflops"] = matmul_gflops(sizes.matmul_n, sizes.warmup, sizes.repeats)
        lap("matmul")
        log.info("bench: spectral network")
        spec = bench_pair(_spectral_network, sizes)
        result["conv"], result["ratio"] = spec["conv"], spec["ratio"]
        lap("spectral_network")
        log.info("bench: GW network")
        result["gw"] = bench_pair(_gw_network, sizes)
        lap("gw_network")
        result["networks"] = {"spectra": CNNConfig().to_dict(), "gw": CNNConfig(**GW_MODEL).to_dict()}

        log.info("bench: simulators")
        result["simulate_spectra_per_s"] = bench_simulate_spectra(sizes.sim_spectra)
        try:
            result["simulate_gw_per_s"] = bench_simulate_gw(sizes.sim_gw)
        except MissingDependency as exc:  # lalsuite is optional
            log.warning("bench: GW simulation skipped (%s)", exc)
            result["simulate_gw_per_s"] = None
        lap("simulators")

        with tempfile.TemporaryDirectory(prefix="astrocnn-bench-") as tmp:
            tmp = Path(tmp)

            log.info("bench: simulating %d spectra as FITS files", sizes.fits_files)
            t0 = time.perf_counter()
            simulate_prepared(sizes.fits_files, 7, tmp / "small.h5", sdss_dir=tmp / "sdss")
            result["simulate_prepared_fits_per_s"] = sizes.fits_files / (time.perf_counter() - t0)
            result["simulate_prepared_workers"] = default_workers()
            lap("simulate_fits")

            log.info("bench: data loader over %d rows", sizes.loader_rows)
            _tile_set(tmp / "small.h5", tmp / "loader.h5", sizes.loader_rows)
            result["loader_per_s"] = bench_loader(tmp / "loader.h5", sizes.loader_epochs, sizes.train_batch)
            lap("loader")

            log.info("bench: predict from FITS files")
            _untrained_run(tmp / "run", tmp / "small.h5")
            files = sorted((tmp / "sdss").glob("spec-*.fits"))
            result["predict_fits_per_s"] = bench_predict(tmp / "run", files, tmp / "pred.csv")
            result["predict_files"] = len(files)
            lap("predict")
    finally:
        torch.set_num_threads(threads_before)
    result["section_s"] = sections
    result["wall_s"] = time.perf_counter() - t_start
    if out_json is not None:
        write_text_atomic(out_json, json.dumps(result, indent=2) + "\n")
    log.info("bench: done in %.0f s", result["wall_s"])
    return result


# ----------------------------------------------------------------------------------------------------------
# the table


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    v = float(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits:
        return f"{v:,.0f}"
    return f"{v:.{max(0, digits - 1 - mag)}f}"


def format_table(result: Mapping[str, Any]) -> str:
    """A plain-text summary of a :func:`run_bench` result."""
    m = result.get("machine", {})
    lines = [
        f"astrocnn bench{' (quick)' if result.get('quick') else ''}: {m.get('cores')} cores ({m.get('cpu', '?')}), "
        f"torch {m.get('torch')} with {m.get('torch_threads')} threads",
        f"float32 matmul {result.get('matmul_gflops') and _num(result['matmul_gflops'])} GFLOP/s",
        "",
        f"{'network':<10}{'conv':<8}{'infer/s':>10}{'train/s':>10}{'MFLOP inf':>11}{'MFLOP trn':>11}"
        f"{'GFLOP/s inf':>13}{'GFLOP/s trn':>13}{'eff. GF/s trn':>15}",
    ]
    for name, block in (("spectra", {"conv": result.get("conv"), "ratio": result.get("ratio")}), ("gw", result.get("gw"))):
        if not block or not block.get("conv"):
            continue
        for kind in ("direct", "fft"):
            r = block["conv"][kind]
            lines.append(
                f"{name:<10}{kind:<8}{_num(r['infer_per_s']):>10}{_num(r['train_per_s']):>10}"
                f"{_num(r['flops_infer'] / 1e6):>11}{_num(r['flops_train'] / 1e6):>11}"
                f"{_num(r['gflops_infer']):>13}{_num(r['gflops_train']):>13}{_num(r['effective_gflops_train']):>15}"
            )
        ra = block["ratio"]
        lines.append(f"{name:<10}{'fft/dir':<8}{_num(ra['infer']) + 'x':>10}{_num(ra['train']) + 'x':>10}"
                     "   (medians)")
        if "infer_best" in ra:
            lines.append(f"{name:<10}{'fft/dir':<8}{_num(ra['infer_best']) + 'x':>10}{_num(ra['train_best']) + 'x':>10}"
                         "   (best of the repeats)")
    lines += [
        "",
        f"data loader (HDF5, training loader)  {_num(result.get('loader_per_s'))} spectra/s",
        f"simulate spectra (1 core)            {_num(result.get('simulate_spectra_per_s'))} spectra/s",
        f"simulate GW samples (1 core)         {_num(result.get('simulate_gw_per_s'))} samples/s",
        f"simulate + write FITS ({result.get('simulate_prepared_workers', '?')} workers)     "
        f"{_num(result.get('simulate_prepared_fits_per_s'))} spectra/s",
        f"predict from FITS files              {_num(result.get('predict_fits_per_s'))} files/s",
        f"wall time {_num(result.get('wall_s'))} s",
    ]
    return "\n".join(lines)
