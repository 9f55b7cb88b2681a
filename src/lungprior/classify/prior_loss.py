"""The `prior-loss` mode: the lung prior as a training constraint instead of an input edit.

The model sees the original film; its loss adds `prior_weight` x the share of input-gradient energy that
falls outside the allowed region (the loose lung mask), after "right for the right reasons" (Ross et al.
2017), which penalises the input gradient of the summed log-probabilities where an annotation marks the
input as irrelevant. Here the multi-label log-probabilities `sum_k log sigmoid(z_k)` are differentiated and
the penalty is normalised by the total gradient energy, so it lies in [0, 1] whatever the gradients' scale
and cannot be lowered by making the model insensitive everywhere. The input gradient is taken with
`create_graph=True` (double backward), which works under DDP (only the final loss's backward reaches the
parameters) and AMP (the score is scaled before differentiation; the share does not depend on that scale).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lungprior.classify.config import TrainConfig
from lungprior.classify.module import ClassifierModule

_EPS = 1e-20
_HALF_SCALE = 256.0  # keeps fp16 input gradients away from underflow; the share is scale-free


def input_gradient(
    model: nn.Module, x: torch.Tensor, *, create_graph: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of `model(x)` and the gradient of `sum log sigmoid(logits)` with respect to `x`."""
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    logits = model(x)
    score = F.logsigmoid(logits.float()).sum()
    if torch.is_autocast_enabled():
        score = score * _HALF_SCALE
    (grad,) = torch.autograd.grad(score, x, create_graph=create_graph, retain_graph=True)
    return logits, grad


def outside_share(grad: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per image, the share of input-gradient energy outside `region` ((B, 1, H, W) in {0, 1}); shape (B,)."""
    energy = grad.float().square().sum(dim=1)
    outside = 1.0 - region.float().reshape(energy.shape)
    return (energy * outside).flatten(1).sum(1) / (energy.flatten(1).sum(1) + _EPS)


class PriorLossClassifier(ClassifierModule):
    """`ClassifierModule` whose training loss is BCE + `prior_weight` x the mean outside-region gradient share."""

    def __init__(self, *args: object, prior_weight: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.prior_weight = float(prior_weight)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        x, y, _, region = batch
        logits, grad = input_gradient(self, x, create_graph=self.prior_weight > 0)
        bce = self.criterion(logits, y)
        share = outside_share(grad, region).mean()
        loss = bce + self.prior_weight * share if self.prior_weight > 0 else bce
        n = len(x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train_outside_share", share.detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return loss


def make_classifier(cfg: TrainConfig, model: nn.Module, pos_weight: torch.Tensor) -> ClassifierModule:
    """The Lightning module for `cfg`: the prior-loss classifier in that mode, the plain one otherwise."""
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "epochs": cfg.epochs}
    if cfg.mode == "prior-loss":
        return PriorLossClassifier(model, pos_weight, prior_weight=cfg.prior_weight, **kwargs)
    return ClassifierModule(model, pos_weight, **kwargs)


def needs_double_backward(cfg: TrainConfig) -> bool:
    """Whether training differentiates through an input gradient (BatchNorm sync must support that)."""
    return cfg.mode == "prior-loss" and cfg.prior_weight > 0
