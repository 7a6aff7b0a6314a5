"""Models: shapes, gradients, readable parameter names, BatchNorm variants, tiny BERT's tying and padding."""

from __future__ import annotations

import re
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from largebatch.models import MODELS, build_model

MNIST1D = {"task": "classification", "num_classes": 10, "input_shape": (1, 40)}
DIGITS = {"task": "classification", "num_classes": 10, "input_shape": (1, 8, 8)}
CIFAR = {"task": "classification", "num_classes": 10, "input_shape": (3, 32, 32)}
TEXT = {"task": "mlm", "vocab_size": 50, "seq_len": 16, "pad_token_id": 0, "mask_token_id": 2}

CLASSIFIERS = [
    ("cnn1d", MNIST1D, {}),
    ("cnn1d", MNIST1D, {"batch_norm": True, "channels": 8}),
    ("digits_cnn", DIGITS, {}),
    ("digits_cnn", DIGITS, {"batch_norm": True, "width": 0.5, "dropout": 0.2}),
    ("mlp", MNIST1D, {}),
    ("mlp", DIGITS, {"hidden": [32], "batch_norm": True}),
    ("resnet", CIFAR, {"depth": 8}),
    ("resnet", DIGITS, {"width": 0.5}),
]
# a name is readable when each dotted part is a word (an index only inside a container, e.g. stage1.0.conv1)
READABLE = re.compile(r"^[a-z_]+\d*(\.(\d+|[a-z_]+\d*))*\.(weight|bias|in_proj_weight|in_proj_bias)$")


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_registry_names() -> None:
    assert set(MODELS) == {"cnn1d", "digits_cnn", "tiny_bert", "resnet", "mlp"}


@pytest.mark.parametrize(("name", "meta", "options"), CLASSIFIERS)
def test_classifier_forward_backward_and_names(name: str, meta: dict, options: dict) -> None:
    torch.manual_seed(0)
    model = build_model(name, meta, **options)
    x = torch.randn(6, *meta["input_shape"])
    logits = model(x)
    assert logits.shape == (6, 10)
    F.cross_entropy(logits, torch.arange(6)).backward()
    names = [n for n, _ in model.named_parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert names[0] == "conv1.weight" or names[0] == "fc1.weight"
    assert "head.weight" in names and all(READABLE.match(n) for n in names), names
    assert has_batch_norm(model) == (name == "resnet" or options.get("batch_norm", False))


def test_cnn1d_matches_the_reference_architecture() -> None:
    model = build_model("cnn1d", MNIST1D)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert shapes == {
        "conv1.weight": (25, 1, 5), "conv1.bias": (25,),
        "conv2.weight": (25, 25, 3), "conv2.bias": (25,),
        "conv3.weight": (25, 25, 3), "conv3.bias": (25,),
        "head.weight": (10, 125), "head.bias": (10,),
    }  # fmt: skip


def test_digits_cnn_batch_norm_covers_every_conv_and_fc() -> None:
    model = build_model("digits_cnn", DIGITS, batch_norm=True)
    assert [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] == [
        "bn1", "bn2", "bn3", "bn4",
    ]  # fmt: skip
    assert model.conv1.bias is None and model.head.bias is not None


def test_resnet20_has_the_papers_size() -> None:
    model = build_model("resnet", CIFAR)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) + 1 == 20  # 6n+2 weighted layers: 19 convolutions and the head
    assert 0.26e6 < sum(p.numel() for p in model.parameters()) < 0.28e6  # "0.27M" in He et al. 2016, Table 6


def test_resnet_rejects_bad_depth() -> None:
    with pytest.raises(ValueError, match="option 'depth' must be 6n\\+2"):
        build_model("resnet", CIFAR, depth=21)


@pytest.mark.parametrize("norm_first", [False, True])
def test_tiny_bert_logits_and_backward(norm_first: bool) -> None:
    torch.manual_seed(0)
    model = build_model("tiny_bert", TEXT, norm_first=norm_first, layers=1)
    ids = torch.randint(3, 50, (4, 16))
    logits = model(ids)
    assert logits.shape == (4, 16, 50)
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.encoder.norm is not None) == norm_first
    assert all(READABLE.match(n) for n, _ in model.named_parameters())


def test_tiny_bert_weight_tying() -> None:
    tied = build_model("tiny_bert", TEXT)
    assert tied.decoder.weight.data_ptr() == tied.token_embedding.weight.data_ptr()
    assert "decoder.weight" not in dict(tied.named_parameters())
    untied = build_model("tiny_bert", TEXT, tie_weights=False)
    assert untied.decoder.weight.data_ptr() != untied.token_embedding.weight.data_ptr()
    assert sum(p.numel() for p in untied.parameters()) == sum(p.numel() for p in tied.parameters()) + 50 * 64


def test_tiny_bert_ignores_padding() -> None:
    model = build_model("tiny_bert", TEXT).eval()
    ids = torch.randint(3, 50, (2, 10))
    padded = torch.cat([ids, torch.zeros(2, 6, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded)[:, :10], model(ids), atol=1e-5, rtol=1e-5)


def test_tiny_bert_uses_bert_initialisation() -> None:
    model = build_model("tiny_bert", TEXT, d_model=128)
    weight = model.encoder.layers[0].linear1.weight
    assert 0.015 < weight.std().item() < 0.02 and weight.abs().max().item() <= 0.04
    assert model.mlm_dense.bias.abs().sum() == 0


@pytest.mark.parametrize(
    ("name", "meta", "options", "message"),
    [
        ("nope", MNIST1D, {}, r"unknown model 'nope'; allowed: .*cnn1d"),
        ("cnn1d", MNIST1D, {"depth": 3}, r"model 'cnn1d': unknown option 'depth'; allowed: channels, batch_norm"),
        ("tiny_bert", MNIST1D, {}, r"model 'tiny_bert' needs meta keys vocab_size.*lacks"),
        ("cnn1d", TEXT, {}, r"model 'cnn1d' needs meta keys num_classes, input_shape"),
        ("digits_cnn", DIGITS, {"dropout": 1.0}, r"option 'dropout'"),
        ("mlp", MNIST1D, {"hidden": [0]}, r"option 'hidden\[0\]' must be positive"),
    ],
)
def test_build_model_errors(name: str, meta: dict, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(name, meta, **options)


def test_default_cnn1d_trains_an_mnist1d_epoch_quickly() -> None:
    torch.manual_seed(0)
    model = build_model("cnn1d", MNIST1D)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4000, 1, 40), torch.randint(0, 10, (4000,))
    F.cross_entropy(model(x[:128]), y[:128]).backward()  # warm-up: first-call allocations
    start = time.perf_counter()
    for batch in range(0, 4000, 128):
        optimizer.zero_grad()
        F.cross_entropy(model(x[batch : batch + 128]), y[batch : batch + 128]).backward()
        optimizer.step()
    assert time.perf_counter() - start < 2.0


@pytest.mark.gpu
@pytest.mark.parametrize(("name", "meta", "options"), [*CLASSIFIERS, ("tiny_bert", TEXT, {})])
def test_models_run_on_gpu(name: str, meta: dict, options: dict) -> None:
    model = build_model(name, meta, **options).cuda()
    x = torch.randint(3, 50, (2, 16)) if name == "tiny_bert" else torch.randn(2, *meta["input_shape"])
    out = model(x.cuda())
    out.sum().backward()
    assert out.device.type == "cuda"
