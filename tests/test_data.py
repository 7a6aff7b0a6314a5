"""Datasets, BERT masking and TensorBatches."""

from __future__ import annotations

import pickle
import sys
import time
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from largebatch.data import DATASETS, MaskedLMTransform, Splits, TensorBatches, build_dataset, mask_tokens
from largebatch.data import cifar10, mnist1d


def rows(t: Tensor) -> Counter[bytes]:
    """A multiset of the rows of ``t``, by their bytes."""
    return Counter(r.numpy().tobytes() for r in t.reshape(len(t), -1))


def assert_splits_equal(a: Splits, b: Splits) -> None:
    for part in ("train", "val", "test"):
        for x, y in zip(getattr(a, part), getattr(b, part), strict=True):
            assert torch.equal(x, y)
    assert a.meta == b.meta


def assert_train_standardised(splits: Splits) -> None:
    """Train statistics are exactly 0/1 per channel; held-out splits' are not (stats came from train only)."""
    x_train, x_val = splits.train[0], splits.val[0]
    dims = [d for d in range(x_train.dim()) if d != 1]
    torch.testing.assert_close(x_train.mean(dims), torch.zeros(x_train.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_train.std(dims), torch.ones(x_train.shape[1]), atol=1e-4, rtol=0)
    assert x_val.mean(dims).abs().max() > 1e-4


# ---------------------------------------------------------------- registry


def test_registry_names() -> None:
    assert set(DATASETS) == {"mnist1d", "digits", "text", "cifar10"}


def test_unknown_dataset_names_allowed() -> None:
    with pytest.raises(ValueError, match=r"'nope'.*allowed: mnist1d, digits, text, cifar10"):
        build_dataset("nope")


def test_unknown_option_names_option_and_allowed() -> None:
    with pytest.raises(ValueError, match=r"dataset 'mnist1d': unknown option 'foo'; allowed: .*num_samples"):
        build_dataset("mnist1d", foo=1)


@pytest.mark.parametrize(
    ("name", "options", "bad"),
    [
        ("digits", {"val_fraction": 1.5}, "val_fraction"),
        ("text", {"tokenizer": "bpe"}, "tokenizer"),
        ("text", {"seq_len": 1}, "seq_len"),
        ("mnist1d", {"num_samples": 5}, "num_samples"),
    ],
)
def test_invalid_option_value_names_option(name: str, options: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=f"dataset '{name}': option '{bad}'"):
        build_dataset(name, **options)


# ---------------------------------------------------------------- mnist1d


@pytest.fixture(scope="module")
def mnist_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d-cache")


@pytest.fixture(scope="module")
def mnist(mnist_cache: Path) -> Splits:
    return build_dataset("mnist1d", seed=3, num_samples=600, cache_dir=mnist_cache)


def test_mnist1d_shapes_and_meta(mnist: Splits) -> None:
    (x, y), (xv, yv), (xt, yt) = mnist.train, mnist.val, mnist.test
    assert (x.shape, xv.shape, xt.shape) == ((384, 1, 40), (96, 1, 40), (120, 1, 40))  # 480 pool: 20% val; 120 test
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(10)) and len(yv) == 96 and len(yt) == 120
    assert mnist.meta["task"] == "classification"
    assert mnist.meta["num_classes"] == 10 and mnist.meta["input_shape"] == (1, 40)
    assert rows(x).keys().isdisjoint(rows(xv)) and rows(x).keys().isdisjoint(rows(xt))
    assert_train_standardised(mnist)


def test_mnist1d_cache_is_reused(mnist: Splits, mnist_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = list(mnist_cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"

    def no_generation(args: dict) -> dict:
        raise AssertionError("the cached arrays should have been loaded")

    monkeypatch.setattr(mnist1d, "generate", no_generation)
    again = build_dataset("mnist1d", seed=3, num_samples=600, cache_dir=mnist_cache)
    assert_splits_equal(mnist, again)
    assert list(mnist_cache.iterdir()) == files


def test_mnist1d_default_cache_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    build_dataset("mnist1d", num_samples=100)
    assert len(list((tmp_path / ".cache" / "largebatch" / "mnist1d").glob("*.npz"))) == 1


def test_mnist1d_deterministic_per_seed_and_restores_global_rng(mnist: Splits) -> None:
    np_state = np.random.get_state()
    same = build_dataset("mnist1d", seed=3, num_samples=600, cache=False)
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()
    assert_splits_equal(mnist, same)
    other = build_dataset("mnist1d", seed=4, num_samples=600, cache=False)
    assert not torch.equal(mnist.train[0], other.train[0])


# ---------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Splits:
    return build_dataset("digits", seed=0)


def test_digits_shapes_meta_and_partition(digits: Splits) -> None:
    from sklearn.datasets import load_digits

    (x, y), (xv, yv), (xt, yt) = digits.train, digits.val, digits.test
    assert len(xt) == 359 and len(xv) == 288 and len(x) == 1797 - 359 - 288
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert digits.meta["num_classes"] == 10 and digits.meta["input_shape"] == (1, 8, 8)
    mean, std = digits.meta["mean"][0], digits.meta["std"][0]
    pixels = [torch.round((t * std + mean) * 16).to(torch.uint8) for t in (x, xv, xt)]  # back to the raw 0..16
    raw = torch.from_numpy(load_digits().images).to(torch.uint8)
    assert sum((rows(p) for p in pixels), Counter()) == rows(raw)  # the three splits partition the data set
    assert_train_standardised(digits)


def test_digits_seeded(digits: Splits) -> None:
    assert_splits_equal(digits, build_dataset("digits", seed=0))
    assert not torch.equal(digits.test[1], build_dataset("digits", seed=1).test[1])


# ---------------------------------------------------------------- text


@pytest.fixture(scope="module")
def text() -> Splits:
    return build_dataset("text", seed=0)


def test_text_shapes_vocab_and_partition(text: Splits) -> None:
    from pydoc_data.topics import topics

    meta = text.meta
    assert meta["task"] == "mlm" and meta["seq_len"] == 64 and meta["mask_prob"] == 0.15
    assert meta["vocab"][:3] == ("[PAD]", "[UNK]", "[MASK]")
    assert (meta["pad_token_id"], meta["mask_token_id"]) == (0, 2) and meta["vocab_size"] == len(meta["vocab"])
    assert all(len(p) == 1 for p in (text.train, text.val, text.test))
    parts = [text.train[0], text.val[0], text.test[0]]
    assert all(p.dtype == torch.int64 and p.shape[1] == 64 for p in parts)
    assert all(int(p.min()) >= 3 and int(p.max()) < meta["vocab_size"] for p in parts)  # min_freq=1: no UNK, no PAD
    corpus = "".join(topics[k] for k in sorted(topics))
    index = {token: i for i, token in enumerate(meta["vocab"])}
    stream = torch.tensor([index[c] for c in corpus[: len(corpus) // 64 * 64]]).view(-1, 64)
    assert sum((rows(p) for p in parts), Counter()) == rows(stream)  # the splits partition the sequences
    assert len(text.val[0]) == round(0.1 * (len(stream) - len(text.test[0])))


def test_text_seeded(text: Splits) -> None:
    assert_splits_equal(text, build_dataset("text", seed=0))
    assert not torch.equal(text.train[0], build_dataset("text", seed=1).train[0])


def test_text_word_tokenizer_from_file(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. The dog, the cat! Über " * 40 + "rare", encoding="utf-8")
    splits = build_dataset("text", path=corpus, tokenizer="word", vocab_size=4, seq_len=8)
    assert splits.meta["vocab"] == ("[PAD]", "[UNK]", "[MASK]", "the", "cat", "!", ",")  # ties broken by text
    ids = torch.cat([splits.train[0], splits.val[0], splits.test[0]])
    assert (ids == 1).any()  # words outside the 4 most frequent are [UNK]


def test_text_min_freq_maps_rare_characters_to_unk(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("z" + "ab" * 200, encoding="utf-8")
    splits = build_dataset("text", path=corpus, min_freq=2, seq_len=5)
    assert splits.meta["vocab"] == ("[PAD]", "[UNK]", "[MASK]", "a", "b")
    ids = torch.cat([splits.train[0], splits.val[0], splits.test[0]])
    assert (ids == 1).sum() == 1 and ids.numel() == 400


def test_text_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.txt"
    with pytest.raises(FileNotFoundError, match="nowhere.txt"):
        build_dataset("text", path=missing)


# ---------------------------------------------------------------- masking


def test_mask_tokens_follows_bert_80_10_10() -> None:
    vocab_size = 1000
    ids = torch.randint(3, vocab_size, (1000, 512), generator=torch.Generator().manual_seed(0))
    ids[:, -50:] = 0  # padding
    inputs, labels = mask_tokens(
        ids, mask_token_id=2, vocab_size=vocab_size, mask_prob=0.15, generator=torch.Generator().manual_seed(1)
    )
    selected = labels != -100
    assert not selected[ids == 0].any()
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])
    rate = selected.sum() / (ids != 0).sum()
    assert abs(rate.item() - 0.15) < 0.005
    n = selected.sum().item()
    masked = (inputs[selected] == 2).sum().item() / n
    kept = (inputs[selected] == ids[selected]).sum().item() / n
    replaced = 1 - masked - kept
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1) < 0.01 and abs(replaced - 0.1) < 0.01
    assert int(inputs[selected].min()) >= 2 and int(inputs.max()) < vocab_size
    again = mask_tokens(
        ids, mask_token_id=2, vocab_size=vocab_size, mask_prob=0.15, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)


def test_masked_lm_transform_through_batches(text: Splits) -> None:
    transform = MaskedLMTransform.from_meta(text.meta)
    batches = TensorBatches(text.train, 256, seed=5, transform=transform)
    first = list(batches)
    assert all(len(b) == 2 and b[0].shape == b[1].shape == (256, 64) for b in first)
    inputs, labels = first[0]
    assert (inputs == text.meta["mask_token_id"]).any() and (labels == -100).any()
    batches.set_epoch(0)
    replay = list(batches)
    assert all(torch.equal(a, b) for x, y in zip(first, replay) for a, b in zip(x, y))
    assert not torch.equal(first[0][1] != -100, first[1][1] != -100)  # a fresh mask per batch


# ---------------------------------------------------------------- TensorBatches


def make_data(n: int = 103) -> tuple[Tensor, Tensor]:
    return torch.arange(n).float().unsqueeze(1).repeat(1, 3), torch.arange(n)


def epoch_ids(batches: TensorBatches) -> list[int]:
    return [i for _, y in batches for i in y.tolist()]


def test_batches_cover_each_sample_once_without_drop_last() -> None:
    batches = TensorBatches(make_data(), 10, drop_last=False)
    assert len(batches) == 11 and batches.num_samples == 103
    got = list(batches)
    assert [len(y) for _, y in got] == [10] * 10 + [3]
    assert all(torch.equal(x[:, 0].long(), y) for x, y in got)  # rows stay aligned across tensors
    assert sorted(i for _, y in got for i in y.tolist()) == list(range(103))


def test_batches_drop_last() -> None:
    batches = TensorBatches(make_data(), 10)
    assert len(batches) == 10 and batches.num_samples == 100
    assert len(epoch_ids(batches)) == 100 and len(set(epoch_ids(batches))) == 100


def test_batches_reshuffle_per_epoch_deterministically() -> None:
    a, b = TensorBatches(make_data(), 10, seed=7), TensorBatches(make_data(), 10, seed=7)
    epochs_a = [epoch_ids(a) for _ in range(3)]
    assert epochs_a == [epoch_ids(b) for _ in range(3)]
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert epoch_ids(TensorBatches(make_data(), 10, seed=8)) != epochs_a[0]
    a.set_epoch(1)
    assert epoch_ids(a) == epochs_a[1] and a.epoch == 2
    expected = torch.randperm(103, generator=torch.Generator().manual_seed(7 + 2))[:100].tolist()
    assert epochs_a[2] == expected


def test_batches_without_shuffle_keep_order() -> None:
    assert epoch_ids(TensorBatches(make_data(), 10, shuffle=False, drop_last=False)) == list(range(103))


def test_batches_rank_split_disjoint_equal_and_complete() -> None:
    world = 4
    shards = [TensorBatches(make_data(), 5, seed=1, rank=r, world_size=world, drop_last=False) for r in range(world)]
    assert len({len(s) for s in shards}) == 1 and all(s.num_samples == 25 for s in shards)
    ids = [epoch_ids(s) for s in shards]
    flat = [i for shard in ids for i in shard]
    assert len(flat) == len(set(flat)) == 100  # 103 cut to a multiple of 4
    single = torch.randperm(103, generator=torch.Generator().manual_seed(1))[:100].tolist()
    assert sorted(flat) == sorted(single)


def test_batch_larger_than_data() -> None:
    with pytest.raises(ValueError, match=r"batch_size 200 .*dataset size 103"):
        TensorBatches(make_data(), 200)
    only = list(TensorBatches(make_data(), 200, drop_last=False))
    assert len(only) == 1 and len(only[0][1]) == 103


def test_batches_reject_mismatched_tensors() -> None:
    with pytest.raises(ValueError, match="share dim 0"):
        TensorBatches((torch.zeros(5), torch.zeros(6)), 2)


def test_batches_apply_transform_with_per_batch_generator() -> None:
    seen: list[float] = []

    def add_noise(batch: tuple[Tensor, ...], generator: torch.Generator) -> tuple[Tensor, ...]:
        noise = torch.rand((), generator=generator)
        seen.append(noise.item())
        return (batch[0] + noise, batch[1])

    batches = TensorBatches(make_data(), 10, transform=add_noise)
    out = list(batches)
    assert len(set(seen)) == len(out) == 10
    assert all(torch.allclose(x[:, 0] - y, torch.full((10,), s), atol=1e-4) for (x, y), s in zip(out, seen))
    batches.set_epoch(0)
    list(batches)
    assert seen[10:] == seen[:10]


def test_large_batch_is_one_fast_gather() -> None:
    data = (torch.randn(60000, 40), torch.randint(0, 10, (60000,)))
    batches = TensorBatches(data, 8192, seed=0)
    times = []
    while len(times) < 20:
        iterator = iter(batches)
        while True:
            start = time.perf_counter()
            batch = next(iterator, None)
            if batch is None:
                break
            times.append(time.perf_counter() - start)
    assert batch is None and float(np.median(times)) < 5e-3


@pytest.mark.gpu
def test_batches_and_masking_stay_on_gpu() -> None:
    ids = torch.randint(3, 50, (64, 16), device="cuda")
    batches = TensorBatches((ids,), 8, transform=MaskedLMTransform(2, 50, 0.15))
    inputs, labels = next(iter(batches))
    assert inputs.device.type == labels.device.type == "cuda"
    assert ((labels == -100) | (labels == inputs) | (inputs == 2) | (inputs >= 3)).all()


# ---------------------------------------------------------------- cifar10


def test_cifar10_without_torchvision_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", None)
    with pytest.raises(RuntimeError, match=r"torchvision.*mnist1d, digits and text") as error:
        build_dataset("cifar10", root=tmp_path)
    assert str(tmp_path) in str(error.value)


def test_cifar10_offline_fails_fast_without_downloading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeCIFAR10:
        url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

        def __init__(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("must not try to download without network")

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR10 = FakeCIFAR10
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    probed: list[str] = []
    monkeypatch.setattr(cifar10, "reachable", lambda host: probed.append(host) or False)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"cannot be reached.*network access or a pre-downloaded copy"):
        build_dataset("cifar10", root=tmp_path)
    assert probed == ["www.cs.toronto.edu"] and time.perf_counter() - start < 1.0


def test_cifar10_no_download_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="download=False"):
        build_dataset("cifar10", root=tmp_path, download=False)


def test_cifar10_reads_a_predownloaded_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # reading needs no torchvision
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 20).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    # these small stand-ins are the 'release' here: their own sums pass the check that guards unpickling
    monkeypatch.setattr(cifar10, "RELEASE_MD5", {path.name: cifar10.md5(path) for path in folder.iterdir()})
    splits = build_dataset("cifar10", root=tmp_path, download=False)
    assert splits.train[0].shape == (90, 3, 32, 32) and splits.val[0].shape == (10, 3, 32, 32)
    assert splits.test[0].shape == (20, 3, 32, 32) and splits.test[1].dtype == torch.int64
    assert splits.meta["input_shape"] == (3, 32, 32) and len(splits.meta["mean"]) == 3
    assert_train_standardised(splits)


class _RunsOnLoad:
    """A pickle payload that creates ``marker`` when unpickled (what an untrusted file can do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_cifar10_refuses_to_unpickle_a_file_that_is_not_the_release(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "code-ran"
    for name in cifar10.RELEASE_MD5:
        (folder / name).write_bytes(pickle.dumps(_RunsOnLoad(marker)))
    with pytest.raises(RuntimeError) as error:
        build_dataset("cifar10", root=tmp_path, download=False)
    message = str(error.value)
    assert f"{folder / 'data_batch_1'} is not the CIFAR-10 release's file" in message
    assert "published c99cafc152244af753f735de768cd75f" in message and "not unpickling it" in message
    assert not marker.exists()
