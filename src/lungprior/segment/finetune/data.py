"""Training data for box-prompted lung segmentation: image–mask pairs, per-lung boxes and targets, box jitter.

Each lung is a separate prompt: its box comes from one of the ground-truth mask's two largest connected
components (in original pixels) and its target is that component alone, not the union of both lungs.
Targets live at the decoder's 256x256 logit resolution in model-input space: the mask is resized with
nearest-neighbour to the model input (padded for LiteMedSAM, stretched for MedSAM), then to 256x256. A mask
coding grey 127 as "not annotated" (`lungprior.data.ignore`) gives an ignore plane, transformed the same
way: those pixels are not lung and are left out of losses and metrics.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from lungprior.data.ignore import read_mask_ignore
from lungprior.data.io import read_image
from lungprior.data.manifest import SPLITS, read_csv, read_manifest, read_seg_manifest, resolve
from lungprior.data.phantom import PhantomConfig, generate_benchmark
from lungprior.errors import FolderBusyError, LungpriorError
from lungprior.segment.finetune.config import REPLAY_AUTO, REPLAY_NONE
from lungprior.segment.preprocess import Transform

LOW_RES = 256  # side of the SAM decoder's mask logits
MAX_LUNGS = 2
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class TrainingPair:
    """One image and its ground-truth lung mask (pixels >= 128 are lung; grey 127 may mean "ignore")."""

    image_id: str
    image: Path
    mask: Path
    split: str


def load_pairs(data_dir: str | os.PathLike[str], split: str) -> list[TrainingPair]:
    """Image–mask pairs of one split from a segdata folder or a synthetic-benchmark (phantom) folder.

    A `manifest.csv` with a `mask_path` column is a segdata manifest; otherwise it is an NIH-format
    manifest whose masks are `masks/<image_id>.png` beside it (the synthetic benchmark's layout).
    """
    if split not in SPLITS:
        raise LungpriorError(f"split {split!r}: choose one of {', '.join(SPLITS)}")
    folder = Path(data_dir)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise LungpriorError(f"{folder}: no manifest.csv (expected a segdata or phantom folder)")
    if "mask_path" in read_csv(manifest).columns:
        df = read_seg_manifest(manifest)
        masks = [resolve(df, m) for m in df["mask_path"].astype(str)]
    else:
        df = read_manifest(manifest, labels=False)
        if not (folder / "masks").is_dir():
            raise LungpriorError(f"{folder}: manifest has no mask_path column and there is no masks/ folder")
        masks = [folder / "masks" / f"{i}.png" for i in df["image_id"].astype(str)]
    columns = (df["image_id"].astype(str), df["path"].astype(str), masks, df["split"].astype(str))
    pairs = [TrainingPair(i, resolve(df, p), m, s) for i, p, m, s in zip(*columns, strict=True)]
    return [p for p in pairs if p.split == split]


REHEARSAL = PhantomConfig(n=16, size=256, seed=1, val_fraction=0.0, test_fraction=0.0)  # `--replay auto`'s films
REHEARSAL_WAIT_S = 600.0


def replay_folder(replay: str, data: str | os.PathLike[str], out: str | os.PathLike[str], *,
                  progress: bool = False) -> Path | None:
    """The folder a run rehearses (`FinetuneConfig.replay`): None for "none", or for "auto" when `data` is itself a
    synthetic benchmark; a given folder as is; for "auto", the `REHEARSAL` films, generated once into OUT/replay
    (reused when its manifest, written last, is there)."""
    if replay == REPLAY_NONE or (replay == REPLAY_AUTO and (Path(data) / "phantom.json").is_file()):
        return None
    if replay != REPLAY_AUTO:
        return Path(replay)
    folder = Path(out) / "replay"
    deadline = time.monotonic() + REHEARSAL_WAIT_S
    while not (folder / "manifest.csv").is_file():
        try:
            generate_benchmark(REHEARSAL, folder, workers=1, progress=progress)
        except FolderBusyError:  # another process of a multi-device run is writing them: wait for its manifest
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
    return folder


def with_replay(
    pairs: list[TrainingPair], replay: str | os.PathLike[str] | None, limit: int | None = None
) -> list[TrainingPair]:
    """`pairs` plus the training pairs of the `replay` folder (at most `limit`); image ids must not repeat."""
    if replay is None:
        return pairs
    extra = load_pairs(replay, "train")[:limit]
    if not extra:
        raise LungpriorError(f"--replay {replay}: no training image–mask pairs")
    clash = sorted({p.image_id for p in pairs} & {p.image_id for p in extra})
    if clash:
        raise LungpriorError(f"--replay {replay}: image id(s) also in the training data ({', '.join(clash[:3])}); "
                             "rename them or replay another folder")
    return pairs + extra


def read_pair(pair: TrainingPair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The float [0, 1] image, its bool lung mask and bool ignore mask; `LungpriorError` naming the file if unusable."""
    image, meta = read_image(pair.image)
    mask, ignore = read_mask_ignore(pair.mask, shape=meta.shape)
    if not mask.any():
        raise LungpriorError(f"{pair.mask}: empty lung mask (no pixel >= 128)")
    return image, mask, ignore


def lung_components(mask: np.ndarray) -> list[np.ndarray]:
    """The two largest 8-connected components of a lung mask, ordered by column (image left first)."""
    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=_EIGHT_CONNECTED)
    if count == 0:
        raise LungpriorError("lung mask is empty")
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.argsort(-sizes, kind="stable")[:MAX_LUNGS] + 1
    comps = [labels == k for k in keep]
    return sorted(comps, key=lambda c: float(np.nonzero(c)[1].mean()))


def mask_box(component: np.ndarray) -> np.ndarray:
    """[x0, y0, x1, y1] of a non-empty mask (inclusive pixel indices) as float64."""
    rows, cols = np.nonzero(component)
    if rows.size == 0:
        raise LungpriorError("cannot take the box of an empty mask")
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float64)


def lung_boxes(mask: np.ndarray) -> np.ndarray:
    """(K, 4) boxes in original pixels, one per lung (K <= 2), image left first."""
    return np.stack([mask_box(c) for c in lung_components(mask)])


def jitter_boxes(
    boxes: np.ndarray, inward: float, outward: float, limit: float, rng: np.random.Generator
) -> np.ndarray:
    """Move each box side by U(-inward, outward) of the box's width/height (outward positive), clipped to [0, limit].

    The model learns to reach a lung edge from a box a little inside or outside it, as the cascade's boxes are.
    """
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = np.stack([arr[:, 2] - arr[:, 0], arr[:, 3] - arr[:, 1]] * 2, axis=1)
    move = rng.uniform(-inward, outward, size=arr.shape) * size
    out = np.clip(arr + move * np.array([-1.0, -1.0, 1.0, 1.0]), 0.0, float(limit))
    out[:, 2] = np.maximum(out[:, 2], out[:, 0] + 1.0)
    out[:, 3] = np.maximum(out[:, 3], out[:, 1] + 1.0)
    return np.clip(out, 0.0, float(limit))


def jitter_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's box jitter in one epoch: same seed, same boxes, whatever the order."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def mask_to_input(mask: np.ndarray, transform: Transform) -> np.ndarray:
    """A mask in model-input space (S x S uint8): nearest resize to the resized area, zero padding."""
    rh, rw = transform.resized_size
    size = transform.input_size
    resized = cv2.resize(np.asarray(mask, dtype=np.uint8), (rw, rh), interpolation=cv2.INTER_NEAREST)
    canvas = np.zeros((size, size), dtype=np.uint8)
    canvas[:rh, :rw] = resized
    return canvas


def input_to_low_res(mask: np.ndarray) -> np.ndarray:
    """An input-space mask resized with nearest-neighbour to the 256 x 256 logit grid (uint8)."""
    if mask.shape == (LOW_RES, LOW_RES):
        return np.ascontiguousarray(mask, dtype=np.uint8)
    return cv2.resize(np.asarray(mask, dtype=np.uint8), (LOW_RES, LOW_RES), interpolation=cv2.INTER_NEAREST)


def prior_draw(seed: int, epoch: int, index: int) -> float:
    """U(0, 1) deciding whether item `index` is prompted with the prior boxes in `epoch` (its own stream)."""
    return float(np.random.default_rng([int(seed), int(epoch), int(index), 2]).random())


@dataclass
class LungTargets:
    """One image's prompts: input-space boxes (K, 4), per-lung masks at input (K, S, S) and low resolution
    (K, 256, 256), and the ignore plane at low resolution (256, 256; 1 = left out of the loss)."""

    boxes: np.ndarray
    input_masks: np.ndarray
    low_res: np.ndarray
    ignore: np.ndarray


def lung_targets(mask: np.ndarray, transform: Transform, ignore: np.ndarray | None = None) -> LungTargets:
    """Per-lung boxes (model-input space, unjittered), per-lung targets and the ignore plane of one mask."""
    comps = lung_components(mask)
    boxes = transform.boxes_to_input(np.stack([mask_box(c) for c in comps]))
    input_masks = np.stack([mask_to_input(c, transform) for c in comps])
    low_res = np.stack([input_to_low_res(m) for m in input_masks])
    if ignore is None or not np.any(ignore):
        plane = np.zeros((LOW_RES, LOW_RES), dtype=np.uint8)
    else:
        plane = input_to_low_res(mask_to_input(np.asarray(ignore) & ~np.asarray(mask, dtype=bool), transform))
    return LungTargets(boxes, input_masks, low_res, plane)
