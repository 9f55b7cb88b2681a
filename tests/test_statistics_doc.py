"""docs/statistics.md's simulation table is what the code produces, and it shows the clustered test's level."""

from __future__ import annotations

from pathlib import Path

from lungprior.evaluate.simulation import level_power_table, markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "statistics.md"


def test_simulation_table_is_regenerated_and_holds_the_level() -> None:
    table = level_power_table()  # the documented settings: 400 data sets per row, seed 0
    text = DOC.read_text(encoding="utf-8")
    documented = text.split("<!-- simulation-table:start -->")[1].split("<!-- simulation-table:end -->")[0].strip()
    assert documented == markdown(table)
    rows = table.set_index(["patients x films", "truth"])
    single, clustered = rows.loc["300 x 1"], rows.loc["50 x 6"]
    assert (single.loc["null"] <= 0.08).all()
    assert clustered.loc["null", "Obuchowski rejects"] <= 0.08  # the level holds with six films per patient
    assert clustered.loc["null", "DeLong rejects"] >= 0.15  # films treated as independent: anti-conservative
    alt = next(t for t in rows.index.get_level_values("truth") if t != "null")
    assert clustered.loc[alt, "Obuchowski rejects"] >= 0.3  # still useful power with 50 patients
    assert single.loc[alt, "Obuchowski rejects"] >= 0.7
