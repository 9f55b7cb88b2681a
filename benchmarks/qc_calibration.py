"""How well each QC feature separates bad segmentations (Dice < 0.85) from good ones, on scored films; and how
often QC flags human lung masks of real films (what normal and diseased anatomy looks like).

    python benchmarks/qc_calibration.py RUN_DIR EVAL_DIR [RUN_DIR EVAL_DIR ...]
    python benchmarks/qc_calibration.py --human MASKS_DIR_OR_ZIP [...]

RUN_DIR holds a run's qc.csv (`lungprior segment`, or an arm of benchmarks/segment_cv.py) and EVAL_DIR the
`lungprior segeval` output for it (films.csv). For every feature and direction it prints the threshold that
flags at most 10 % of the good films and how many bad films that threshold catches, then the current QC
flags' catch and false-flag rates.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from lungprior.segment.infer.qc import QC_CHECKS, failed_checks, feature_reasons

FEATURES = {  # feature -> direction of "bad" ("low" or "high")
    "box_fill": "low", "stability": "low", "pred_iou": "low", "mean_prob": "low", "area_fraction": "low",
    "lr_area_ratio": "low", "border_touch": "high", "n_components": "high",
}
BAD = 0.85


def load(pairs: list[str]) -> pd.DataFrame:
    frames = []
    for run, ev in zip(pairs[::2], pairs[1::2], strict=True):
        qc = pd.read_csv(Path(run) / "qc.csv", dtype={"image_id": str})
        films = pd.read_csv(Path(ev) / "films.csv", dtype={"image_id": str})[["image_id", "dice"]]
        frames.append(qc.merge(films, on="image_id").assign(run=run))
    return pd.concat(frames, ignore_index=True)


def human_masks(sources: list[str]) -> pd.DataFrame:
    """QC rows of human lung masks (a folder of PNG masks, or a zip such as torchxrayvision's V7 lung masks);
    unannotated (empty) masks are skipped. Probability = the mask, no stability: the geometric checks only."""
    import io
    import zipfile

    from PIL import Image

    from lungprior.segment.infer.qc import qc_row

    def rows(name: str, data: np.ndarray, source: str) -> dict:
        mask = data >= 128
        return {**qc_row(name, mask, mask.astype(np.float32), "human"), "source": source}

    out = []
    for source in sources:
        path = Path(source)
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if not name.endswith("/"):
                        out.append(rows(name, np.asarray(Image.open(io.BytesIO(z.read(name))).convert("L")), source))
        else:
            for file in sorted(path.glob("*.png")):
                out.append(rows(file.name, np.asarray(Image.open(file).convert("L")), source))
    df = pd.DataFrame(out)
    return df[df["flag"] != "empty"]


def main() -> None:
    if sys.argv[1:2] == ["--human"]:
        df = human_masks(sys.argv[2:])
        flagged = df["flag"] != "ok"
        print(f"human masks {len(df)} (non-empty), flagged {int(flagged.sum())}")
        for source, part in df.groupby("source"):
            print(f"  {source}: {len(part)} masks, flagged {int((part['flag'] != 'ok').sum())}, lowest side ratio "
                  f"{part['lr_area_ratio'].min():.3f}, lowest box fill {part['box_fill'].min():.3f}, area "
                  f"{part['area_fraction'].min():.3f}-{part['area_fraction'].max():.3f}")
        print(df.loc[flagged, ["image_id", "reason"]].to_string(index=False))
        return
    df = load(sys.argv[1:])
    bad = df["dice"] < BAD
    print(f"films {len(df)}  bad (Dice < {BAD}) {int(bad.sum())}  good {int((~bad).sum())}")
    print("| feature | bad if | threshold (<= 10 % good flagged) | bad caught | good flagged |")
    print("|---|---|---|---|---|")
    for feature, direction in FEATURES.items():
        if feature not in df.columns:  # a qc.csv written before the column existed
            continue
        values = pd.to_numeric(df[feature], errors="coerce").fillna(0.0 if direction == "low" else 1e9)
        good_values = np.sort(values[~bad].to_numpy())
        if direction == "low":
            threshold = float(good_values[int(np.floor(0.10 * len(good_values)))]) if len(good_values) else 0.0
            flagged = values < threshold
        else:
            threshold = float(good_values[int(np.ceil(0.90 * len(good_values))) - 1]) if len(good_values) else 0.0
            flagged = values > threshold
        print(f"| {feature} | {direction} | {threshold:.3f} | {int((flagged & bad).sum())}/{int(bad.sum())} | "
              f"{int((flagged & ~bad).sum())}/{int((~bad).sum())} |")
    flagged = df["flag"].astype(str) != "ok"
    print(f"QC as recorded: bad caught {int((flagged & bad).sum())}/{int(bad.sum())}, "
          f"good flagged {int((flagged & ~bad).sum())}/{int((~bad).sum())}")
    reasons = ["; ".join(feature_reasons(row)) for row in df.to_dict(orient="records")]
    flagged = (df["flag"].astype(str) == "empty") | pd.Series([bool(r) for r in reasons], index=df.index)
    print(f"QC with today's thresholds: bad caught {rate(int((flagged & bad).sum()), int(bad.sum()))}, "
          f"good flagged {rate(int((flagged & ~bad).sum()), int((~bad).sum()))}")
    for name in QC_CHECKS:
        hit = pd.Series([name in failed_checks(r) for r in reasons], index=df.index)
        if hit.any():
            print(f"  {name}: bad {int((hit & bad).sum())}, good {int((hit & ~bad).sum())}")


def rate(k: int, n: int) -> str:
    """k/n with its percentage and Wilson 95 % interval."""
    if n == 0:
        return "0/0"
    ci = binomtest(k, n).proportion_ci(method="wilson")
    return f"{k}/{n} ({100 * k / n:.0f} %, 95 % CI {100 * ci.low:.0f}-{100 * ci.high:.0f} %)"


if __name__ == "__main__":
    main()
