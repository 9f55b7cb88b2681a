"""`index.html` of a predict batch: every film, most suspicious first, with its picture and scores."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from lungprior.evaluate.calibration import calibration_status, read_calibration
from lungprior.labels import FINDINGS
from lungprior.layout import score_column
from lungprior.report.html import write_page

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.qc td{background:#fff6e5}
img{max-width:240px;width:100%;height:auto} a.thumb{display:inline-block}
.scroll{overflow-x:auto;max-width:100%}
.top{font-weight:bold;color:#c0392b}
"""


def write_index(out_dir: str | os.PathLike[str], table: pd.DataFrame, errors: pd.DataFrame, title: str) -> Path:
    """Write `OUT/index.html`: scored films by descending top-finding probability, then unscored, then errors."""
    out = Path(out_dir)
    scored = table[table["scored"] == "yes"].copy()
    scored["_top"] = scored[[score_column(k) for k in FINDINGS]].astype(float).max(axis=1)
    scored = scored.sort_values(["_top", "image_id"], ascending=[False, True])
    rest = table[table["scored"] != "yes"].sort_values("image_id")
    heads = "".join(f"<th>{html.escape(k)}</th>" for k in (*FINDINGS, "No Finding"))
    rows = [_row(r, k + 1) for k, (_, r) in enumerate(scored.iterrows())]
    rows += [_row(r, None) for _, r in rest.iterrows()]
    err_rows = "".join(
        f"<tr><td>{html.escape(str(r['image_id']))}</td><td>{html.escape(str(r['path']))}</td>"
        f"<td>{html.escape(str(r['reason']))}</td></tr>"
        for _, r in errors.iterrows()
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(scored)} film(s) scored, {len(rest)} not scored, "
        f"{len(errors)} unreadable. Sorted by the highest finding probability.</p>",
        _calibration_list(out),
        "<p>Click a picture for the full figure.</p>",
        f"<div class='scroll'><table id='films'><thead><tr><th>rank</th><th>film</th>{heads}<th>lung QC</th>"
        f"<th>picture</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>",
    ]
    if len(errors):
        body.append("<h2>Unreadable files</h2><div class='scroll'><table id='errors'><thead><tr><th>id</th>"
                    f"<th>path</th><th>reason</th></tr></thead><tbody>{err_rows}</tbody></table></div>")
    return write_page(out / "index.html", title, _STYLE, "".join(body))


def _calibration_list(out: Path) -> str:
    """Per finding, whether its probabilities are calibrated (from the run named in `OUT/predict.json`)."""
    try:
        run = json.loads((out / "predict.json").read_text(encoding="utf-8"))["run"]
    except (OSError, ValueError, KeyError, TypeError):
        return "<p id='calibration'>Calibration: unknown (no predict.json).</p>"
    status = calibration_status(read_calibration(run))
    items = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in status.items())
    return f"<div id='calibration'><p>Probabilities per finding:</p><ul>{items}</ul></div>"


def figure_url(relative: str) -> str:
    """A figure's path relative to the page, percent-encoded for a URL (`#`, `?`, `%` and spaces in film names)."""
    return quote(relative.replace(os.sep, "/"), safe="/")


def _row(r: pd.Series, rank: int | None) -> str:
    cells = []
    top = str(r.get("top_finding", ""))
    for k in FINDINGS:
        v = r.get(score_column(k))
        text = f"{float(v):.3f}" if r["scored"] == "yes" and pd.notna(v) and str(v) != "" else "–"
        cells.append(f"<td class='num{' top' if k == top else ''}'>{text}</td>")
    nf = r.get("p_no_finding")
    cells.append(f"<td class='num'>{float(nf):.3f}</td>" if r["scored"] == "yes" and pd.notna(nf) else "<td>–</td>")
    qc = html.escape(str(r["qc_flag"])) + (f": {html.escape(str(r['qc_reason']))}" if str(r["qc_reason"]) else "")
    status = "" if r["scored"] == "yes" else f"<br><em>{html.escape(str(r['status']))}</em>"
    picture = str(r.get("figure", ""))
    alt = html.escape(str(r["image_id"]))
    url = html.escape(figure_url(picture))
    img = f"<a class='thumb' href='{url}'><img src='{url}' alt='{alt}' loading='eager'></a>" if picture else ""
    cls = " class='qc'" if str(r["qc_flag"]) != "ok" else ""
    return (f"<tr{cls}><td class='num rank'>{rank or ''}</td><td>{html.escape(str(r['image_id']))}{status}</td>"
            f"{''.join(cells)}<td>{qc}</td><td>{img}</td></tr>")
