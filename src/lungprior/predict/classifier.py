"""Scoring one film: the run's input rendering, the classifier (PyTorch or ONNX Runtime), calibration, Grad-CAM."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lungprior.classify.backbone import normalisation
from lungprior.classify.cache import render_arrays
from lungprior.classify.config import TrainConfig
from lungprior.classify.inference import load_run
from lungprior.errors import LungpriorError, one_line
from lungprior.evaluate.calibration import calibrate_scores
from lungprior.evaluate.calibration import read_calibration as read_calibration_file
from lungprior.labels import FINDINGS
from lungprior.onnxrt import inference_session, onnxruntime


def model_input(
    image: np.ndarray, lungs: np.ndarray | None, cfg: TrainConfig, spacing_mm: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(1, 1, S, S) float32 network input and the uint8 (S, S) image the network sees, as in training."""
    spec = cfg.mask_spec()
    view, _, _ = render_arrays(image, lungs if spec.needs_mask else None, cfg.image_size, spec, spacing_mm)
    mean, std = normalisation(cfg.backbone)
    x = (view.astype(np.float32) / 255.0 - mean) / std
    return x[None, None].astype(np.float32), view


class ScoringEngine(Protocol):
    """What scores films in `predict`: the PyTorch model or its ONNX export."""

    name: str

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(B, 1, S, S) inputs -> (B, 5) sigmoid probabilities."""
        ...


class TorchClassifier:
    """The run's `model.pt` in PyTorch, under inference mode; also gives Grad-CAM maps."""

    name = "torch"

    def __init__(self, run_dir: str | os.PathLike[str], device: str = "cpu") -> None:
        self.model, self.cfg = load_run(run_dir)
        self.device = torch.device(device)
        self.model.to(self.device)
        self._cam: Any = None

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.sigmoid(self.model(torch.from_numpy(x).to(self.device)).float()).cpu().numpy()

    def cam(self, x: np.ndarray, finding: int) -> np.ndarray:
        """Grad-CAM (S, S) in [0, 1] of one finding, at the model's last feature stage."""
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        from lungprior.evaluate.cam import target_layer

        if self._cam is None:
            self._cam = GradCAM(model=self.model, target_layers=[target_layer(self.model)])
        tensor = torch.from_numpy(x).to(self.device)
        return np.asarray(self._cam(input_tensor=tensor, targets=[ClassifierOutputTarget(finding)])[0])


class OnnxClassifier:
    """An exported `classifier.onnx` run by ONNX Runtime on the CPU."""

    name = "onnx"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        ort = onnxruntime("--engine onnx needs it; or use --engine torch")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = Path(path)
        self.session = inference_session(path, options, "ONNX classifier (--onnx-model)")
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if inputs != ["image"] or "probabilities" not in outputs or outputs["probabilities"][-1:] != [len(FINDINGS)]:
            raise LungpriorError(f"{path}: not a lungprior classifier (inputs {inputs}, outputs {outputs}); "
                                 "expected input 'image' and output 'probabilities' of shape (B, 5)")

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(B, 5) probabilities; a wrong shape, NaN or a value outside [0, 1] is refused, never scored."""
        try:
            out = np.asarray(self.session.run(["probabilities"], {"image": x})[0])
        except Exception as exc:  # ONNX Runtime's own types: a graph that does not take this input
            raise LungpriorError(f"{self.path}: the model failed on an input of shape {x.shape} "
                                 f"({one_line(exc, 160)})") from None
        return check_probabilities(out, x.shape[0], self.path)


def check_probabilities(out: np.ndarray, batch: int, where: object) -> np.ndarray:
    """`out` when it is a (batch, 5) array of finite values in [0, 1]; one line naming `where` otherwise."""
    if out.shape != (batch, len(FINDINGS)):
        raise LungpriorError(f"{where}: output of shape {out.shape}, expected ({batch}, {len(FINDINGS)})")
    if not np.all(np.isfinite(out)) or out.min() < 0.0 or out.max() > 1.0:
        raise LungpriorError(f"{where}: output holds NaN or a value outside [0, 1]; nothing scored")
    return out


def read_calibration(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's validated `calibration.json` (None without the file); bad content raises, naming the key."""
    return read_calibration_file(run_dir)


def calibrate(probs: np.ndarray, calibration: dict[str, Any]) -> np.ndarray:
    """Calibrated probabilities per finding (the run's `calibration.json`); findings kept raw stay unchanged."""
    return calibrate_scores(probs, calibration)


def top_finding(probs: np.ndarray) -> int:
    """Index of the most probable finding (the first on ties)."""
    values = [(-float(v) if math.isfinite(float(v)) else math.inf) for v in probs]
    return int(np.argmin(values))
