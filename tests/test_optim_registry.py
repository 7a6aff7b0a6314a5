"""The optimizer registry: one entry per optimizer feeds config validation, param groups and create_optimizer;
an entry that does not hold together fails loudly; names and flags are readable without torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from largebatch.core.errors import ConfigError
from largebatch.optim import LAMB, LARS, NOTHING, create_optimizer
from largebatch.optim import registry
from largebatch.train.config import validate


def minimal(**optimizer: object) -> dict[str, object]:
    return {"name": "t", "data": {"name": "digits"}, "model": {"name": "mlp"}, "batch_size": 32,
            "budget": {"epochs": 1}, "optimizer": optimizer}


@pytest.fixture
def scratch_entries() -> Iterator[None]:
    """Entries registered inside a test are removed after it."""
    before = dict(registry.OPTIMIZERS)
    yield
    registry.OPTIMIZERS.clear()
    registry.OPTIMIZERS.update(before)


def test_every_registered_entry_holds_together() -> None:
    registry.check_all()
    assert registry.layerwise_names() == ("lars", "lamb")
    assert registry.entry("lamb").cls is LAMB and registry.entry("lars").cls is LARS


def test_registry_and_config_import_without_torch() -> None:
    code = ("import sys, largebatch.optim.registry as r, largebatch.train.config, largebatch.dashboard.pages; "
            "assert r.layerwise_names() == ('lars', 'lamb'); print(sorted(m for m in sys.modules if m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("register", "message"), [
    (lambda: registry.register("lamb2", "largebatch.optim.lamb:LAMB"),
     "reads the groups' 'adapt' flag but is registered with layerwise=False"),
    (lambda: registry.register("sgd2", "torch.optim:SGD", layerwise=True),
     "registered with layerwise=True but its groups carry no 'adapt' flag"),
    (lambda: registry.register("sgd3", "torch.optim:SGD", defaults={"momentun": 0.9}),
     "defaults momentun are not options of torch.optim:SGD"),
    (lambda: registry.register("gone", "largebatch.optim.nowhere:Gone"), "cannot import largebatch.optim.nowhere"),
    (lambda: registry.register("notopt", "torch.nn:Linear"), "is not a torch.optim.Optimizer class"),
    (lambda: registry.register("lamb4", "largebatch.optim.lamb:LAMB", layerwise=True, renamed={"clip": "lamb_c"}),
     "renamed options clip must map a name the constructor no longer takes to one it takes"),
])
def test_registered_but_incomplete_entry_fails_loudly_at_validation(register, message, scratch_entries) -> None:
    register()
    name = list(registry.OPTIMIZERS)[-1]
    with pytest.raises(registry.RegistryError, match=message):
        validate(minimal(name=name))
    with pytest.raises(registry.RegistryError, match=message):
        create_optimizer(nn.Linear(2, 2), name, lr=0.1)


@pytest.mark.parametrize(("name", "target", "message"), [
    ("lamb", "largebatch.optim.lamb:LAMB", "registered twice"),
    ("Lamb3", "largebatch.optim.lamb:LAMB", "lower-case"),
    ("lamb3", "largebatch.optim.lamb.LAMB", "is not 'package.module:Class'"),
])
def test_malformed_registration_fails_at_once(name: str, target: str, message: str, scratch_entries) -> None:
    with pytest.raises(registry.RegistryError, match=message):
        registry.register(name, target, layerwise=True)


def test_a_new_registration_is_a_valid_config_name(scratch_entries) -> None:
    registry.register("nadam", "torch.optim:NAdam")
    assert validate(minimal(name="nadam", options={"momentum_decay": 0.004})).optimizer.name == "nadam"
    with pytest.raises(ConfigError, match="'optimizer.name': Input should be .*'lamb' or 'nadam'"):
        validate(minimal(name="nadam2"))


def test_create_optimizer_excludes_biases_and_norms_plain_lamb_does_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))
    opt = create_optimizer(model, "lamb", lr=1e-3, weight_decay=0.01, betas=[0.8, 0.99])
    frozen = {name for group in opt.param_groups if not group["adapt"] for name in group["param_names"]}
    assert frozen == {"0.bias", "1.weight", "1.bias", "2.bias"}
    assert {g["weight_decay"] for g in opt.param_groups if not g["adapt"]} == {0.0}
    assert opt.param_groups[0]["betas"] == (0.8, 0.99)
    assert all(g["adapt"] for g in LAMB(model.parameters()).param_groups)  # what the docstrings warn about
    assert all(g["adapt"] for g in create_optimizer(model, "lars", lr=1.0, exclude_from_adaptation=NOTHING)
               .param_groups)


def test_create_optimizer_applies_registry_defaults_and_rejects_unknown_options() -> None:
    sgd = create_optimizer(nn.Linear(2, 2), "sgd", lr=0.1)
    assert sgd.param_groups[0]["momentum"] == 0.9 and "adapt" not in sgd.param_groups[0]
    with pytest.raises(ValueError, match="unknown option.*betas for 'sgd'; allowed: momentum"):
        create_optimizer(nn.Linear(2, 2), "sgd", lr=0.1, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; allowed: sgd"):
        create_optimizer(nn.Linear(2, 2), "lion", lr=0.1)


def test_one_meaning_per_option_name_lamb_reads_its_old_trust_clip_as_lambc() -> None:
    lars = create_optimizer(nn.Linear(2, 2), "lars", lr=0.1, trust_clip=True)
    assert all(group["trust_clip"] for group in lars.param_groups)  # LARS: trust_clip is LARC
    assert "trust_clip" not in registry.entry("lamb").options and "lambc" in registry.entry("lamb").options
    with pytest.warns(FutureWarning, match="optimizer.options.trust_clip of 'lamb' is now called lambc"):
        lamb = create_optimizer(nn.Linear(2, 2), "lamb", lr=0.1, trust_clip=True)
    assert lamb.param_groups[0]["ratio_bounds"] == (None, 1.0)  # LAMBC, as lambc=True gives
    with pytest.raises(ValueError, match="options trust_clip and lambc of 'lamb' are one option"):
        create_optimizer(nn.Linear(2, 2), "lamb", lr=0.1, trust_clip=True, lambc=True)


def test_larc_and_lambc_are_different_rules_on_the_shared_trust_ratio() -> None:
    """LARC bounds the local rate by the global one (λ ≤ 1 after dividing by γ); LAMBC bounds the ratio by 1."""
    from largebatch.optim import trust_ratio

    torch.manual_seed(0)
    lr, weights, grads = 0.5, [torch.randn(8, 8) * 3, torch.randn(8)], [torch.randn(8, 8) * 0.1, torch.randn(8) * 5]

    def ratios(cls: type, **options: object) -> torch.Tensor:
        params = [w.clone().requires_grad_() for w in weights]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        optimizer = cls(params, lr=lr, weight_decay=0.0, foreach=True, fused=False, **options)
        optimizer.step()
        return optimizer.layer_stats().trust_ratio

    w_norm = torch.stack([w.norm() for w in weights])
    lars_raw = trust_ratio(w_norm, torch.stack([g.norm() for g in grads]), coefficient=0.001)
    torch.testing.assert_close(ratios(LARS, trust_clip=True), torch.clamp(lars_raw / lr, max=1.0))
    lamb_raw = ratios(LAMB)
    lambc = ratios(LAMB, lambc=True)
    torch.testing.assert_close(lambc, torch.clamp(lamb_raw, max=1.0))
    assert not torch.equal(lambc, torch.clamp(lamb_raw / lr, max=1.0))  # LARC's rule would give other ratios here
