"""The experiment report in headless Chromium at desktop (1280 px) and phone (390 px) widths: no horizontal scroll,
the forest plot right after the headline and warnings, every image loaded.

Screenshots go to `$LUNGPRIOR_SCREENSHOTS` when it is set (to look at the page).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pagecheck import IMAGES, open_page
from test_experiment_run import CONFIG as TINY

from lungprior.experiment import load_experiment, run_experiment

# the tiny study of test_experiment_run, with a long name that must wrap on a phone
CONFIG = TINY.replace("name: tiny", "name: tiny_report_with_a_rather_long_name_that_must_wrap_on_a_phone", 1)

OVERFLOW = "[document.documentElement.scrollWidth, window.innerWidth]"
FOREST = ("(() => { const f = document.getElementById('forest'); const w = document.getElementById('warnings');"
          " const h2 = document.querySelector('h2');"
          " return f && [f.complete, f.naturalWidth, f.getBoundingClientRect().width,"
          " Boolean(w.compareDocumentPosition(f) & Node.DOCUMENT_POSITION_FOLLOWING), h2.textContent]; })()")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    config = root / "tiny.yaml"
    config.write_text(CONFIG)
    run_experiment(load_experiment(config), root / "out", log=lambda _: None)
    return root / "out" / "report.html"


@pytest.mark.parametrize("width", [1280, 390])
def test_report_fits_the_width_and_shows_the_forest_plot(report: Path, width: int) -> None:
    shots = os.environ.get("LUNGPRIOR_SCREENSHOTS")
    shot = Path(shots) / f"report_{width}.png" if shots else None
    problems, got = open_page(report, {"overflow": OVERFLOW, "forest": FOREST, "images": IMAGES}, width=width,
                              screenshot=shot)
    scroll_width, inner_width = got["overflow"]
    assert inner_width == width and scroll_width <= inner_width
    loaded, natural, shown, after_warnings, first_h2 = got["forest"]
    assert loaded and natural > 0 and 0 < shown <= width
    assert after_warnings and first_h2.startswith("Masked − original")
    assert all(done and w > 0 for done, w in got["images"])
    assert problems == []


def test_the_wide_tables_scroll_inside_the_page(report: Path) -> None:
    """At 390 px the efficiency table is wider than the page: it scrolls in its own box, the page does not."""
    script = ("Array.from(document.querySelectorAll('table')).map(t => [t.parentElement.className,"
              " t.parentElement.clientWidth, t.scrollWidth])")
    _, got = open_page(report, {"tables": script}, width=390)
    tables = got["tables"]
    assert tables and all(parent == "scroll" and box <= 390 for parent, box, _ in tables)
    assert any(wide > box for _, box, wide in tables)  # at least one really is wider than the phone


def test_the_forest_plot_follows_the_headline_and_warnings(report: Path) -> None:
    """Also without a browser: the forest plot is the first section, right after the warning list."""
    page = report.read_text()
    warnings, forest, first_h2 = page.index("id='warnings'"), page.index('id="forest"'), page.index("<h2>")
    assert warnings < first_h2 < forest < page.index("<h2>", forest)
    assert page[first_h2:].startswith("<h2>Masked − original, per finding</h2>")
    assert "<meta name='viewport'" in page
