"""The report's figures: the forest plot follows the headline's significance rule, AUROC axes start from a
sensible floor, figures are sized for a page, and the Grad-CAM gallery explains its empty cells."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
from PIL import Image

from lungprior.evaluate.cam import CamExample
from lungprior.evaluate.cam_gallery import EMPTY_CELL, gallery_cells, write_cam_gallery
from lungprior.report.figures import auroc_bars, auroc_floor
from lungprior.report.forest import forest_figure, forest_rows, forest_section


def _png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def _comparison(target: str, p: float, p_holm: float, **extra) -> dict:
    return {"backbone": "resnet18", "seed": 0, "mask": "tight", "versus": "original", "target": target,
            "diff": 0.08, "ci_low": 0.02, "ci_high": 0.14, "p": p, "p_holm": p_holm, "p_bound": False,
            "p_holm_bound": False, **extra}


def test_forest_rows_read_the_adjusted_p_and_testability() -> None:
    rows = pd.DataFrame([
        _comparison("Mass", 0.004, 0.02),
        _comparison("Nodule", 0.01, 0.06),  # significant unadjusted, not after Holm
        _comparison("Edema", 0.001, 0.001, testable=False,
                    note="not testable: 2 films with the finding from 1 patient (needs ≥ 5 patients with and ≥ 5 "
                         "without)"),
        _comparison("macro AUROC", 0.03, 0.06),
        _comparison("Mass", 0.001, 0.001, versus="tight"),  # not a comparison with the original images
    ])
    got = forest_rows(rows).set_index("target")["status"]
    assert got.to_dict() == {"Mass": "significant", "Nodule": "not significant", "Edema": "not testable",
                             "macro AUROC": "not significant"}


def test_forest_figure_one_panel_per_backbone_and_none_without_comparisons() -> None:
    rows = []
    for backbone in ("resnet18", "densenet121"):
        for mask in ("tight", "loose-10mm"):
            for seed in (0, 1):
                for target in ("Mass", "Nodule", "Pneumonia", "Edema", "Fibrosis", "No Finding", "macro AUROC"):
                    rows.append(_comparison(target, 0.2, 0.5, backbone=backbone, mask=mask, seed=seed))
    two = _png(forest_figure(pd.DataFrame(rows)))
    one = _png(forest_figure(pd.DataFrame([r for r in rows if r["backbone"] == "resnet18"])))
    assert 500 <= two.width <= 1000 and two.height > 1.6 * one.height
    assert forest_figure(pd.DataFrame(columns=["backbone", "seed", "mask", "target", "diff"])) is None
    section = forest_section(pd.DataFrame(rows))
    assert section.startswith("<h2>Masked − original, per finding</h2><img id=\"forest\"")
    assert "adjusted p &lt; 0.05" in section and "not testable" in section


def test_auroc_axis_starts_at_05_or_the_lowest_ci_rounded_down() -> None:
    assert auroc_floor(pd.DataFrame({"auroc": [0.7, 0.8], "ci_low": [0.55, 0.62]})) == 0.5
    assert auroc_floor(pd.DataFrame({"auroc": [0.45, 0.8], "ci_low": [0.371, 0.7]})) == 0.3
    assert auroc_floor(pd.DataFrame({"auroc": [0.6], "ci_low": [0.4]})) == 0.4
    assert auroc_floor(pd.DataFrame({"auroc": [np.nan], "ci_low": [np.nan]})) == 0.5


def test_the_macro_plot_is_sized_for_a_page() -> None:
    results = pd.DataFrame([{"backbone": "resnet18", "mask": m, "class": "macro", "auroc": a, "ci_low": a - 0.08,
                             "ci_high": a + 0.08} for m, a in (("original", 0.45), ("tight", 0.6))])
    img = _png(auroc_bars(results, "macro", "Macro AUROC (five findings)"))
    assert img.width >= 550 and img.height >= 300  # was 306 × 280


def _example(finding: str, k: int, flat: bool = False) -> CamExample:
    cam = np.zeros((16, 16)) if flat else np.linspace(0, 1, 256).reshape(16, 16)
    return CamExample(f"film{k}", finding, np.full((16, 16), 120, np.uint8), cam, None, None)


def test_the_cam_gallery_names_its_empty_cells(tmp_path) -> None:
    examples = [_example("Mass", 0), _example("Mass", 1), _example("Edema", 2, flat=True)]
    cells = gallery_cells(examples)
    assert [f for f, _ in cells] == ["Mass", "Edema"]  # label order; a finding without films has no row
    assert cells[0][1] == examples[:2]
    assert cells[1][1] == [examples[2], EMPTY_CELL.format(finding="Edema")]
    assert gallery_cells([]) == [("", ["no film with a finding in the split"])]
    two = Image.open(write_cam_gallery(examples, tmp_path / "two.png", title="resnet18, tight, seed 0")).size
    one = Image.open(write_cam_gallery(examples[:1], tmp_path / "one.png", title="resnet18, tight, seed 0")).size
    assert two[0] > one[0] and two[1] > one[1]  # 2 × 2 cells (one of them the empty-cell text) vs 1 × 1
