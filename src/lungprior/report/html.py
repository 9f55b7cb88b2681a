"""`write_report`: the experiment's single self-contained HTML page (all images embedded)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lungprior import __version__
from lungprior.data.atomic import atomic_open
from lungprior.data.io import read_image, read_mask
from lungprior.data.manifest import read_manifest, resolve
from lungprior.errors import LungpriorError
from lungprior.evaluate.cam_gallery import CAPTION as CAM_CAPTION
from lungprior.evaluate.testability import format_p
from lungprior.experiment.config import ExperimentConfig
from lungprior.experiment.segquality import flagged_count
from lungprior.labels import FINDINGS, LABELS, NO_FINDING
from lungprior.layout import METRICS
from lungprior.report import claims, figures
from lungprior.report.findings import findings_sentences, seed_marker
from lungprior.report.forest import forest_section
from lungprior.report.headline import headline_html
from lungprior.report.priors import prior_sections
from lungprior.report.recommend import calibrated_predictions, recommendation_section
from lungprior.report.run_warnings import experiment_warnings, warnings_html

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1200px;padding:0 12px;
color:#222;overflow-wrap:anywhere}
h1{font-size:1.6em} h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.scroll{overflow-x:auto;max-width:100%;margin:8px 0}
table{border-collapse:collapse;font-size:0.85em;overflow-wrap:normal} td,th{border:1px solid #ddd;padding:3px 7px}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums} .sig{color:#c0392b;font-weight:bold}
img{max-width:100%;height:auto;display:block;margin:8px 0} .note{color:#666;font-size:0.85em}
.headline{background:#f6f8fa;border-left:4px solid #2c7be5;padding:4px 12px}
.warnings{background:#fff8e6;border-left:4px solid #e0a800;padding:4px 12px;margin-top:8px;font-size:0.9em}
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
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


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
                if cfg.segmentation.source == "model" else "")
             + (f"; the classifiers use the ground-truth lungs, and {html.escape(cfg.segmentation.backend)} segmented "
                f"{seg['check']['films']} test films prompt-free as a check" if seg.get("check") else "") + "</p>"]
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
        if "flag" in qdf.columns:
            parts.append(f"<p>Flagged masks (QC flag not ok): {flagged_count(qdf)} of {len(qdf)}</p>")
    parts.append(_overlay(cfg, manifest, Path(seg["masks_dir"])))
    return "".join(parts)


def _overlay(cfg: ExperimentConfig, manifest: Path, masks_dir: Path) -> str:
    from lungprior.layout import mask_path_for

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
    """Per backbone x mask x class: the AUROC (one seed: with its 95% patient-bootstrap CI; several seeds: the
    mean with the range over seeds) and the per-seed comparison with the original images (↑k/n (sig. s), or
    "not testable" with the counts)."""
    comparisons = claims.prepare(comparisons)
    rows = []
    for (backbone, mask), part in results.groupby(["backbone", "mask"], sort=False):
        row: dict[str, Any] = {"backbone": backbone, "mask": mask}
        for target in (*FINDINGS, "macro", NO_FINDING):
            t = part[part["class"] == target].dropna(subset=["auroc"])
            if t.empty:
                row[target] = "n/a"
                continue
            if len(t) == 1:
                text = f"{t['auroc'].iloc[0]:.3f} [{t['ci_low'].iloc[0]:.3f}, {t['ci_high'].iloc[0]:.3f}]"
            else:
                text = f"{t['auroc'].mean():.3f} ({t['auroc'].min():.3f}–{t['auroc'].max():.3f})"
            cmp_target = "macro AUROC" if target == "macro" else target
            sel = comparisons[(comparisons["backbone"] == backbone) & (comparisons["mask"] == mask)
                              & (comparisons["target"] == cmp_target)] if mask != "original" else comparisons[:0]
            marker, all_sig = seed_marker(sel, cmp_target) if not sel.empty else ("", False)
            if marker == "not testable":
                marker += f" ({claims.short_note(sel['note'].iloc[0])})"
            row[target] = (f'<span class="{"sig" if all_sig else ""}">{html.escape(text)}'
                           f'{" " + html.escape(marker) if marker else ""}</span>')
        rows.append(row)
    return _table(pd.DataFrame(rows))


def _auroc_note(results: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    tests = sorted({str(t).split(",")[0] for t in comparisons.get("test", pd.Series(dtype=str)).dropna()
                    if not str(t).startswith("paired patient bootstrap")})
    per_class = " / ".join(tests) if tests else "paired test"
    return ("<p class='note'>One seed: AUROC [95% CI, patient-clustered bootstrap]. Several seeds: mean AUROC "
            "(lowest–highest over seeds); the seeds share the test films, so the range is not a confidence "
            "interval. ↑k/n (sig. s): the masked model's AUROC is higher (↓ lower) than on the original images "
            f"in k of n seeds, significantly (adjusted p &lt; 0.05) in s of them; per class and No Finding: "
            f"Holm-adjusted {html.escape(per_class)} p (over the five findings and No Finding); macro: paired "
            "patient bootstrap p, Holm-adjusted over the masked inputs compared with the same original run. "
            "Not testable: too few patients with or without the finding for a test (the counts are given); such "
            "a comparison is never called significant. Bold red: significant in every seed in the same "
            "direction.</p>")


def comparison_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Comparison rows as shown: p and adjusted p printed with their bounds, untestable rows with their note."""
    out = rows.reindex(columns=["backbone", "seed", "mask", "target", "auc_a", "auc_b", "diff", "ci_low", "ci_high",
                                "n_pos", "n_pos_patients", "n_neg", "n_neg_patients", "test"])
    out.insert(9, "p", [format_p(r["p"], claims.p_bounds_row(r)) if claims.testable(r) else "–"
                        for _, r in rows.iterrows()])
    out.insert(10, "adjusted p", [claims.p_text(r) for _, r in rows.iterrows()])
    for col in ("n_pos", "n_pos_patients", "n_neg", "n_neg_patients"):  # counts, not measurements
        if col in out.columns:
            out[col] = out[col].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return out.dropna(axis=1, how="all")


EFFICIENCY_COLUMNS = {"backbone": "backbone", "mask": "mask", "seed": "seed", "epochs_run": "epochs",
                      "best_epoch": "best epoch", "best_val_auroc": "best val AUROC", "seconds_per_epoch": "s / epoch",
                      "seconds_to_best": "s to best", "train_images_per_s": "images / s",
                      "peak_memory_mb": "peak MB", "stopped_early": "stopped early"}


def efficiency_rows(efficiency: pd.DataFrame) -> pd.DataFrame:
    """efficiency.csv as shown: the columns a reader compares, with short headers (the input size is above)."""
    keep = [c for c in EFFICIENCY_COLUMNS if c in efficiency.columns]
    return efficiency[keep].rename(columns=EFFICIENCY_COLUMNS)


def calibration_table(runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Per run: No Finding AUROC from calibrated and raw probabilities, mean ECE and Brier raw -> calibrated."""
    rows = []
    for r in runs:
        path = Path(r["run_dir"]) / METRICS
        if not path.is_file():
            continue
        m = json.loads(path.read_text())
        calib, nf = m.get("calibration"), m.get("no_finding", {})
        if not calib:
            continue
        row = {"backbone": r.get("backbone"), "mask": r.get("mask"), "seed": r.get("seed"),
               "No Finding AUROC (calibrated)": nf.get("auroc", {}).get("estimate"),
               "No Finding AUROC (raw)": nf.get("auroc_uncalibrated")}
        row["raw"] = ", ".join(k for k, v in calib.get("params", {}).items()
                               if isinstance(v, dict) and v.get("method") == "raw") or "–"
        for metric in ("ece", "brier"):
            for kind in ("raw", "calibrated"):
                row[f"mean {metric.upper() if metric == 'ece' else 'Brier'} {kind}"] = float(
                    np.mean([calib[kind][c][metric] for c in FINDINGS]))
        rows.append(row)
    return pd.DataFrame(rows)


def _calibration_section(runs: list[dict[str, Any]]) -> str:
    table = calibration_table(runs)
    if table.empty:
        return ""
    return ("<h2>Calibration</h2><p class='note'>Per-class Platt calibration with a positive slope, fitted on "
            "validation (see docs/calibration.md), measured on test: expected calibration error (10 bins) and "
            "Brier score averaged over the five findings, and the No Finding AUROC from calibrated vs raw "
            "probabilities (per-class AUROCs do not change). Raw: findings kept uncalibrated (too few validation "
            "films with the finding, or perfect separation); the warnings above give the reason.</p>"
            + _table(table.astype({c: float for c in table.columns[3:] if c != "raw"})))


def write_report(cfg: ExperimentConfig, exp: Path, runs: list[dict[str, Any]], data: dict, seg: dict | None) -> Path:
    """Write `exp/report.html` from the experiment's tables and run folders."""
    results = pd.read_csv(exp / "results.csv")
    comparisons = claims.read_comparisons(exp)
    efficiency = pd.read_csv(exp / "efficiency.csv")
    manifest = Path(data["manifest"])
    sections = [f"<h1>lungprior report: {html.escape(cfg.name)}</h1>", headline_html(exp, exp / "report.html"),
                warnings_html(experiment_warnings(exp, runs)), forest_section(comparisons),
                f'<p class="note">lungprior {__version__}; {len(runs)} runs; backbones '
                f'{", ".join(cfg.training.backbones)}; seeds {cfg.training.seeds}</p>']
    sections.append("<h2>Findings</h2><ul>" + "".join(
        f"<li>{s}</li>" for s in findings_sentences(results, comparisons)) + "</ul>")
    sections.append(_dataset_section(manifest))
    sections.append(_segmentation_section(cfg, manifest, seg))
    sections.append("<h2>AUROC per backbone, mask and class</h2>" + _auroc_note(results, comparisons)
                    + _auroc_table(results, comparisons))
    sections.append(_img(figures.auroc_bars(results, "macro", "Macro AUROC (five findings)"), "macro AUROC"))
    sections.append(prior_sections(results, efficiency, _table))
    sections.append(recommendation_section(runs, cfg.evaluation.no_finding, _table,
                                           n_resamples=cfg.evaluation.bootstrap, comparisons=comparisons))
    if results["mask"].nunique() > 2:
        sections.append(_img(figures.looseness_figure(results), "AUROC vs looseness"))
    sections.append("<h2>ROC curves</h2>")
    for backbone in cfg.training.backbones:
        preds = {r["mask"]: calibrated_predictions(r)
                 for r in runs if r["backbone"] == backbone and r["seed"] == cfg.training.seeds[0]}
        sections.append(f"<p>{html.escape(backbone)}, seed {cfg.training.seeds[0]}</p>"
                        + _img(figures.roc_figure(preds, cfg.evaluation.no_finding), f"ROC {backbone}"))
    sections.append(f"<h2>No Finding</h2><p>Score: {'1 − max p' if cfg.evaluation.no_finding == 'max' else '∏(1 − p)'}"
                    " of the per-class probabilities, calibrated on validation (each run's metrics.json also "
                    "holds the AUROC from raw outputs); the ROC curves above, the comparisons and the "
                    "recommendation use the same calibrated scores."
                    "</p>" + _img(figures.auroc_bars(results, NO_FINDING, "No Finding AUROC"), "No Finding"))
    nf = comparisons[comparisons["target"] == NO_FINDING]
    if not nf.empty:
        sections.append("<p class='note'>Masked (auc_a) vs original (auc_b) per seed; diff with its 95% CI and p "
                        "from the test named in the last column (Holm-adjusted over the five findings and No "
                        "Finding; ≤: a bound at the bootstrap's floor). Films and patients with (pos) and without "
                        "(neg) No Finding.</p>" + _table(comparison_rows(nf)))
    sections.append(_calibration_section(runs))
    sections.append("<h2>Training efficiency</h2>" + _img(figures.efficiency_figure(efficiency), "efficiency")
                    + _table(efficiency_rows(efficiency)))
    att = results[results["attention_in_lung"].notna()]
    unmeasured = _unmeasured_attention(runs)
    if att.empty and unmeasured:
        sections.append(f"<h2>Where the models look</h2><p>{html.escape(unmeasured)}.</p>")
    if not att.empty:
        pivot = att.pivot_table(index=["backbone", "mask"], columns="class", values="attention_in_lung").reset_index()
        sections.append("<h2>Where the models look</h2><p>Share of Grad-CAM energy inside the tight lung mask, "
                        "positive test images of each class (macro: mean over classes).</p>" + _table(pivot))
        pg = att.pivot_table(index=["backbone", "mask"], columns="class", values="pointing_game")
        if not pg.empty:
            sections.append("<p>Pointing game (CAM maximum on the lesion):</p>" + _table(pg.reset_index()))
        galleries = [(r["mask"], Path(r["run_dir"]) / "cam_gallery.png") for r in runs
                     if r["seed"] == cfg.training.seeds[0] and r["backbone"] == cfg.training.backbones[0]]
        galleries = [(mask, path) for mask, path in galleries if path.is_file()]
        if galleries:
            sections.append(f"<p class='note'>Grad-CAM galleries. {html.escape(CAM_CAPTION)}</p>")
        for mask, path in galleries:
            sections.append(f"<p>{html.escape(mask)}</p>" + _img(figures.png_file_uri(str(path)), "CAM"))
    return write_page(exp / "report.html", f"lungprior report: {cfg.name}", STYLE, "".join(sections))


def _unmeasured_attention(runs: list[dict[str, Any]]) -> str:
    """Why attention in the lungs was not measured (a too coarse Grad-CAM map), from the first run that says so."""
    for r in runs:
        try:
            att = json.loads((Path(r["run_dir"]) / METRICS).read_text()).get("attention") or {}
        except (OSError, ValueError):
            continue
        if att.get("not_measurable"):
            return str(att["not_measurable"])
    return ""


def write_page(path: Path, title: str, style: str, body: str) -> Path:
    """A self-contained HTML page (`title` escaped, `style` and `body` as given), written atomically."""
    text = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>")
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path
