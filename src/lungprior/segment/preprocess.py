"""Image preprocessing, box geometry and mask postprocessing for the SAM-style backends.

LiteMedSAM (as in the LiteMedSAM reference inference): longest side to 256 with area interpolation, min-max
to [0, 1], zero padding at the bottom/right to 256x256; boxes scaled by 256 / max(H, W). The 256x256
decoder logits are cropped to the unpadded area, resized bilinearly to the original size, then sigmoid.

MedSAM (as in the MedSAM reference inference): resize to 1024x1024 without keeping the aspect ratio
(bicubic), min-max to [0, 1], no SAM pixel mean/std; boxes scaled by 1024/W and 1024/H. Sigmoid on the
256x256 logits, then bilinear to the original size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from lungprior.errors import LungpriorError

_EPS = 1e-8


@dataclass(frozen=True)
class Transform:
    """Geometry linking an original image (H, W) to the square model input of side `input_size`.

    The resized image occupies rows [0, resized_size[0]) and columns [0, resized_size[1]) of the input;
    the rest is padding. `scale` = (sx, sy) maps original pixel coordinates to input coordinates.
    """

    original_size: tuple[int, int]
    resized_size: tuple[int, int]
    input_size: int
    scale: tuple[float, float]

    def boxes_to_input(self, boxes: np.ndarray | torch.Tensor | list) -> np.ndarray:
        """(K, 4) [x0, y0, x1, y1] boxes in original pixels -> model-input coordinates (float64)."""
        sx, sy = self.scale
        return check_boxes(boxes) * np.array([sx, sy, sx, sy])

    def boxes_to_original(self, boxes: np.ndarray | torch.Tensor | list) -> np.ndarray:
        """(K, 4) boxes in model-input coordinates -> original pixel coordinates (float64)."""
        sx, sy = self.scale
        return check_boxes(boxes) / np.array([sx, sy, sx, sy])


def check_boxes(boxes: np.ndarray | torch.Tensor | list) -> np.ndarray:
    """Boxes as a float64 (K, 4) array of [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().numpy()
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1 and arr.shape == (4,):
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] == 0:
        raise LungpriorError(f"boxes of shape {arr.shape}: expected (K, 4) [x0, y0, x1, y1] with K >= 1")
    if not np.isfinite(arr).all():
        raise LungpriorError("boxes: contain NaN or infinite values")
    bad = np.flatnonzero((arr[:, 2] < arr[:, 0]) | (arr[:, 3] < arr[:, 1]))
    if bad.size:
        raise LungpriorError(f"box {bad[0]} {arr[bad[0]].tolist()}: x1 < x0 or y1 < y0")
    return arr


def check_image(image: np.ndarray) -> np.ndarray:
    """A finite 2-D grayscale image (an H x W x 1 array is accepted) as float32."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise LungpriorError(f"image of shape {arr.shape}: expected a non-empty 2-D grayscale array (H, W)")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise LungpriorError(f"image of dtype {arr.dtype}: expected a real-valued array")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise LungpriorError(f"image of shape {arr.shape}: contains NaN or infinite values")
    return arr


def _min_max(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    low, high = x.min(), x.max()
    return (x - low) / max(float(high - low), _EPS)


def preprocess_longest_side(image: np.ndarray, input_size: int = 256) -> tuple[torch.Tensor, Transform]:
    """LiteMedSAM input: (3, S, S) float32 tensor and its `Transform`."""
    img = check_image(image)
    h, w = img.shape
    ratio = input_size / max(h, w)
    new_h, new_w = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))  # never a side of 0
    resized = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)
    resized = _min_max(resized.astype(np.float32))
    padded = np.zeros((input_size, input_size), dtype=np.float32)
    padded[:new_h, :new_w] = resized
    tensor = torch.from_numpy(padded)[None].expand(3, -1, -1).contiguous()
    return tensor, Transform((h, w), (new_h, new_w), input_size, (ratio, ratio))


def preprocess_stretch(image: np.ndarray, input_size: int = 1024) -> tuple[torch.Tensor, Transform]:
    """MedSAM input: (3, S, S) float32 tensor (bicubic, aspect not kept) and its `Transform`."""
    img = check_image(image)
    h, w = img.shape
    x = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    if (h, w) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bicubic", align_corners=False, antialias=True)
    x = _min_max(x[0, 0])
    tensor = x[None].expand(3, -1, -1).contiguous()
    scale = (input_size / w, input_size / h)
    return tensor, Transform((h, w), (input_size, input_size), input_size, scale)


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or logits.shape[1] != 1:
        shape = tuple(logits.shape) if hasattr(logits, "shape") else type(logits).__name__
        raise LungpriorError(f"mask logits of shape {shape}: expected (K, 1, h, w)")
    return logits.detach().float()


def postprocess_longest_side(logits: torch.Tensor, transform: Transform) -> np.ndarray:
    """(K, 1, h, w) LiteMedSAM logits -> (K, H, W) float32 probabilities at the original size."""
    x = _check_logits(logits)
    size = transform.input_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    new_h, new_w = transform.resized_size
    x = x[..., :new_h, :new_w]
    x = F.interpolate(x, size=transform.original_size, mode="bilinear", align_corners=False)
    return torch.sigmoid(x)[:, 0].cpu().numpy()


def postprocess_stretch(logits: torch.Tensor, transform: Transform) -> np.ndarray:
    """(K, 1, h, w) MedSAM logits -> (K, H, W) float32 probabilities at the original size."""
    x = torch.sigmoid(_check_logits(logits))
    x = F.interpolate(x, size=transform.original_size, mode="bilinear", align_corners=False)
    return x[:, 0].cpu().numpy()
