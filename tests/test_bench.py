"""astrocnn.apps.bench: the result has every number it promises, and the FLOP formulas are right.

Benchmarks are not tests: nothing here asserts a speed.
"""
from __future__ import annotations

import importlib.util
import json
import math

from astrocnn.apps.bench import BenchSizes, conv_flops, conv_layers, format_table, network_flops, run_bench
from astrocnn.models.cnn import CNNConfig


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def test_direct_conv_flops_by_hand():
    # the paper's first layer: 1 -> 16 channels, kernel 500 over 4618 pixels ('valid': 4119 outputs)
    assert conv_flops(1, 16, 500, 4119) == 2 * 1 * 16 * 500 * 4119 == 65_904_000
    cfg = CNNConfig(fft_min_kernel=0)
    shapes = [(L["cin"], L["cout"], L["k"], L["lout"]) for L in conv_layers(cfg)]
    # 4618 -> 4119 (pool 4: 1029) -> 830 (pool 4: 207) -> 198 (pool 2: 99)
    assert shapes == [(1, 16, 500, 4119), (16, 32, 200, 830), (32, 32, 10, 198)]
    f = network_flops(cfg, head_outputs=1)
    assert f["conv"] == 2 * (16 * 500 * 4119 + 16 * 32 * 200 * 830 + 32 * 32 * 10 * 198) == 239_943_040
    assert f["dense"] == 2 * (32 * 99 * 256 + 256 * 1)
    assert f["forward"] == f["conv"] + f["dense"]
    # the FFT variant of the same network does far less arithmetic for the long kernels
    assert network_flops(CNNConfig(), head_outputs=1, batch=64)["conv"] < f["conv"] / 5


def test_run_bench_tiny(tmp_path):
    sizes = BenchSizes(infer_batch=4, train_batch=4, warmup=0, repeats=1, matmul_n=128, loader_rows=32,
                       loader_epochs=1, fits_files=4, sim_spectra=1, sim_gw=1, threads=1)
    out = tmp_path / "b.json"
    result = run_bench(out, sizes=sizes)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    for block in (result, result["gw"]):
        for kind in ("direct", "fft"):
            r = block["conv"][kind]
            for key in ("infer_per_s", "train_per_s", "flops_infer", "flops_train", "gflops_infer", "gflops_train"):
                assert _positive(r[key]), (kind, key, r[key])
        assert _positive(block["ratio"]["infer"]) and _positive(block["ratio"]["train"])
    assert result["conv"]["direct"]["fft_kernels"] == [] and result["conv"]["fft"]["fft_kernels"] == [500, 200]
    for key in ("loader_per_s", "simulate_spectra_per_s", "predict_fits_per_s", "matmul_gflops"):
        assert _positive(result[key]), (key, result[key])
    if importlib.util.find_spec("lalsimulation") is not None:
        assert _positive(result["simulate_gw_per_s"])
    m = result["machine"]
    assert m["cores"] >= 1 and m["torch_threads"] == 1 and m["torch"]
    table = format_table(result)
    assert "spectra" in table and "fft/dir" in table and "predict" in table
