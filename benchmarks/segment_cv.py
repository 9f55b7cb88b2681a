"""Patient-level cross-validation of lung segmentation on a segdata folder: zero-shot vs fine-tuned.

    python benchmarks/segment_cv.py --data SEGDATA --folds 5 [--device cuda] [--recipe frozen|full] --out DIR

Each fold's model is trained by `lungprior.segment.finetune.train_model`, the training loop of `lungprior
finetune` (same views, box jitter, loss and schedule), on the other folds' films, without validation (the last
epoch is kept). With the frozen recipe every film is encoded once per augmented view (`--views`, view 0 = the
film) into DIR/cache/, reused by every fold, and only the mask decoder (and prompt encoder) is trained; the
full recipe (`--recipe full`, meant for a GPU) also trains the image encoder, on the same views. Held-out
films are segmented by the automatic cascade (no ground truth used) and, for reference, with the true
per-lung boxes. Writes DIR/<arm>/masks + qc.csv, DIR/<arm>_eval/ (`lungprior segeval`), DIR/folds/<k>/ (each
fold's training run) and DIR/cv.md, the tables of docs/segmentation.md. Rerunning reuses DIR/cache/ and
finished folds, so a rerun with other auto-cascade settings (`--refine-steps`, `--pad-bottom`, `--grow-steps`,
`--grow`) re-segments the held-out films with the same fold weights (and overwrites the arms).

`--replay DIR` adds the training films of DIR (a segdata or `lungprior phantom` folder; at most
`--replay-max`) to every fold's training set, as `lungprior finetune --replay` does; the default, auto, is
`lungprior finetune`'s (16 synthetic films generated into OUT/replay), `--replay none` trains on DIR alone.
`--synthetic DIR` segments every film of DIR (e.g. `lungprior phantom --n 8 --size 256`) with the base model
and with each fold's model (auto cascade) and writes DIR-level Dice to OUT/synthetic.csv and cv.md: does
fine-tuning on real films regress on the synthetic benchmark?
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupKFold

from lungprior.data.atomic import write_json
from lungprior.data.io import write_mask
from lungprior.data.manifest import SPLITS, read_seg_manifest, resolve
from lungprior.layout import mask_path_for
from lungprior.segment.embeddings import EmbeddingCache
from lungprior.segment.finetune import FinetuneConfig, check_pairs, lung_boxes, train_model
from lungprior.segment.finetune.callbacks import read_metrics
from lungprior.segment.finetune.config import resolve_precision
from lungprior.segment.finetune.data import TrainingPair, load_pairs, read_pair, replay_folder, with_replay
from lungprior.segment.infer.engine import TorchEngine, create_engine
from lungprior.segment.infer.predictor import LungPredictor
from lungprior.segment.infer.prompts import AutoPromptConfig
from lungprior.segment.infer.qc import QC_COLUMNS
from lungprior.segment.registry import create_backend
from lungprior.segment.segeval import evaluate_segmentations, film_metrics

ARMS = ("zeroshot", "zeroshot_gtbox", "finetuned", "finetuned_gtbox")


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="segdata folder (manifest.csv with mask_path, patient_id)")
    p.add_argument("--out", required=True)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--views", type=int, default=6, help="augmented views per film (view 0 = the film)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=8, help="views per step (one prompt per lung: 16 prompts)")
    p.add_argument("--jitter-in", type=float, default=0.04, help="box sides move inward by up to this fraction")
    p.add_argument("--jitter-out", type=float, default=0.10, help="box sides move outward by up to this fraction")
    p.add_argument("--prior-prompts", type=float, default=0.25,
                   help="fraction of training views prompted with the cascade's prior boxes (0: own boxes only)")
    p.add_argument("--recipe", choices=("frozen", "full", "none"), default="frozen",
                   help="none: zero-shot arms only (no training)")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms to segment (of {', '.join(ARMS)})")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads on the CPU (0: leave as is)")
    p.add_argument("--refine-steps", type=int, default=1, help="auto cascade: refined decodes (AutoPromptConfig)")
    p.add_argument("--pad-bottom", type=float, default=None, help="auto cascade: box padding below each lung")
    p.add_argument("--grow-steps", type=int, default=0, help="auto cascade: decodes that grow boxes the lung reaches")
    p.add_argument("--grow", type=float, default=0.06, help="auto cascade: how far a reached box edge moves")
    p.add_argument("--replay", default="auto",
                   help="also train every fold on this folder's training films; auto (as `lungprior finetune`): "
                        "16 synthetic films generated into OUT/replay; none: the real films alone")
    p.add_argument("--replay-max", type=int, default=None, help="at most this many --replay films")
    p.add_argument("--synthetic", default=None, help="score each fold's model on this folder's films too")
    return p.parse_args()


def folds_of(df: pd.DataFrame, k: int) -> np.ndarray:
    """Fold index per film; all films of a patient share a fold (GroupKFold: deterministic, balanced)."""
    groups = df["patient_id"].astype(str) if "patient_id" in df.columns else df["image_id"].astype(str)
    fold = np.zeros(len(df), np.int64)
    for i, (_, test) in enumerate(GroupKFold(n_splits=k).split(df, groups=groups)):
        fold[test] = i
    return fold


def film_pairs_of(folder: Path) -> list[TrainingPair]:
    """Every image–mask pair of a segdata or synthetic-benchmark folder, whatever its split."""
    return [p for split in SPLITS for p in load_pairs(folder, split)]


def film_pairs(df: pd.DataFrame) -> list[TrainingPair]:
    """One image–mask pair per manifest row (whatever its split), in row order."""
    return [TrainingPair(str(r["image_id"]), resolve(df, r["path"]), resolve(df, r["mask_path"]), str(r["split"]))
            for _, r in df.iterrows()]


def fold_config(args: argparse.Namespace, folder: Path, k: int) -> FinetuneConfig:
    """The fold's training settings; a fold folder trained with other settings is cleared."""
    cfg = FinetuneConfig(
        data=args.data, out=str(folder), epochs=args.epochs, views=args.views, batch_size=args.batch_size,
        lr=args.lr, jitter_in=args.jitter_in, jitter_out=args.jitter_out, prior_prompts=args.prior_prompts,
        seed=args.seed + k, devices=1,
        freeze_encoder="no" if args.recipe == "full" else "yes",
        accelerator="gpu" if args.device.startswith("cuda") else "cpu", replay=args.replay,
        replay_max=args.replay_max,
    )
    saved = folder / "config.json"
    if saved.is_file() and FinetuneConfig.from_json(saved) != cfg:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg.to_json(saved)
    return cfg


def predictor_for(backend, prompts: AutoPromptConfig, cache: EmbeddingCache, recipe: str) -> LungPredictor:
    """The one lung predictor (border crop, cascade, QC); embeddings from `cache` unless the encoder was trained."""
    return LungPredictor(backend, TorchEngine(backend), prompts, cache=cache if recipe != "full" else None,
                         store=recipe != "full")


def predict_film(predictor: LungPredictor, pair: TrainingPair, image: np.ndarray, truth: np.ndarray | None):
    """Auto-cascade prediction, or one with the true per-lung boxes when `truth` is given."""
    film = predictor.set_film(image, pair.image_id, pair.image)
    if truth is None:
        return predictor.predict("cascade", film=film)
    return predictor.predict("boxes", lung_boxes(truth), source="gt", film=film)


def write_arm(out: Path, image_id: str, pred, qc_rows: list) -> None:
    write_mask(mask_path_for(out / "masks", image_id), pred.mask)
    qc_rows.append(pred.qc)


def synthetic_rows(model: str, predictor: LungPredictor, films: list) -> list[dict]:
    """Auto-cascade Dice of `model` on each (pair, image, truth)."""
    rows = []
    for pair, image, truth in films:
        pred = predict_film(predictor, pair, image, None)
        rows.append({"image_id": pair.image_id, "model": model, "dice": film_metrics(pred.mask, truth)["dice"]})
    return rows


def table(summaries: dict[str, dict], label: str) -> list[str]:
    lines = [f"| {label} | n | Dice mean | median | p10 | min | < 0.90 | HD95 mean | median | p90 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for arm, s in summaries.items():
        if not s or s.get("n", 0) == 0:
            continue
        d, h = s["dice"], s["hd95"]
        lines.append(f"| {arm} | {s['n']} | {d['mean']:.3f} | {d['median']:.3f} | {d['p10']:.3f} | {d['min']:.3f} | "
                     f"{s['below_0.90']} | {h['mean']:.1f} | {h['median']:.1f} | {h['p90']:.1f} |")
    return lines


def main() -> None:
    args = parse()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    manifest = Path(args.data) / "manifest.csv"
    df = read_seg_manifest(manifest).sort_values("image_id", kind="stable").reset_index(drop=True)
    df.attrs["root"] = str(manifest.resolve().parent)
    fold = folds_of(df, args.folds)
    pairs = film_pairs(df)
    start = time.perf_counter()
    base = create_backend("litemedsam", None, device)
    engine = create_engine(base, "auto" if device.type == "cpu" else "torch")
    cache = EmbeddingCache(out / "cache", base, encoder=engine.encode)
    args.views = args.views if args.recipe != "none" else 1
    encoded = args.views if args.recipe == "frozen" else 1
    pairs, errors = check_pairs(pairs, cache, views=encoded, seed=args.seed, progress=True)
    replay = replay_folder(args.replay, args.data, out)
    replay = with_replay(pairs, replay, args.replay_max)[len(pairs):]  # refuses ids that --data has too
    replay, replay_errors = check_pairs(replay, cache, views=encoded, seed=args.seed, progress=True)
    if errors or replay_errors:
        sys.exit(f"unusable films: {errors + replay_errors}")
    synthetic = []
    if args.synthetic:
        checked, bad = check_pairs(film_pairs_of(Path(args.synthetic)), cache, progress=True)
        if bad:
            sys.exit(f"unusable synthetic films: {bad}")
        synthetic = [(pair, *read_pair(pair)[:2]) for pair in checked]
    films = [read_pair(pair) for pair in pairs]
    t_encode = time.perf_counter() - start

    qc = {arm: [] for arm in ARMS}
    wanted = set(args.arms.split(","))
    if not wanted <= set(ARMS):
        sys.exit(f"--arms: unknown arm(s) {', '.join(sorted(wanted - set(ARMS)))}; choose from {', '.join(ARMS)}")
    prompts = AutoPromptConfig(refine_steps=args.refine_steps, pad_bottom=args.pad_bottom,
                               grow_steps=args.grow_steps, grow=args.grow)
    base_predictor = predictor_for(base, prompts, cache, "frozen")
    syn_rows = synthetic_rows("zeroshot", base_predictor, synthetic)
    for i, pair in enumerate(pairs):
        for arm, truth in (("zeroshot", None), ("zeroshot_gtbox", films[i][1])):
            if arm not in wanted:
                continue
            write_arm(out / arm, pair.image_id, predict_film(base_predictor, pair, films[i][0], truth), qc[arm])
    losses = {}
    t_train = 0.0
    arms = [arm for arm in (ARMS if args.recipe != "none" else ARMS[:2]) if arm in wanted]
    for k in range(args.folds if args.recipe != "none" else 0):
        cfg = fold_config(args, out / "folds" / str(k), k)
        tuned = type(base)(copy.deepcopy(base.model), device)
        t0 = time.perf_counter()
        train_model(cfg, tuned, [pairs[i] for i in np.flatnonzero(fold != k)] + replay, None,
                    cache=cache if args.recipe == "frozen" else None, accelerator=cfg.accelerator,
                    precision=resolve_precision("auto", cfg.accelerator))
        t_train += time.perf_counter() - t0
        losses[k] = [row["train_loss"] for row in read_metrics(Path(cfg.out) / "metrics.csv")]
        tuned.device = device
        tuned.model.to(device).eval()
        predictor = predictor_for(tuned, prompts, cache, args.recipe)
        syn_rows += synthetic_rows(f"fold{k}", predictor, synthetic)
        for i in np.flatnonzero(fold == k):
            for arm, truth in (("finetuned", None), ("finetuned_gtbox", films[i][1])):
                if arm not in wanted:
                    continue
                write_arm(out / arm, pairs[i].image_id, predict_film(predictor, pairs[i], films[i][0], truth),
                          qc[arm])
        print(f"fold {k + 1}/{args.folds}: last epoch loss {losses[k][-1]:.4f}", file=sys.stderr, flush=True)
    summaries, by_view = {}, {}
    for arm in arms:
        pd.DataFrame(qc[arm], columns=list(QC_COLUMNS)).to_csv(out / arm / "qc.csv", index=False)
        result = evaluate_segmentations(manifest, out / arm, out / f"{arm}_eval", worst=8, gallery=True)
        summaries[arm] = result.summary["all"]
        by_view[arm] = result.summary["by_view"]
    timing = {"encode_s": t_encode, "train_s": t_train, "total_s": time.perf_counter() - start}
    write_json(out / "cv.json", {"args": vars(args), "summaries": summaries, "by_view": by_view, "losses": losses,
                                 "timing": timing,
                                 "folds": {str(i): int(f) for i, f in zip(df["image_id"], fold, strict=True)}})
    lines = [f"{args.folds}-fold patient-level CV, {len(df)} films, {df['patient_id'].nunique()} patients, "
             f"recipe {args.recipe}, {args.views} views, {args.epochs} epochs, device {args.device}; auto cascade "
             f"(refine_steps {args.refine_steps}, pad_bottom {args.pad_bottom}, grow_steps {args.grow_steps}, "
             f"grow {args.grow})", ""]
    lines += [*table(summaries, "arm"), ""]
    for view in sorted({v for arm in by_view for v in by_view[arm]}):
        lines += [*table({arm: by_view[arm].get(view, {}) for arm in arms}, f"{view} films"), ""]
    if syn_rows:
        syn = pd.DataFrame(syn_rows)
        syn.to_csv(out / "synthetic.csv", index=False)
        means = syn.groupby("model", sort=False)["dice"].mean()
        folds_mean = means.drop("zeroshot")
        lines.append(f"synthetic films ({args.synthetic}, {len(synthetic)} films), auto cascade, mean Dice: zero-shot "
                     f"{means['zeroshot']:.3f}" + (f"; fine-tuned, mean over folds {folds_mean.mean():.3f} (folds "
                     f"{folds_mean.min():.3f} to {folds_mean.max():.3f})" if len(folds_mean) else ""))
        lines.append("")
    lines.append(f"timing (s): {json.dumps({k: round(v, 1) for k, v in timing.items()})}")
    (out / "cv.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
