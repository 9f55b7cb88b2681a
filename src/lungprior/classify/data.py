"""The classification dataset: cached masked images, five finding labels, laterality-preserving augmentation.

With lung masks, a film without a usable one (mask file missing, or empty as `segment` writes for blank films)
is left out of every split in every mode, and listed with the reason (`Prepared.excluded`, a run's `excluded.csv`).
So is a film whose mask failed `segment`'s QC (`qc.csv` beside the masks folder, flag not `ok`), unless
`allow_qc_fail` keeps it: then it is listed with action `kept`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2

from lungprior.classify.backbone import normalisation
from lungprior.classify.cache import CacheInfo, ensure_cache, item_sources, open_cache
from lungprior.classify.config import TrainConfig
from lungprior.data.manifest import SPLITS, read_manifest
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS
from lungprior.layout import EXCLUDED, QC_FILE, mask_path_for

LUNG_THRESHOLD = 0.5
#: Columns of a run's `excluded.csv`: films left out (`action` excluded) for want of a usable lung mask or
#: because their mask failed QC, and QC-failed films kept on request (`action` kept).
EXCLUDED_COLUMNS = ("image_id", "reason", "action")


@dataclass(frozen=True)
class Prepared:
    """A manifest read once and its input cache (shared by the datasets of one run).

    `frame` holds the cached rows (in cache order); `excluded` the films left out for want of a usable lung
    mask (columns `EXCLUDED_COLUMNS`), whether their mask is missing (not in `frame`) or empty (in `frame`,
    left out of every dataset).
    """

    cfg: TrainConfig
    frame: pd.DataFrame
    cache: CacheInfo
    excluded: pd.DataFrame

    @property
    def excluded_ids(self) -> frozenset[str]:
        left_out = self.excluded["action"] == "excluded"
        return frozenset(self.excluded.loc[left_out, "image_id"].astype(str))


def qc_failures(masks_dir: str | None) -> dict[str, str]:
    """image_id -> QC reason for every film `segment` flagged (`qc.csv` beside the masks folder; none without)."""
    if masks_dir is None or not (Path(masks_dir).parent / QC_FILE).is_file():
        return {}
    qc = pd.read_csv(Path(masks_dir).parent / QC_FILE, dtype=str, keep_default_na=False)
    if not {"image_id", "flag"} <= set(qc.columns):
        raise LungpriorError(f"{Path(masks_dir).parent / QC_FILE}: not a segment qc.csv (needs image_id and flag)")
    bad = qc[qc["flag"].str.strip() != "ok"]
    reasons = bad["reason"] if "reason" in bad.columns else bad["flag"]
    return {i: r or f for i, r, f in zip(bad["image_id"], reasons, bad["flag"], strict=True)}


def excluded_counts(excluded: pd.DataFrame) -> dict[str, int]:
    """Films left out (`excluded`; of which `qc_failed` for QC) and QC-failed films `kept`, from `EXCLUDED_COLUMNS`."""
    qc = excluded["reason"].astype(str).str.startswith("lung mask failed QC")
    left = excluded["action"] == "excluded"
    return {"excluded": int(left.sum()), "qc_failed": int((left & qc).sum()), "kept": int((~left).sum())}


def _kept_before(cfg: TrainConfig) -> bool:
    """Whether the run in `cfg.out` kept QC-failed films (its `excluded.csv` lists one as kept)."""
    path = Path(cfg.out) / EXCLUDED
    if not path.is_file():
        return False
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return "action" in table.columns and bool((table["action"] == "kept").any())


def prepare(cfg: TrainConfig, *, progress: bool = True, allow_qc_fail: bool | None = None) -> Prepared:
    """Read the manifest and make sure its input cache is complete (built on first use).

    `allow_qc_fail`: keep films whose mask failed QC (None: as the run in `cfg.out` recorded, else leave out).
    """
    cfg = cfg.resolved()
    if allow_qc_fail is None:
        allow_qc_fail = _kept_before(cfg)
    frame = read_manifest(cfg.manifest)
    spec = cfg.mask_spec()
    missing = pd.Series(False, index=frame.index)
    if cfg.masks is not None:
        missing = pd.Series([not mask_path_for(cfg.masks, str(i)).is_file() for i in frame["image_id"]],
                            index=frame.index)
    skipped = [(str(i), f"lung mask not found, expected {mask_path_for(cfg.masks or '', str(i))}", "excluded")
               for i in frame.loc[missing, "image_id"]]
    frame = frame.loc[~missing].reset_index(drop=True)
    if frame.empty:
        raise LungpriorError(f"{cfg.manifest}: no film has a lung mask in {cfg.masks}")
    cache = ensure_cache(item_sources(frame, cfg.masks, spec), cfg.image_size, spec, cfg.cache, progress=progress)
    skipped += [(i, reason, "excluded") for i, reason in cache.unusable]
    listed = {row[0] for row in skipped}
    action = "kept" if allow_qc_fail else "excluded"
    present = set(frame["image_id"].astype(str))
    skipped += [(i, f"lung mask failed QC: {reason}", action) for i, reason in qc_failures(cfg.masks).items()
                if i not in listed and i in present]
    excluded = pd.DataFrame(sorted(skipped), columns=list(EXCLUDED_COLUMNS))
    return Prepared(cfg=cfg, frame=frame, cache=cache, excluded=excluded)


def augmentation() -> v2.Transform:
    """Small random affine (+-5 deg, +-4 % shift, 0.95-1.05 scale) and brightness/contrast jitter; no flips."""
    return v2.Compose(
        [
            v2.RandomAffine(
                degrees=5.0, translate=(0.04, 0.04), scale=(0.95, 1.05), interpolation=InterpolationMode.BILINEAR,
                fill=0.0,
            ),
            v2.ColorJitter(brightness=0.1, contrast=0.1),
        ]
    )


def augmentation_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation: a function of (run seed, epoch, index) only.

    So a sample is augmented the same way whatever the number of processes, loader workers or batch size.
    """
    words = [seed % 2**64, epoch, index]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0])


class ClassifyDataset(Dataset):
    """Items are `(image (1, S, S) float32 normalised, labels (5,) float32, index)` for one split.

    With `train=True` the image is augmented from a random stream seeded by (`seed`, epoch, index): ask for
    `ds[(index, epoch)]`, as `EpochSampler` does.

    `frame` holds the split's manifest rows in item order (`frame.iloc[index]`); `raw_image(index)` is the
    cached uint8 image (masked, resized, not augmented) and `lung_mask(index)` the tight lung mask at the
    same S x S (coverage >= 0.5), for attention-in-lung measurements.

    With `prior=True` (training in `prior-loss` mode) items carry a fourth element, the region where the
    model may look, (1, S, S) float32 in {0, 1}, augmented with the same affine as the image.
    """

    def __init__(
        self,
        cache: CacheInfo,
        frame: pd.DataFrame,
        rows: np.ndarray,
        *,
        mean: float,
        std: float,
        train: bool,
        seed: int = 0,
        prior: bool = False,
    ) -> None:
        self.cache = cache
        self.frame = frame.reset_index(drop=True)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = self.frame.loc[:, list(FINDINGS)].to_numpy(dtype=np.float32)
        self.mean, self.std, self.train, self.seed = float(mean), float(std), bool(train), int(seed)
        self.transform = augmentation() if train else None
        self.prior = bool(prior)
        self._images: np.ndarray | None = None
        self._prior: np.ndarray | None = None
        self._masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple:
        """Item `index`, or `(index, epoch)` (from `EpochSampler`); an int index is augmented as in epoch 0."""
        index, epoch = (int(item[0]), int(item[1])) if isinstance(item, tuple | list) else (int(item), 0)
        x = torch.from_numpy(self.raw_image(index).astype(np.float32) / 255.0).unsqueeze(0)
        region = tv_tensors.Mask(torch.from_numpy(self.prior_region(index)).unsqueeze(0)) if self.prior else None
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
                torch.manual_seed(augmentation_seed(self.seed, epoch, index))
                x, region = self.transform(x, region) if region is not None else (self.transform(x), None)
        x = (x - self.mean) / self.std
        if region is not None:
            return x, torch.from_numpy(self.labels[index]), index, region.as_subclass(torch.Tensor)
        return x, torch.from_numpy(self.labels[index]), index

    @property
    def image_ids(self) -> list[str]:
        return self.frame["image_id"].astype(str).tolist()

    @property
    def image_size(self) -> int:
        return self.cache.image_size

    def raw_image(self, index: int) -> np.ndarray:
        """The cached uint8 (S, S) image: decoded, masked and resized, before augmentation."""
        if self._images is None:
            self._images, self._masks = open_cache(self.cache)
        return np.asarray(self._images[self.rows[index]])

    def lung_coverage(self, index: int) -> np.ndarray:
        """Fraction in [0, 1] of each S x S pixel covered by the tight lung mask."""
        if not self.cache.has_masks:
            raise LungpriorError("no lung masks for this manifest: pass --masks DIR to train with them")
        if self._images is None:
            self._images, self._masks = open_cache(self.cache)
        assert self._masks is not None
        return np.asarray(self._masks[self.rows[index]], dtype=np.float32) / 255.0

    def lung_mask(self, index: int, threshold: float = LUNG_THRESHOLD) -> np.ndarray:
        """The tight lung mask resized to S x S, as bool (pixels at least `threshold` covered)."""
        return self.lung_coverage(index) >= threshold

    def prior_region(self, index: int) -> np.ndarray:
        """The `prior-loss` region (where attention is allowed) at S x S, float32 in {0, 1}."""
        if self._prior is None:
            if not self.cache.prior_path.is_file():
                raise LungpriorError(f"{self.cache.path}: no prior-loss region in this cache (made for another mode)")
            self._prior = np.load(self.cache.prior_path, mmap_mode="r")
        return (np.asarray(self._prior[self.rows[index]]) >= 128).astype(np.float32)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_images"] = state["_masks"] = state["_prior"] = None  # reopened lazily in each worker
        return state


def split_positions(
    frame: pd.DataFrame, split: str, limit: int | None = None, seed: int = 0, exclude: frozenset[str] = frozenset()
) -> np.ndarray:
    """Row positions of `split` in the manifest, ids in `exclude` left out; with `limit`, a seeded random subset
    kept in manifest order."""
    if split not in SPLITS:
        raise LungpriorError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    chosen = frame["split"].astype(str).to_numpy() == split
    if exclude:
        chosen &= ~frame["image_id"].astype(str).isin(exclude).to_numpy()
    rows = np.flatnonzero(chosen)
    if limit is not None and limit < len(rows):
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, size=limit, replace=False))
    return rows


def make_dataset(
    cfg: TrainConfig, split: str, train: bool = False, *, prepared: Prepared | None = None, progress: bool = True
) -> ClassifyDataset:
    """The dataset of one split for this config (the cache is built on first use).

    `train=True` adds augmentation; `--limit-train` applies to the train split only.
    """
    prep = prepared or prepare(cfg, progress=progress)
    limit = prep.cfg.limit_train if split == "train" else None
    rows = split_positions(prep.frame, split, limit, prep.cfg.seed, prep.excluded_ids)
    mean, std = normalisation(prep.cfg.backbone)
    return ClassifyDataset(
        prep.cache, prep.frame.iloc[rows], rows, mean=mean, std=std, train=train, seed=prep.cfg.seed,
        prior=train and prep.cfg.mode == "prior-loss",
    )


def pos_weight(dataset: ClassifyDataset) -> torch.Tensor:
    """Per-finding negatives / positives in a (train) dataset; a finding without positives gets weight 1."""
    positives = dataset.labels.sum(axis=0)
    negatives = len(dataset) - positives
    return torch.tensor(np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0), dtype=torch.float32)
