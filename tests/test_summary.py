"""The layer table (astrocnn.models.layer_table): the network's own layers and shapes, by a forward pass."""
import torch
import torch.nn as nn

from astrocnn.core.config import default_config
from astrocnn.models import layer_table
from astrocnn.train import build_network


def test_paper_network_layers_kernels_and_shapes():
    network = build_network(default_config("redshift", task={"head": "mse"}))
    network.train()
    rows = layer_table(network, torch.zeros(2, 1, 4618))
    convs = [r for r in rows if "Conv" in r.kind]
    assert [r.kernel for r in convs] == [500, 200, 10]
    # valid convolutions shorten by kernel - 1, pooling 4, 4, 2 divides: 4618 -> 4119 -> 1029 -> 830 -> 207 -> 198 -> 99
    assert [r.out_shape for r in convs] == [(16, 4119), (32, 830), (32, 198)]
    pools = [r for r in rows if r.kind == "MaxPool1d"]
    assert [(r.kernel, r.out_shape) for r in pools] == [(4, (16, 1029)), (4, (32, 207)), (2, (32, 99))]
    assert rows[0].in_shape == (1, 4618) and rows[-1].out_shape == (1,)  # the MSE head: one number
    assert [r.kind for r in rows[-4:]] == ["Flatten", "Linear", "ReLU", "Linear"]
    assert rows[-4].out_shape == (32 * 99,)
    assert sum(r.params for r in rows) == network.n_parameters()
    assert network.training, "the network's mode is restored"
    assert not any(r.kind == "Identity" for r in rows)


def test_heads_with_several_outputs_and_no_hooks_left():
    network = build_network(default_config("redshift"))  # binned head: (log_prob, offset)
    rows = layer_table(network, torch.zeros(1, 1, 4618))
    assert [(r.name, r.out_shape) for r in rows[-3:]] == [
        ("head.logits", (500,)), ("head.log_softmax", (500,)), ("head.offset", (500,))]
    assert all(not m._forward_hooks for m in network.modules())
    classify = layer_table(build_network(default_config("classify")), torch.zeros(1, 1, 4618))
    assert [r.kind for r in classify[-2:]] == ["Linear", "LogSoftmax"] and classify[-1].out_shape == (2,)


def test_any_module_and_call_order():
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    rows = layer_table(net, torch.zeros(5, 3))
    assert [(r.name, r.kind, r.in_shape, r.out_shape, r.kernel, r.params) for r in rows] == [
        ("0", "Linear", (3,), (4,), None, 16), ("1", "Tanh", (4,), (4,), None, 0), ("2", "Linear", (4,), (2,), None, 10)]
