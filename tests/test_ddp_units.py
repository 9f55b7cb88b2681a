"""Units behind DDP = one process: the train sampler, the per-sample augmentation seed, the all-reduce BatchNorm."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from timm.layers import BatchNormAct2d
from torch import nn
from torch.utils.data import Dataset

from lungprior.classify import TrainConfig, make_dataset, syncbn
from lungprior.classify.datamodule import ClassifyData
from lungprior.classify.sampling import EpochSampler
from lungprior.classify.syncbn import BatchNormSync, GlobalBatchNorm
from lungprior.data.phantom import PhantomConfig, generate_benchmark

SEED = 3

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("units-bench")
    generate_benchmark(PhantomConfig(n=12, size=64, seed=6), out, workers=1, progress=False)
    return out / "manifest.csv"


def _cfg(manifest: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict = {"manifest": str(manifest), "out": str(out), "backbone": "resnet10t", "image_size": 32,
                  "accelerator": "cpu", "devices": "1", "seed": SEED}
    return TrainConfig(**{**base, **kw})


# --- units: sampler and augmentation ------------------------------------------------------------------------


class _Indices(Dataset):
    """Items are the (index, epoch) they were asked for."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: tuple[int, int]) -> tuple[int, int]:
        return item


def _batches(n: int, world: int, rank: int, batch: int, epoch: int) -> list[list[int]]:
    """The train batches one process sees, from the data module as Lightning would call it."""
    cfg = TrainConfig(manifest="m.csv", out="o", batch_size=batch, seed=SEED)
    dm = ClassifyData(_Indices(n), _Indices(0), cfg)  # type: ignore[arg-type]
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # type: ignore[assignment]
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    out = []
    for index, epochs in loader:
        assert epochs.tolist() == [epoch] * len(index)
        out.append(index.tolist())
    return out


@pytest.mark.parametrize("n", [32, 35, 37, 20, 9])
def test_sampler_ddp_batches_equal_one_process_batches(n: int) -> None:
    orders = []
    for epoch in (0, 1):
        one = _batches(n, 1, 0, 8, epoch)
        ranks = [_batches(n, 2, r, 4, epoch) for r in (0, 1)]
        assert len(one) == len(ranks[0]) == len(ranks[1]) == n // 8
        for k, batch in enumerate(one):
            assert len(batch) == 8 and len(ranks[0][k]) == len(ranks[1][k]) == 4
            assert sorted(ranks[0][k] + ranks[1][k]) == sorted(batch)
        flat = [i for b in one for i in b]
        assert len(set(flat)) == len(flat) and set(flat) <= set(range(n))
        assert _batches(n, 1, 0, 8, epoch) == one  # same seed and epoch, same order
        orders.append(flat)
    assert orders[0] != orders[1]


def test_epoch_sampler_yields_index_epoch_pairs() -> None:
    sampler = EpochSampler(range(10), num_replicas=2, rank=1, seed=0)
    sampler.set_epoch(4)
    items = list(sampler)
    assert len(items) == len(sampler) == 5 and {e for _, e in items} == {4}
    other = EpochSampler(range(10), num_replicas=2, rank=0, seed=0)
    other.set_epoch(4)
    assert sorted(i for i, _ in items + list(other)) == list(range(10))


def test_augmentation_depends_on_index_and_epoch_only(bench: Path, tmp_path: Path) -> None:
    ds = make_dataset(_cfg(bench, tmp_path / "run"), "train", train=True, progress=False)
    torch.manual_seed(123)
    a = ds[(3, 1)][0]
    torch.manual_seed(456)  # the global random state does not matter ...
    b = ds[(3, 1)][0]
    state = torch.random.get_rng_state()
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)  # ... and is left as it was
    assert not torch.equal(a, ds[(3, 2)][0])  # another epoch, another augmentation
    assert torch.equal(ds[3][0], ds[(3, 0)][0])  # an int index is epoch 0
    plain = make_dataset(_cfg(bench, tmp_path / "run"), "train", train=False, progress=False)
    assert not torch.equal(a, plain[3][0])  # it was augmented
    other_seed = make_dataset(_cfg(bench, tmp_path / "run", seed=SEED + 1), "train", train=True, progress=False)
    assert not torch.equal(a, other_seed[(3, 1)][0])


def _small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3, bias=False),
        BatchNormAct2d(4),  # timm: BatchNorm + ReLU in one layer
        nn.Flatten(), nn.Linear(4 * 28 * 28, 6, bias=False), nn.BatchNorm1d(6),
    )


def test_global_batchnorm_computes_batchnorm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The all-reduce path (forced, in a 1-process gloo group) gives BatchNorm's outputs, statistics and gradients;
    a timm BatchNormAct2d keeps its activation; `revert` puts the original layers back with their current state."""
    ref, net = _small_net(), _small_net()
    originals = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    plugin = BatchNormSync(cuda=False)
    plugin.apply(net)
    synced = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(synced) == 3 and all(type(m) is GlobalBatchNorm for m in synced)
    assert isinstance(synced[1].act, nn.ReLU) and not hasattr(synced[0], "act")
    assert net.state_dict().keys() == ref.state_dict().keys()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 1, 32, 32, generator=gen) * 3 + 2
    r = torch.randn(5, 6, generator=gen)  # loss = sum(r * y): gradients far from zero
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        monkeypatch.setattr(syncbn, "_world_size", lambda: 2)  # take the distributed path
        for _ in range(2):
            y, y_ref = net(x), ref(x)
            torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
            (r * y).sum().backward()
            (r * y_ref).sum().backward()
    finally:
        dist.destroy_process_group()
    for (name, a), b in zip(net.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-5 * float(b.grad.abs().max()), msg=name)
    state, ref_state = net.state_dict(), ref.state_dict()
    for key in ref_state:
        torch.testing.assert_close(state[key], ref_state[key], rtol=1e-5, atol=1e-6, msg=key)
    assert int(state["1.num_batches_tracked"]) == 2
    net.eval()
    ref.eval()
    torch.testing.assert_close(net(x), ref(x), rtol=1e-5, atol=1e-5)
    plugin.revert(net)
    back = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert [id(m) for m in back] == [id(m) for m in originals]
    assert all(a.running_mean is b.running_mean for a, b in zip(back, synced, strict=True))
