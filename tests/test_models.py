"""The network, its initialisation, FFT convolution and the task heads."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from astrocnn.core.config import TaskConfig
from astrocnn.core.metrics import dv_kms
from astrocnn.models import CNN, CNNConfig, FFTConv1d, Network, fft_conv1d, he_uniform_
from astrocnn.tasks import make_task

STEPS = {"bins": 250, "mse": 600}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks gain nothing from a second thread, and on a busy machine OpenMP threads waiting for
    each other made these tests 50x slower; one thread keeps them a few seconds anywhere."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
TINY = dict(kernels=[9, 5, 3], channels=[8, 8, 8], pools=[2, 2, 2], dense=[32])


# -- FFT convolution ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "c_in,c_out,k,length,stride,padding",
    [
        (1, 4, 500, 1200, 1, 0),  # the paper's first kernel
        (3, 5, 200, 700, 1, 0),
        (2, 3, 7, 40, 2, 3),  # stride and symmetric padding
        (2, 3, 6, 31, 1, "same"),  # even kernel: nn.Conv1d pads asymmetrically
        (2, 3, 5, 31, 1, "valid"),
    ],
)
def test_fft_conv_equals_conv1d_outputs_and_gradients(c_in, c_out, k, length, stride, padding):
    torch.manual_seed(0)
    conv = nn.Conv1d(c_in, c_out, k, stride=stride, padding=padding, dtype=torch.float64)
    fft = FFTConv1d.from_conv(conv)
    x = torch.randn(3, c_in, length, dtype=torch.float64, requires_grad=True)
    y_ref, y = conv(x), fft(x)
    assert y.shape == y_ref.shape
    # float64 FFT round-off: ~1e-15 relative; 1e-10 leaves a wide margin and still catches any index slip
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(y)
    grads_ref = torch.autograd.grad(y_ref, [x, conv.weight, conv.bias], g)
    grads = torch.autograd.grad(y, [x, fft.weight, fft.bias], g)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_fft_conv_float32_and_state_dict_interchange():
    torch.manual_seed(1)
    conv = nn.Conv1d(4, 6, 200)
    fft = FFTConv1d(4, 6, 200)
    assert set(fft.state_dict()) == set(conv.state_dict())
    fft.load_state_dict(conv.state_dict())  # same layout: loads without remapping
    x = torch.randn(2, 4, 1000)
    # float32: errors of a few 1e-6 relative to the output scale from summing 800 products either way
    torch.testing.assert_close(fft(x), conv(x), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fft_conv1d(x, conv.weight, conv.bias), conv(x), rtol=1e-4, atol=1e-4)


def test_cnn_with_and_without_fft_gives_same_outputs():
    torch.manual_seed(2)
    cfg = CNNConfig(length=1500, kernels=[500, 200, 10], channels=[4, 4, 4], pools=[2, 2, 2], dense=[16])
    fast, direct = CNN(cfg), CNN(CNNConfig(**{**cfg.to_dict(), "fft_min_kernel": 0}))
    assert isinstance(fast.blocks[0].conv, FFTConv1d) and not isinstance(direct.blocks[0].conv, FFTConv1d)
    direct.load_state_dict(fast.state_dict())
    x = torch.randn(3, 1, 1500)
    torch.testing.assert_close(fast(x), direct(x), rtol=1e-4, atol=1e-5)


# -- the network --------------------------------------------------------------------------------------------


def test_default_config_is_the_papers_layout():
    cfg = CNNConfig()
    assert (cfg.in_channels, cfg.length, cfg.kernels) == (1, 4618, [500, 200, 10])
    # valid convolutions, pooling by 4, 4, 2: 4618 -> 4119 -> 1029 -> 830 -> 207 -> 198 -> 99
    assert cfg.out_length() == 99
    net = CNN(cfg)
    assert net(torch.zeros(2, 1, 4618)).shape == (2, 256)
    # the paper's pooling is one setting away: 4618 -> 4119 -> 2059 -> 1860 -> 930 -> 921 -> 460
    assert CNNConfig(pools=[2, 2, 2]).out_length() == 460


def test_gravitational_wave_shape_is_just_config():
    cfg = CNNConfig(in_channels=3, length=4096, kernels=[64, 32, 8], channels=[4, 4, 4], pools=[4, 4, 4], dense=[16])
    head = make_task(TaskConfig(name="classify", classes=["noise", "signal"])).make_head(16)
    net = Network(CNN(cfg), head)
    out = net(torch.randn(2, 3, 4096))
    assert out.shape == (2, 2)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(2))  # log-probabilities


def test_wrong_input_shape_and_bad_config_say_what_is_wrong():
    net = CNN(CNNConfig(length=200, **TINY))
    with pytest.raises(ValueError, match=r"\(batch, 1, 200\)"):
        net(torch.zeros(2, 1, 300))
    with pytest.raises(ValueError, match="one value per convolution block"):
        CNNConfig(kernels=[5, 5], channels=[4], pools=[2, 2])
    with pytest.raises(ValueError, match="too short"):
        CNNConfig(length=100)
    with pytest.raises(ValueError, match="norm must be one of"):
        CNNConfig(norm="weird")


@pytest.mark.parametrize("norm", ["none", "batch", "group", "layer"])
def test_norm_layers_build_and_run(norm):
    net = CNN(CNNConfig(length=200, norm=norm, **TINY))
    assert net(torch.randn(4, 1, 200)).shape == (4, 32)


def test_he_uniform_initialisation_is_applied():
    torch.manual_seed(3)
    cfg = CNNConfig(length=1000, kernels=[100, 50, 10], channels=[16, 32, 32], pools=[2, 2, 2], dense=[64])
    body = CNN(cfg)
    net = he_uniform_(Network(body, make_task(TaskConfig(name="redshift")).make_head(body.features)))
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    assert len(layers) == 3 + 1 + 2  # convs, hidden dense, head's logits and offsets
    for m in layers:
        w = m.weight.detach()
        fan_in = w[0].numel()
        bound = math.sqrt(6.0 / fan_in)
        assert w.abs().max() <= bound
        # a uniform sample fills its range: the extremes are within a few per cent of the bound ...
        assert w.abs().max() > 0.95 * bound
        # ... and its spread is bound / sqrt(3) (torch's default init has bound / 3 = 1/sqrt(fan_in) * ...)
        assert float(w.std()) == pytest.approx(bound / math.sqrt(3), rel=0.1)
        assert torch.count_nonzero(m.bias) == 0


# -- learning a synthetic relation ----------------------------------------------------------------------------


def _line_batch(rng, n, n_pix=256, noise=0.2):
    """A Gaussian emission line whose pixel position encodes z through log(1 + z), on noise."""
    z = rng.uniform(0.1, 3.0, n)
    y = np.log1p(z)
    pos = 20 + (y - math.log1p(0.1)) / (math.log1p(3.0) - math.log1p(0.1)) * (n_pix - 40)
    pix = np.arange(n_pix)
    flux = np.exp(-0.5 * ((pix[None, :] - pos[:, None]) / 2.0) ** 2) * 3 + rng.normal(0, noise, (n, n_pix))
    return torch.tensor(flux[:, None, :], dtype=torch.float32), torch.tensor(y, dtype=torch.float32), z


@pytest.mark.parametrize("head", ["bins", "mse"])
def test_model_learns_line_position_redshift(head):
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    task = make_task(TaskConfig(name="redshift", head=head, z_min=0.0, z_max=3.5, n_bins=60))
    task.fit(np.log1p(rng.uniform(0.1, 3.0, 1000)))
    body = CNN(CNNConfig(length=256, kernels=[9, 5, 3], channels=[8, 16, 16], pools=[2, 2, 2], dense=[64]))
    net = he_uniform_(Network(body, task.make_head(body.features)))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for step in range(STEPS[head]):
        x, y, _ = _line_batch(rng, 64)
        loss = task.loss(net(x), y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-25:]) < 0.5 * np.mean(losses[:25])
    x, y, z = _line_batch(np.random.default_rng(99), 500)
    with torch.inference_mode():
        z_pred = task.decode(net(x.float()))["z"].numpy()
    dv = np.abs(dv_kms(z_pred, z))
    # one pixel of this toy grid is ~1060 km/s; the line is 2 pixels wide at S/N ~ 15 per pixel. The
    # binned head gets there in fewer steps than the MSE head (the point of offering it), hence two bounds.
    median_bound, frac_bound = {"bins": (3000, 0.8), "mse": (4500, 0.6)}[head]
    assert np.median(dv) < median_bound
    assert np.mean(dv < 6000) > frac_bound


def test_binned_head_decodes_its_own_targets():
    task = make_task(TaskConfig(name="redshift", z_min=0.0, z_max=6.0, n_bins=500, label_sigma=0.0))
    z = torch.tensor([0.0, 0.3, 1.7, 2.9, 5.49], dtype=torch.float64)
    y = torch.log1p(z)
    pos = (y - task.bins.y_lo) / task.bins.width
    log_prob = torch.full((5, 500), -30.0, dtype=torch.float64)
    log_prob[torch.arange(5), pos.long()] = 0.0
    offset = pos[:, None] - (torch.arange(500, dtype=torch.float64) + 0.5)[None, :]
    out = task.decode((log_prob, offset))
    torch.testing.assert_close(out["z"], z)
    assert torch.all(out["z_conf"] > 0.99)
    # a perfect output has near-zero loss; a wrong bin a large one
    assert float(task.loss((log_prob, offset), y).max()) < 1e-6
    assert float(task.loss((log_prob.roll(50, dims=1), offset), y).min()) > 10


def test_network_trained_with_fft_predicts_the_same_as_direct_with_its_weights():
    """Train with FFT convolutions (long kernels, as the default spectral network), then load the trained
    weights into the direct nn.Conv1d network: the decoded redshifts agree. Trained weights, unlike fresh
    ones, have grown the large activations where float32 round-off of the two methods could diverge."""
    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    task = make_task(TaskConfig(name="redshift", head="bins", z_min=0.0, z_max=3.5, n_bins=60))
    task.fit(np.log1p(rng.uniform(0.1, 3.0, 1000)))
    cfg = CNNConfig(length=256, kernels=[41, 21, 3], channels=[8, 16, 16], pools=[2, 2, 2], dense=[64],
                    fft_min_kernel=16)
    body = CNN(cfg)
    assert isinstance(body.blocks[0].conv, FFTConv1d) and isinstance(body.blocks[1].conv, FFTConv1d)
    net = he_uniform_(Network(body, task.make_head(body.features)))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    first = None
    for step in range(150):
        x, y, _ = _line_batch(rng, 64)
        loss = task.loss(net(x), y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.7 * first  # it did learn: the comparison is on trained weights
    direct_body = CNN(CNNConfig(**{**cfg.to_dict(), "fft_min_kernel": 0}))
    direct = Network(direct_body, task.make_head(direct_body.features))
    assert not any(isinstance(m, FFTConv1d) for m in direct.modules())
    direct.load_state_dict(net.state_dict())
    x, _, _ = _line_batch(np.random.default_rng(7), 400)
    net.eval()
    direct.eval()
    with torch.inference_mode():
        a, b = task.decode(net(x)), task.decode(direct(x))
    # float32: the two convolutions differ by ~1e-6 relative; a decoded z can move only where two bins'
    # probabilities tie to that precision, so allow at most 1% of spectra to move by more than 1 km/s-ish
    moved = np.abs(a["z"].numpy() - b["z"].numpy()) > 1e-5
    assert moved.mean() <= 0.01
    np.testing.assert_allclose(a["z"].numpy()[~moved], b["z"].numpy()[~moved], atol=1e-5)


def test_resnet_option_builds_learns_shapes_and_matches_fft():
    """arch="resnet": residual units keep the length ("same" padding), the shortcut is the identity where the
    channels agree, and FFT and direct convolution give the same network."""
    torch.manual_seed(6)
    cfg = CNNConfig(in_channels=3, length=512, kernels=[33, 9], channels=[8, 8], pools=[4, 2], dense=[16],
                    norm="batch", arch="resnet", depth=2, fft_min_kernel=16)
    net = CNN(cfg).eval()
    assert cfg.out_length() == 512 // 4 // 2
    units = [u for blk in net.blocks for u in blk.units]
    assert len(units) == 4 and "short" in units[0] and "short" not in units[1]  # 3 -> 8 channels, then 8 -> 8
    assert isinstance(units[0]["conv1"], FFTConv1d) and not isinstance(units[2]["conv1"], FFTConv1d)
    x = torch.randn(4, 3, 512)
    assert net(x).shape == (4, 16)
    direct = CNN(CNNConfig(**{**cfg.to_dict(), "fft_min_kernel": 0})).eval()
    direct.load_state_dict(net.state_dict())
    torch.testing.assert_close(net(x), direct(x), rtol=1e-4, atol=1e-5)
    # the residual path is live: zeroing every unit's second convolution leaves a network that still
    # responds to its input (through the shortcuts), unlike a plain stack with a dead layer
    with torch.no_grad():
        for u in units:
            u["conv2"].weight.zero_()
            u["conv2"].bias.zero_()
    assert not torch.allclose(net(x), net(torch.zeros_like(x)))
    with pytest.raises(ValueError, match="arch"):
        CNNConfig(arch="transformer")
