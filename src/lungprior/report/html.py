"""`write_report`: the experiment's single self-contained HTML page (all images embedded)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lungprior import __version__
from lungprior.data.atomic import atomic_open
from lungprior.data.io import read_image, read_mask
from lungprior.data.manifest import read_manifest, resolve
from lungprior.errors import LungpriorError
from lungprior.experiment.config import ExperimentConfig
from lungprior.labels import FINDINGS, LABELS, NO_FINDING
from lungprior.report import figures
from lungprior.report.findings import findings_sentences, p_column
from lungprior.report.priors import prior_sections
from lungprior.report.recommend import recommendation_section

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;color:#222}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:0.85em;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 7px}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums} .sig{color:#c0392b;font-weight:bold}
img{max-width:100%} .note{color:#666;font-size:0.85em}
"""


def _table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        cells = []
        for v in row:
            if isinstance(v, float):
                cells.append(f'<td class="num">{"" if np.isnan(v) else f"{v:.3f}"}</td>')
            else:
                cells.append(f"<td>{v if str(v).startswith('<span') else html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _dataset_section(manifest: Path) -> str:
    df = read_manifest(manifest)
    counts = df.groupby("split")[list(LABELS)].sum().T
    counts.loc["images"] = df.groupby("split").size()
    counts.loc["patients"] = df.groupby("split")["patient_id"].nunique()
    counts = counts.reindex(columns=[c for c in ("train", "val", "test") if c in counts.columns])
    return f"<h2>Dataset</h2><p>{html.escape(str(manifest))}</p>" + _table(counts.reset_index(names="label"))


def _segmentation_section(cfg: ExperimentConfig, manifest: Path, seg: dict | None) -> str:
    if seg is None:
        return ""
    parts = ["<h2>Segmentation</h2>", f"<p>Source: {html.escape(cfg.segmentation.source)}"
             + (f", backend {html.escape(cfg.segmentation.backend)}, prompts {html.escape(cfg.segmentation.prompt)}"
                if cfg.segmentation.source == "model" else "") + "</p>"]
    if seg.get("finetune"):
        ft = seg["finetune"]
        rows = [{"weights": k, **{m: v for m, v in d.items()}} for k, d in (ft.get("test") or {}).items()]
        if rows:
            parts.append("<p>Fine-tuning, lung segmentation on the test split (ground-truth boxes):</p>"
                         + _table(pd.DataFrame(rows)))
    if seg.get("quality"):
        q = pd.DataFrame([{"split": k, **v} for k, v in seg["quality"]["splits"].items()])
        parts.append("<p>Automatic (prompt-free) segmentation vs ground-truth lungs:</p>" + _table(q))
    qc = Path(seg.get("qc", ""))
    if qc.is_file():
        qdf = pd.read_csv(qc)
        col = next((c for c in qdf.columns if "area" in c and "frac" in c), None)
        if col:
            parts.append(_img(figures.histogram(qdf[col].to_numpy(dtype=float), "QC: lung area fraction", col),
                              "QC histogram"))
        flag = next((c for c in qdf.columns if c == "flag"), None)
        if flag:
            parts.append(f"<p>Flagged masks: {int(qdf[flag].fillna('').astype(str).ne('').sum())} of {len(qdf)}</p>")
    parts.append(_overlay(cfg, manifest, Path(seg["masks_dir"])))
    return "".join(parts)


def _overlay(cfg: ExperimentConfig, manifest: Path, masks_dir: Path) -> str:
    from lungprior.segment.infer.paths import mask_path_for

    df = read_manifest(manifest)
    test = df[df["split"] == "test"].head(4)
    images, lungs, spacing, titles = [], [], [], []
    for _, row in test.iterrows():
        try:
            img, _ = read_image(resolve(df, row["path"]))
            lungs.append(read_mask(mask_path_for(masks_dir, row["image_id"]), shape=img.shape))
        except LungpriorError:  # a missing image or mask only drops that picture
            continue
        images.append(img)
        spacing.append(float(row["pixel_spacing_mm"]) if pd.notna(row["pixel_spacing_mm"]) else None)
        titles.append(str(row["image_id"]))
    specs = [m.spec() for m in cfg.masks if m.mode != "original"]
    if not images or not specs:
        return ""
    return "<p>Masks on test images:</p>" + _img(figures.mask_overlay_figure(images, lungs, specs, spacing, titles),
                                                  "mask overlays")


def _auroc_table(results: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    sig = set()
    for _, r in comparisons.iterrows():
        p = r[p_column(r["target"])]
        if pd.notna(p) and p < 0.05:
            sig.add((r["backbone"], r["seed"], r["mask"], "macro" if r["target"] == "macro AUROC" else r["target"]))
    rows = []
    for (backbone, mask), part in results.groupby(["backbone", "mask"], sort=False):
        row: dict[str, Any] = {"backbone": backbone, "mask": mask}
        for target in (*FINDINGS, "macro", NO_FINDING):
            t = part[part["class"] == target]
            if t.empty or t["auroc"].isna().all():
                row[target] = "n/a"
                continue
            star = any((backbone, s, mask, target) in sig for s in t["seed"])
            text = f"{t['auroc'].mean():.3f} [{t['ci_low'].mean():.3f}, {t['ci_high'].mean():.3f}]"
            row[target] = f'<span class="{"sig" if star else ""}">{text}{" *" if star else ""}</span>'
        rows.append(row)
    return _table(pd.DataFrame(rows))


def write_report(cfg: ExperimentConfig, exp: Path, runs: list[dict[str, Any]], data: dict, seg: dict | None) -> Path:
    """Write `exp/report.html` from the experiment's tables and run folders."""
    results = pd.read_csv(exp / "results.csv")
    comparisons = pd.read_csv(exp / "comparisons.csv")
    efficiency = pd.read_csv(exp / "efficiency.csv")
    manifest = Path(data["manifest"])
    sections = [f"<h1>lungprior report: {html.escape(cfg.name)}</h1>",
                f'<p class="note">lungprior {__version__}; {len(runs)} runs; backbones '
                f'{", ".join(cfg.training.backbones)}; seeds {cfg.training.seeds}</p>']
    sections.append("<h2>Findings</h2><ul>" + "".join(
        f"<li>{s}</li>" for s in findings_sentences(results, comparisons)) + "</ul>")
    sections.append(_dataset_section(manifest))
    sections.append(_segmentation_section(cfg, manifest, seg))
    sections.append("<h2>AUROC per backbone, mask and class</h2><p class='note'>Mean over seeds; 95% CI from a "
                    "patient-clustered bootstrap. * = differs from the original images (Holm-adjusted paired DeLong "
                    "p &lt; 0.05; macro: paired bootstrap p &lt; 0.05).</p>" + _auroc_table(results, comparisons))
    sections.append(_img(figures.auroc_bars(results, "macro", "Macro AUROC (five findings)"), "macro AUROC"))
    sections.append(prior_sections(results, efficiency, _table))
    sections.append(recommendation_section(runs, cfg.evaluation.no_finding, _table,
                                           n_resamples=cfg.evaluation.bootstrap))
    if results["mask"].nunique() > 2:
        sections.append(_img(figures.looseness_figure(results), "AUROC vs looseness"))
    sections.append("<h2>ROC curves</h2>")
    for backbone in cfg.training.backbones:
        preds = {r["mask"]: pd.read_csv(Path(r["run_dir"]) / "predictions.csv")
                 for r in runs if r["backbone"] == backbone and r["seed"] == cfg.training.seeds[0]}
        sections.append(f"<p>{html.escape(backbone)}, seed {cfg.training.seeds[0]}</p>"
                        + _img(figures.roc_figure(preds, cfg.evaluation.no_finding), f"ROC {backbone}"))
    sections.append(f"<h2>No Finding</h2><p>Score: {'1 − max p' if cfg.evaluation.no_finding == 'max' else '∏(1 − p)'}"
                    "</p>" + _img(figures.auroc_bars(results, NO_FINDING, "No Finding AUROC"), "No Finding"))
    nf = comparisons[comparisons["target"] == NO_FINDING]
    if not nf.empty:
        sections.append(_table(nf[["backbone", "seed", "mask", "auc_a", "auc_b", "diff", "p", "p_holm"]]))
    sections.append("<h2>Training efficiency</h2>" + _img(figures.efficiency_figure(efficiency), "efficiency")
                    + _table(efficiency))
    att = results[results["attention_in_lung"].notna()]
    if not att.empty:
        pivot = att.pivot_table(index=["backbone", "mask"], columns="class", values="attention_in_lung").reset_index()
        sections.append("<h2>Where the models look</h2><p>Share of Grad-CAM energy inside the tight lung mask, "
                        "positive test images of each class (macro: mean over classes).</p>" + _table(pivot))
        pg = att.pivot_table(index=["backbone", "mask"], columns="class", values="pointing_game")
        if not pg.empty:
            sections.append("<p>Pointing game (CAM maximum on the lesion):</p>" + _table(pg.reset_index()))
        for r in runs:
            gallery = Path(r["run_dir"]) / "cam_gallery.png"
            if r["seed"] == cfg.training.seeds[0] and r["backbone"] == cfg.training.backbones[0] and gallery.is_file():
                sections.append(f"<p>{html.escape(r['mask'])}</p>" + _img(figures.png_file_uri(str(gallery)), "CAM"))
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>lungprior report: "
            f"{html.escape(cfg.name)}</title><style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    out = exp / "report.html"
    with atomic_open(out, "w", encoding="utf-8") as fh:
        fh.write(page)
    return out
