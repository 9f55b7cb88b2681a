"""Where does the model look? Grad-CAM maps, the attention-in-lung fraction and the pointing game.

- attention-in-lung: the share of a class's Grad-CAM energy inside the tight lung mask (resized to the model
  input), averaged over the split's positive images of that class;
- pointing game (synthetic benchmark): the share of those images whose CAM maximum falls on the class's
  lesion (ground truth from the benchmark's `lesions/` folder, 1-pixel tolerance at the model input); a
  constant (e.g. all-zero) CAM has no maximum and is left out of the pointing game (counted in `flat_cams`).

A Grad-CAM map has the resolution of the last feature stage (`cam_size`, e.g. 2 x 2 for a ResNet at 64 px);
coarser than `MIN_CAM_SIZE` per side, upsampling it to the input says nothing about lungs versus the rest, so
attention-in-lung and the pointing game are not measured (None, with `not_measurable` saying why).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.ndimage import binary_dilation
from torch import nn

from lungprior.classify.config import TrainConfig
from lungprior.classify.data import make_dataset
from lungprior.classify.inference import load_run
from lungprior.data.io import read_mask
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS
from lungprior.layout import mask_path_for
from lungprior.masks import crop_region

MIN_CAM_SIZE = 7  # the coarsest Grad-CAM map (per side) whose attention-in-lung is reported
CropFn = Callable[[str, tuple[int, ...]], "tuple[slice, slice] | None"]


def crop_boxes(cfg: TrainConfig, frame: pd.DataFrame) -> CropFn | None:
    """For a `crop` run, the function giving each film's crop box from its lung mask; None for other modes."""
    spec = cfg.mask_spec()
    if spec.mode != "crop" or cfg.masks is None:
        return None
    spacing = dict(zip(frame["image_id"].astype(str), frame["pixel_spacing_mm"], strict=True))
    masks_dir = cfg.masks

    def box(image_id: str, shape: tuple[int, ...]) -> tuple[slice, slice] | None:
        sp = spacing.get(image_id)
        lungs = read_mask(mask_path_for(masks_dir, image_id), shape=(int(shape[0]), int(shape[1])))
        return crop_region(lungs, spec, float(sp) if sp is not None and pd.notna(sp) else None)

    return box


@dataclass
class CamExample:
    """One image's CAM for one class, kept for the gallery."""

    image_id: str
    finding: str
    image: np.ndarray  # uint8 (S, S), as the model saw it (masked, resized)
    cam: np.ndarray  # float (S, S) in [0, 1]
    lungs: np.ndarray | None  # bool (S, S)
    lesion: np.ndarray | None  # bool (S, S)


def target_layer(model: nn.Module) -> nn.Module:
    """The last feature stage of a timm model (from its `feature_info`), where Grad-CAM is taken."""
    info = getattr(model, "feature_info", None)
    if info:
        name = info[-1]["module"] if isinstance(info, list) else info.module_name()[-1]
        return model.get_submodule(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LungpriorError(f"{type(model).__name__}: no convolutional layer for Grad-CAM")
    return convs[-1]


def lesion_mask(
    lesions_dir: Path, image_id: str, finding: str, size: int, crop: CropFn | None = None
) -> np.ndarray | None:
    """The benchmark's lesion extent of `finding`, resized to `size` (None when there is no lesion file).

    `crop(image_id, shape)` gives the box a `crop` run cut its input to (the extent is cut the same way).
    """
    path = lesions_dir / f"{image_id}.png"
    if not path.is_file():
        return None
    bits = np.asarray(Image.open(path))
    box = crop(image_id, bits.shape) if crop is not None else None
    if box is not None:
        bits = bits[box]
    extent = ((bits >> FINDINGS.index(finding)) & 1).astype(np.float32)
    small = np.asarray(Image.fromarray(extent).resize((size, size), Image.BILINEAR))
    return small > 0.25


def pointing_hit(cam: np.ndarray, lesion: np.ndarray) -> bool | None:
    """Whether the CAM maximum falls on the lesion (1-pixel tolerance); None for a constant CAM (no maximum)."""
    if not cam.max() > cam.min():
        return None
    peak = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return bool(binary_dilation(lesion, iterations=1)[peak])


def cam_analysis(
    run_dir: str | os.PathLike[str], split: str = "test", *, max_per_class: int = 30, seed: int = 0,
    keep_examples: int = 2, device: str | None = None,
) -> tuple[dict, list[CamExample]]:
    """Per-class attention-in-lung fraction and pointing-game hit rate on positive images of `split`."""
    model, cfg = load_run(run_dir)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    ds = make_dataset(cfg, split, train=False, progress=False)
    lesions_dir = Path(cfg.manifest).resolve().parent / "lesions"
    crop = crop_boxes(cfg, ds.frame)
    has_lungs = ds.cache.has_masks
    rng = np.random.default_rng(seed)
    summary: dict = {"split": split, "per_class": {}, "max_per_class": max_per_class}
    examples: list[CamExample] = []
    cam_size: tuple[int, int] | None = None
    with GradCAM(model=model, target_layers=[target_layer(model)]) as cam:
        for j, finding in enumerate(FINDINGS):
            positives = np.flatnonzero(ds.labels[:, j] > 0.5)
            if positives.size > max_per_class:
                positives = np.sort(rng.choice(positives, max_per_class, replace=False))
            in_lung, hits, flat = [], [], 0
            for rank, i in enumerate(positives):
                x, _, _ = ds[int(i)]
                grayscale = cam(input_tensor=x.unsqueeze(0).to(dev), targets=[ClassifierOutputTarget(j)])[0]
                if cam_size is None and cam.activations_and_grads.activations:
                    cam_size = tuple(int(v) for v in cam.activations_and_grads.activations[-1].shape[-2:])
                flat += not grayscale.max() > grayscale.min()
                lungs = ds.lung_mask(int(i)) if has_lungs else None
                if lungs is not None and grayscale.sum() > 0:
                    in_lung.append(float(grayscale[lungs].sum() / grayscale.sum()))
                lesion = lesion_mask(lesions_dir, ds.image_ids[int(i)], finding, ds.image_size, crop)
                if lesion is not None and lesion.any():
                    hit = pointing_hit(grayscale, lesion)
                    if hit is not None:
                        hits.append(hit)
                if rank < keep_examples:
                    examples.append(CamExample(ds.image_ids[int(i)], finding, ds.raw_image(int(i)), grayscale,
                                               lungs, lesion))
            summary["per_class"][finding] = {
                "n_images": int(positives.size),
                "attention_in_lung": float(np.mean(in_lung)) if in_lung else None,
                "pointing_game": float(np.mean(hits)) if hits else None,
                "pointing_game_n": len(hits),
                "flat_cams": flat,
            }
    summary["cam_size"] = list(cam_size) if cam_size else None
    if cam_size and min(cam_size) < MIN_CAM_SIZE:
        summary["not_measurable"] = (f"Grad-CAM map of {cam_size[0]}×{cam_size[1]} cells at {ds.image_size} px input "
                                     f"(coarser than {MIN_CAM_SIZE}×{MIN_CAM_SIZE}): attention in lung and pointing "
                                     "game not measurable")
        for v in summary["per_class"].values():
            v.update(attention_in_lung=None, pointing_game=None, pointing_game_n=0)
    values = [v["attention_in_lung"] for v in summary["per_class"].values() if v["attention_in_lung"] is not None]
    points = [v["pointing_game"] for v in summary["per_class"].values() if v["pointing_game"] is not None]
    summary["attention_in_lung"] = float(np.mean(values)) if values else None
    summary["pointing_game"] = float(np.mean(points)) if points else None
    return summary, examples
