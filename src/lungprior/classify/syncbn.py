"""BatchNorm statistics over the whole global batch under DDP, on GPUs and on the CPU.

torch's `SyncBatchNorm` (what `Trainer(sync_batchnorm=True)` uses) refuses CPU tensors, and its plain
conversion turns timm's `BatchNormAct2d` (DenseNet, EfficientNet) into a norm without its activation.
`BatchNormSync` converts with timm's `convert_sync_batchnorm` on CUDA and to `GlobalBatchNorm` on the CPU,
and `revert` puts the original layers back. Single-device training is not touched (Lightning applies layer
sync plugins only to parallel strategies).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import LayerSync
from timm.layers import convert_sync_batchnorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class _SumOverProcesses(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: each process's share of the total."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # itself an all-reduce, so a double backward (an input-gradient penalty) differentiates through it
        return _SumOverProcesses.apply(grad)  # type: ignore[no-any-return]


def _sum_over_processes(x: torch.Tensor) -> torch.Tensor:
    return _SumOverProcesses.apply(x)  # type: ignore[no-any-return]


class GlobalBatchNorm(_BatchNorm):
    """A BatchNorm whose training statistics are those of the batch of every process together.

    Any number of spatial dimensions; two-pass mean and variance, each summed with an autograd-aware
    all-reduce (so gradients flow across processes as in one process). Outside distributed training, or in
    eval mode, it is the ordinary BatchNorm. Keeps `act` / `drop` of a timm `BatchNormAct2d` it replaces.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of at least 2 dimensions, got {input.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._global_forward(x) if self.training and _world_size() > 1 else super().forward(x)
        if isinstance(getattr(self, "drop", None), nn.Module):
            y = self.drop(y)
        if isinstance(getattr(self, "act", None), nn.Module):
            y = self.act(y)
        return y

    def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = (1, -1, *([1] * (x.dim() - 2)))
        xf = x.float()
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float32, device=x.device)
        totals = _sum_over_processes(torch.cat([xf.sum(dims), count]))
        n = totals[-1].detach()
        mean = totals[:-1] / n
        centred = xf - mean.reshape(shape)
        var = _sum_over_processes(centred.square().sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1)) if n > 1 else var
                self.running_mean.mul_(1.0 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1.0 - factor).add_(unbiased.detach(), alpha=factor)
        y = centred * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)

    @classmethod
    def like(cls, bn: _BatchNorm) -> GlobalBatchNorm:
        """A `GlobalBatchNorm` sharing `bn`'s parameters and buffers (and its act / drop, if any)."""
        out = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        if bn.affine:
            out.weight, out.bias = bn.weight, bn.bias
        out.running_mean, out.running_var = bn.running_mean, bn.running_var
        out.num_batches_tracked = bn.num_batches_tracked
        for name in ("drop", "act"):
            child = getattr(bn, name, None)
            if isinstance(child, nn.Module):
                out.add_module(name, child)
        out.train(bn.training)
        return out


class BatchNormSync(LayerSync):
    """Lightning layer-sync plugin: every BatchNorm layer synchronised over the processes while fitting."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self._originals: dict[int, nn.Module] = {}

    def _convert(self, bn: _BatchNorm) -> nn.Module:
        return convert_sync_batchnorm(bn) if self.cuda else GlobalBatchNorm.like(bn)

    def apply(self, model: nn.Module) -> nn.Module:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, _BatchNorm) and id(child) not in self._originals:
                    synced = self._convert(child)
                    self._originals[id(synced)] = child
                    setattr(parent, name, synced)
        return model

    def revert(self, model: nn.Module) -> nn.Module:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                original = self._originals.pop(id(child), None)
                if original is not None:
                    # moving to a device replaces buffer tensors: hand the current ones back
                    original._parameters.update(child._parameters)
                    original._buffers.update(child._buffers)
                    original.train(child.training)
                    setattr(parent, name, original)
        return model
