"""Throughput of the paper's network on a GPU (pure torch; no Lightning or data needed).

python3 scripts/gpu_throughput.py  -> prints JSON: inference and training spectra/s, direct vs FFT conv.
"""
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import torch  # noqa: E402

from astrocnn.models.cnn import CNN, CNNConfig, Network  # noqa: E402


def bench(fft: bool, dev: str, batch_inf=1024, batch_train=256, reps=20):
    cfg = CNNConfig(fft_min_kernel=64 if fft else 10**9)
    body = CNN(cfg)
    net = Network(body, torch.nn.Linear(body.features, 500)).to(dev)
    x = torch.randn(batch_inf, 1, 4618, device=dev)
    net.eval()
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            net(x)
        torch.cuda.synchronize()
        inf = reps * batch_inf / (time.perf_counter() - t)
    net.train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    xt = torch.randn(batch_train, 1, 4618, device=dev)
    y = torch.randint(0, 500, (batch_train,), device=dev)
    for i in range(reps + 3):
        if i == 3:
            torch.cuda.synchronize()
            t = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), y)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    tr = reps * batch_train / (time.perf_counter() - t)
    return {"infer_per_s": round(inf), "train_per_s": round(tr)}


if __name__ == "__main__":
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
    for name, fft in (("direct", False), ("fft", True)):
        out[name] = bench(fft, "cuda")
    print(json.dumps(out))
