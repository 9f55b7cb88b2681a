"""predict's index.html says per finding whether its probabilities are calibrated, also when nothing was scored."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lungprior.labels import FINDINGS
from lungprior.predict.page import write_index
from lungprior.predict.pipeline import COLUMNS


def test_the_page_names_each_findings_calibration_with_no_film_scored(tmp_path: Path) -> None:
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    out.mkdir()
    params = {k: {"method": "platt", "a": 0.9, "b": -1.0, "n_pos": 20, "n_neg": 80, "reason": ""} for k in FINDINGS}
    params["Nodule"] = {"method": "raw", "n_pos": 2, "n_neg": 98,
                        "reason": "raw scores: 2 validation films with the finding (needs ≥ 5 with and ≥ 5 without)"}
    (run / "calibration.json").write_text(json.dumps({"method": "platt", "fitted_on": "val", "params": params}))
    (out / "predict.json").write_text(json.dumps({"run": str(run), "calibrated": True}))
    empty = pd.DataFrame(columns=COLUMNS)
    page = write_index(out, empty, pd.DataFrame(columns=["image_id", "path", "reason"]), "batch").read_text()
    assert "0 film(s) scored" in page and "uncalibrated" not in page
    assert "<li>Mass: calibrated (Platt, fitted on val, slope 0.9)</li>" in page
    assert "<li>Nodule: raw scores: 2 validation films with the finding" in page
    (run / "calibration.json").unlink()
    page = write_index(out, empty, pd.DataFrame(columns=["image_id", "path", "reason"]), "batch").read_text()
    assert "<li>Mass: raw: the run has no calibration.json</li>" in page


NAMES = ["plain", "film #1", "what?", "100% sure", "a&b 'q'"]


def _films(out: Path) -> pd.DataFrame:
    """One scored film per awkward name, each with its figure under films/."""
    from PIL import Image

    (out / "films").mkdir(parents=True)
    rows = []
    for k, name in enumerate(NAMES):
        Image.new("RGB", (60 + k, 40), (30 * k, 90, 160)).save(out / "films" / f"{name}.png")
        rows.append({**dict.fromkeys(COLUMNS, ""), "image_id": name, "path": f"{name}.png", "scored": "yes",
                     "status": "ok", **{f"p_{f}": 0.1 + 0.1 * k for f in FINDINGS}, "p_no_finding": 0.5,
                     "top_finding": "Mass", "qc_flag": "ok", "figure": f"films/{name}.png"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_thumbnails_link_to_their_full_figure_with_encoded_names(tmp_path: Path) -> None:
    from urllib.parse import unquote

    page = write_index(tmp_path, _films(tmp_path), pd.DataFrame(columns=["image_id", "path", "reason"]),
                       "batch").read_text()
    assert "<a class='thumb' href='films/film%20%231.png'><img src='films/film%20%231.png'" in page
    assert "films/what%3F.png" in page and "films/100%25%20sure.png" in page
    assert "href='films/a%26b%20%27q%27.png'" in page  # no quote left to end the attribute early
    assert page.count("href='films/") == len(NAMES)
    for name in NAMES:
        assert any(unquote(part.split("'")[0]) == f"films/{name}.png" for part in page.split("href='")[1:])


def test_thumbnails_and_links_resolve_in_headless_chromium(tmp_path: Path) -> None:
    from pagecheck import IMAGES, open_page

    write_index(tmp_path, _films(tmp_path), pd.DataFrame(columns=["image_id", "path", "reason"]), "batch")
    problems, got = open_page(tmp_path / "index.html", {
        "images": IMAGES,
        "links": "Array.from(document.querySelectorAll('a.thumb')).map(a => [a.href, a.querySelector('img').src])",
    })
    assert problems == []
    assert len(got["images"]) == len(NAMES) and all(done and width > 0 for done, width in got["images"])
    files = {(tmp_path / "films" / f"{n}.png").as_uri() for n in NAMES}
    assert {href for href, _ in got["links"]} == files and all(href == src for href, src in got["links"])
