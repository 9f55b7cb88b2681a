"""The names of the files that one stage writes and another reads, in one place: the stages (data, segment,
classify, evaluate, predict, report) import them from here rather than from each other.

- A segmentation run: one mask per image id in `masks/` (`mask_name`), `qc.csv`, `errors.csv`, `segment.json`,
  shard files.
- A training run: `config.json`, `model.pt`, `efficiency.json`, `history.csv`, `excluded.csv`, `checkpoints/`,
  `segmentation.json` (where its masks came from); `evaluate` adds `predictions.csv`, `metrics.json` and
  `calibration.json`.
- Score columns: `p_<finding>` (`score_column`).
"""

from __future__ import annotations

import os
from pathlib import Path

from lungprior.data.safename import safe_name
from lungprior.errors import LungpriorError

#: Image extensions removed from the end of an image id before ".png" is added (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")

MASKS_DIR = "masks"
QC_FILE = "qc.csv"
ERRORS_FILE = "errors.csv"
SETTINGS_FILE = "segment.json"
SHARDS_DIR = "shards"
#: Written by `lungprior chexmask` beside its `masks/` folder.
CHEXMASK_FILE = "chexmask.json"

# a training run's folder
CONFIG = "config.json"
EFFICIENCY = "efficiency.json"
MODEL = "model.pt"
HISTORY = "history.csv"
CHECKPOINTS = "checkpoints"
EXCLUDED = "excluded.csv"
SEGMENTATION = "segmentation.json"
# what `evaluate` adds to it
PREDICTIONS = "predictions.csv"
VAL_PREDICTIONS = "predictions_val.csv"
METRICS = "metrics.json"
CALIBRATION = "calibration.json"

#: A probability column is the finding's name after this prefix (`p_Mass`).
SCORE_PREFIX = "p_"


def score_column(finding: str) -> str:
    """The column of a finding's probability in predictions: `p_<finding>`."""
    return SCORE_PREFIX + finding


def mask_name(image_id: str) -> str:
    """The mask file name of an image id: the id without a trailing image extension, made safe, plus ".png".

    `00000001_000.png` -> `00000001_000.png`; `phantom_00001` -> `phantom_00001.png`; `a.dcm` -> `a.png`.
    An id that is not a plain file name (`../x`, `/tmp/a.png`, a newline, 200 characters) gets a safe name with a
    short hash of the id (`lungprior.data.safename`), so a mask never lands outside `masks/`.
    """
    name = str(image_id).strip()
    lower = name.lower()
    for ext in IMAGE_EXTENSIONS:
        if lower.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    return f"{safe_name(name)}.png"


def mask_path_for(masks_dir: str | os.PathLike[str], image_id: str) -> Path:
    """The lung mask of `image_id` inside a run's `masks/` folder (what every consumer reads)."""
    return Path(masks_dir) / mask_name(image_id)


def resolve_masks_dir(path: str | os.PathLike[str], option: str = "--masks") -> Path:
    """The masks folder of `path`: a `lungprior segment` output folder (its `masks/`) or a folder of mask PNGs.

    Every command that reads masks accepts both; when neither fits, one line names the option and both layouts.
    """
    folder = Path(path).expanduser()
    if (folder / MASKS_DIR).is_dir():
        return folder / MASKS_DIR
    if folder.is_dir() and next(folder.glob("*.png"), None) is not None:
        return folder
    what = "no masks/ folder and no mask .png in it" if folder.is_dir() else "folder not found"
    raise LungpriorError(
        f"{option} {folder}: {what}; give a `lungprior segment` output folder (holding {MASKS_DIR}/ and "
        f"{SETTINGS_FILE} or {QC_FILE}) or the {MASKS_DIR}/ folder itself (<image id>.png)"
    )


def qc_path(out_dir: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> Path:
    """`qc.csv`, or `qc.shard-i.csv` for shard i of a sharded run."""
    return Path(out_dir) / (QC_FILE if shard is None else f"qc.shard-{shard[0]}.csv")


def errors_path(out_dir: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> Path:
    """`errors.csv`, or `errors.shard-i.csv` for shard i of a sharded run."""
    return Path(out_dir) / (ERRORS_FILE if shard is None else f"errors.shard-{shard[0]}.csv")


def shard_done_path(out_dir: str | os.PathLike[str], shard: tuple[int, int]) -> Path:
    """The marker a shard writes when it has finished: `shards/done-i-of-n`."""
    return Path(out_dir) / SHARDS_DIR / f"done-{shard[0]}-of-{shard[1]}"
