"""`run_experiment`: data -> segmentation -> masks x backbones x seeds -> train -> evaluate -> compare -> report.

Folder layout: `EXP/data/`, `EXP/segmentation/`, `EXP/runs/<backbone>__<mask>__seed<s>/`, and at the top
`results.csv`, `summary.csv`, `comparisons.csv`, `efficiency.csv`, `report.html`. Every stage is skipped when its
inputs and settings are unchanged, and resumes when it was killed. Launched on several processes (torchrun, SLURM,
or Lightning's own DDP launcher), the lead process does everything but training alone and the others join each
training run (see `ranks`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lungprior.experiment.config import ExperimentConfig, MaskSettings, SegmentationSettings
from lungprior.experiment.progress import RunProgress
from lungprior.experiment.stages import (
    StageOutcome,
    content_hash,
    file_fingerprint,
    finished_record,
    run_stage,
    wait_for_stage,
)
from lungprior.quiet import lightning_quiet
from lungprior.ranks import is_lead

Log = Callable[[str], None]
#: Training settings that say how a run is computed, not what it computes: a finished run is reused across them.
RUNTIME_TRAINING = frozenset({"devices", "accelerator", "strategy", "num_nodes", "precision", "workers"})


@dataclass
class ExperimentResult:
    """Where everything went."""

    exp_dir: Path
    manifest: Path
    masks_dir: Path | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    stages_run: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None


def data_stage(cfg: ExperimentConfig, exp: Path) -> StageOutcome:
    """Generate the benchmark, curate NIH, or take a manifest as it is."""
    ds = cfg.dataset
    if ds.kind == "phantom":
        from lungprior.data.phantom import DEFAULT_PREVALENCE, PhantomConfig, generate_benchmark

        p = ds.phantom
        pcfg = PhantomConfig(n=p.n, size=p.size, seed=p.seed, bias=p.bias, test_bias=p.test_bias,
                             val_bias=p.val_bias, context=p.context,
                             conspicuity=p.conspicuity, finding_conspicuity=dict(p.finding_conspicuity or {}),
                             markers=p.markers, val_fraction=p.val_fraction, test_fraction=p.test_fraction,
                             prevalence={**DEFAULT_PREVALENCE, **(p.prevalence or {})})

        def work(folder: Path) -> dict[str, Any]:
            generate_benchmark(pcfg, folder / "benchmark", progress=True)
            return {"manifest": str(folder / "benchmark" / "manifest.csv")}

        return run_stage("data", exp / "data", content_hash("phantom", pcfg.to_dict()), work)
    if ds.kind == "nih":
        from lungprior.data.nih import curate_nih, write_curation

        n = ds.nih
        assert n is not None
        key = content_hash("nih", n.model_dump(), [file_fingerprint(f) for f in (n.labels, n.train_list, n.test_list)])

        def work_nih(folder: Path) -> dict[str, Any]:
            result = curate_nih(n.labels, images_dir=n.images, train_list=n.train_list, test_list=n.test_list,
                                val_fraction=n.val_fraction, no_finding_ratio=n.no_finding_ratio, views=n.views,
                                seed=n.seed, progress=True)
            manifest, _ = write_curation(result, folder)
            return {"manifest": str(manifest)}

        return run_stage("data", exp / "data", key, work_nih)
    manifest = str(Path(ds.manifest or "").resolve())
    return run_stage("data", exp / "data", content_hash("manifest", file_fingerprint(manifest)),
                     lambda folder: {"manifest": manifest})


def _check(cfg: ExperimentConfig, manifest: Path, folder: Path) -> dict[str, Any]:
    """Segment the first `check_films` test films with the model (prompt-free) and score them against the truth."""
    seg = cfg.segmentation
    if not seg.check_films:
        return {}
    from lungprior.data.manifest import read_manifest, resolve, write_manifest
    from lungprior.experiment.segquality import segmentation_quality
    from lungprior.segment.infer.runner import segment_manifest

    df = read_manifest(manifest)
    test = df[df["split"] == "test"].head(seg.check_films).copy()
    test["path"] = [str(resolve(df, p)) for p in test["path"]]
    sample = folder / "check_manifest.csv"
    write_manifest(test, sample)
    result = segment_manifest(sample, folder / "seg", backend=seg.backend, weights=seg.checkpoint, prompt=seg.prompt,
                              batch_size=seg.batch_size, progress=True)
    quality = segmentation_quality(sample, result.masks_dir, manifest.parent / "masks")
    return {"check": {"films": len(test), "masks_dir": str(result.masks_dir)}, "qc": str(result.qc_path),
            "failed": result.failed, "quality": quality}


def segmentation_stage(cfg: ExperimentConfig, exp: Path, data: StageOutcome) -> StageOutcome:
    """Lung masks for every image: ground truth, a given folder, or (fine-tuned) LiteMedSAM/MedSAM."""
    seg = cfg.segmentation
    manifest = Path(data.record["manifest"])
    chexmask = seg.source == "chexmask"  # its fields join the key only when used: older stages keep their hash
    settings = seg.model_dump(exclude=None if chexmask else {"file", "min_rca"})
    key = content_hash("segmentation", data.hash, settings, file_fingerprint(seg.checkpoint),
                       *([file_fingerprint(seg.file)] if chexmask else []))
    if seg.source == "ground_truth":
        return run_stage("segmentation", exp / "segmentation", key,
                         lambda folder: {"masks_dir": str(manifest.parent / "masks"), **_check(cfg, manifest, folder)})
    if seg.source == "chexmask":
        return run_stage("segmentation", exp / "segmentation", key, lambda folder: _chexmask(seg, manifest, folder))
    if seg.source == "masks_dir":
        from lungprior.layout import resolve_masks_dir

        given = seg.masks_dir or ""
        return run_stage("segmentation", exp / "segmentation", key,
                         lambda folder: {"masks_dir": str(resolve_masks_dir(given, "masks_dir").resolve())})

    def work(folder: Path) -> dict[str, Any]:
        from lungprior.experiment.segquality import segmentation_quality
        from lungprior.segment.infer.runner import segment_manifest

        weights = seg.checkpoint
        record: dict[str, Any] = {}
        if seg.finetune is not None:
            from lungprior.segment.finetune.config import FinetuneConfig
            from lungprior.segment.finetune.train import finetune

            ft = seg.finetune
            data_dir = str(manifest.parent) if ft.data == "phantom" else ft.data
            result = finetune(FinetuneConfig(
                data=data_dir, out=str(folder / "finetune"), backend=seg.backend, checkpoint=seg.checkpoint,
                epochs=ft.epochs, batch_size=ft.batch_size, lr=ft.lr, freeze_encoder=ft.freeze_encoder,
                max_train=ft.max_train, replay=ft.replay, prior_prompts=ft.prior_prompts, seed=cfg.training.seeds[0],
            ), progress=True)
            weights = str(result.files["best.pth"])
            record["finetune"] = {"best_epoch": result.best_epoch, "best_val": result.best_val, "test": result.test}
        embeddings = folder / "finetune" / "cache"  # a frozen-encoder fine-tune already encoded these films
        seg_result = segment_manifest(manifest, folder / "seg", backend=seg.backend, weights=weights,
                                      prompt=seg.prompt, batch_size=seg.batch_size, progress=True,
                                      embedding_cache=embeddings if embeddings.is_dir() else None)
        record.update(masks_dir=str(seg_result.masks_dir), qc=str(seg_result.qc_path), failed=seg_result.failed,
                      qc_flagged=seg_result.qc_flagged, flag_reasons=seg_result.flag_reasons,
                      weights=str(Path(weights).resolve()) if weights else None)
        gt = manifest.parent / "masks"
        if cfg.dataset.kind == "phantom" and gt.is_dir():
            record["quality"] = segmentation_quality(manifest, seg_result.masks_dir, gt)
        return record

    return run_stage("segmentation", exp / "segmentation", key, work)


def _chexmask(seg: SegmentationSettings, manifest: Path, folder: Path) -> dict[str, Any]:
    """CheXmask's published masks as the segmentation; every run uses the films that have one."""
    import pandas as pd

    from lungprior.data.chexmask import convert_chexmask
    from lungprior.data.manifest import read_manifest, write_manifest
    from lungprior.layout import mask_path_for

    result = convert_chexmask(seg.file or "", manifest, folder / "chexmask", min_rca=seg.min_rca)
    df = read_manifest(manifest)
    keep = df["image_id"].map(lambda i: mask_path_for(result.masks_dir, str(i)).is_file())
    kept = df[keep].copy()
    kept["path"] = [str((manifest.parent / p).resolve()) if not Path(p).is_absolute() else p
                    for p in kept["path"].astype(str)]
    write_manifest(pd.DataFrame(kept), folder / "manifest.csv")
    return {"masks_dir": str(result.masks_dir), "manifest": str(folder / "manifest.csv"),
            "excluded": result.excluded, "excluded_csv": str(result.excluded_path)}


def run_name(backbone: str, mask: MaskSettings, seed: int) -> str:
    return f"{backbone}__{mask.spec().key()}__seed{seed}"


def run_stage_for(cfg: ExperimentConfig, exp: Path, data: StageOutcome, seg: StageOutcome, backbone: str,
                  mask: MaskSettings, seed: int, *, lead: bool | None = None) -> StageOutcome:
    """Train and evaluate one grid cell (other processes of a DDP launch train alongside the lead, then wait)."""
    from lungprior.classify.config import TrainConfig
    from lungprior.classify.training import train
    from lungprior.evaluate.run_eval import evaluate_run

    t = cfg.training
    spec = mask.spec()
    own_manifest = seg.name == "segmentation" and "manifest" in seg.record  # CheXmask: films that have a mask
    manifest = seg.record["manifest"] if own_manifest else data.record["manifest"]
    uses_seg = spec.needs_mask or own_manifest
    key = content_hash("run", data.hash, seg.hash if uses_seg else None,
                       t.model_dump(exclude={"backbones", "seeds", *RUNTIME_TRAINING,
                                             *(() if t.allow_qc_fail else ("allow_qc_fail",))}),
                       spec.key(), backbone, seed,
                       cfg.evaluation.model_dump())
    folder = exp / "runs" / run_name(backbone, mask, seed)
    tcfg = TrainConfig(
        manifest=manifest, out=str(folder / "train"), mode=spec.mode,
        masks=seg.record.get("masks_dir"), radius_mm=spec.radius_mm, radius_px=spec.radius_px, hull=spec.hull,
        alpha=spec.alpha, fill=spec.fill, backbone=backbone, image_size=t.image_size, epochs=t.epochs,
        prior_weight=spec.prior_weight, batch_size=t.batch_size, lr=t.lr, weight_decay=t.weight_decay,
        patience=t.patience,
        pretrained=t.pretrained, devices=t.devices, accelerator=t.accelerator, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=t.precision, workers=t.workers, seed=seed, limit_train=t.limit_train,
    )
    if not (is_lead() if lead is None else lead):
        if finished_record(folder, key) is None:
            train(tcfg, progress=False, seg_weights=seg.record.get("weights"), allow_qc_fail=t.allow_qc_fail)
        return wait_for_stage("run", folder, key)

    def work(run: Path) -> dict[str, Any]:
        with lightning_quiet():
            train(tcfg, progress=True, summary=False, seg_weights=seg.record.get("weights"),
                  allow_qc_fail=t.allow_qc_fail)
        ev = cfg.evaluation
        evaluate_run(run / "train", n_resamples=ev.bootstrap, seed=seed, no_finding=ev.no_finding, cam=ev.cam,
                     max_cam=ev.max_cam, progress=False)
        return {"run_dir": str(run / "train"), "backbone": backbone, "mask": spec.key(), "mode": spec.mode,
                "radius_mm": spec.radius_mm, "alpha": spec.alpha, "seed": seed}

    return run_stage("run", folder, key, work)


def _took(outcome: StageOutcome, verb: str) -> str:
    """'generated in 12 s' for a stage this call ran, 'unchanged, skipped' for one it found done."""
    return f"{verb} in {outcome.record.get('seconds', 0):.0f} s" if outcome.ran else "unchanged, skipped"


def _silent(message: str) -> None:
    """The log of processes other than the lead."""


def run_experiment(cfg: ExperimentConfig, exp_dir: str | os.PathLike[str], *, log: Log = print) -> ExperimentResult:
    """Run (or resume) every stage of the experiment into `exp_dir`."""
    from lungprior.experiment.tables import write_tables
    from lungprior.report.html import write_report

    exp = Path(exp_dir)
    lead = is_lead()
    if not lead:
        log = _silent
    exp.mkdir(parents=True, exist_ok=True)
    if lead:
        (exp / "experiment.json").write_text(cfg.model_dump_json(indent=2))
    stages: list[str] = []
    data = data_stage(cfg, exp)
    stages += ["data"] if data.ran else []
    log(f"data: {data.record['manifest']} ({_took(data, 'generated')})")
    needs_masks = any(m.spec().needs_mask for m in cfg.masks)
    seg = segmentation_stage(cfg, exp, data) if needs_masks else None
    if seg is not None:
        stages += ["segmentation"] if seg.ran else []
        log(f"segmentation: {seg.record.get('masks_dir')} ({_took(seg, 'ran')})")
    runs = []
    progress = RunProgress(len(cfg.training.backbones) * len(cfg.training.seeds) * len(cfg.masks))
    for backbone in cfg.training.backbones:
        for seed in cfg.training.seeds:
            for mask in cfg.masks:
                name = run_name(backbone, mask, seed)
                log(progress.starting(len(runs) + 1, name))
                outcome = run_stage_for(cfg, exp, data, seg or data, backbone, mask, seed, lead=lead)
                progress.finished(outcome.record.get("seconds", 0.0), outcome.ran)
                stages += [name] if outcome.ran else []
                log(f"run {name}: {_took(outcome, 'trained and evaluated')}")
                runs.append(outcome.record)
    result = ExperimentResult(exp, Path(data.record["manifest"]),
                              Path(seg.record["masks_dir"]) if seg is not None else None, runs, stages)
    if not lead:  # tables and report are the lead's
        return result
    start = time.perf_counter()
    result.tables = write_tables(cfg, exp, runs, seg.record if seg is not None else None)
    result.report = write_report(cfg, exp, runs, data.record, seg.record if seg is not None else None)
    log(f"tables and report: {result.report} (in {time.perf_counter() - start:.0f} s)")
    return result
