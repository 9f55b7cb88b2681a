"""`lungprior evaluate` and `lungprior compare`: metrics of a run, and paired tests between two runs."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from lungprior.console import plain_console
from lungprior.data.atomic import output_dir
from lungprior.errors import LungpriorError
from lungprior.labels import FINDINGS, NO_FINDING


def _fmt(ci: dict | None) -> str:
    if not ci or ci.get("estimate") is None:
        return "n/a"
    return f"{ci['estimate']:.3f} [{ci['low']:.3f}, {ci['high']:.3f}]"


def _diff(r) -> str:
    if r["ci_low"] != r["ci_low"]:
        return f"{r['diff']:+.3f}"
    return f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"


def _no_finding_method(value: str) -> str:
    if value not in ("max", "prod"):
        raise LungpriorError(f"--no-finding must be 'max' (1 - max p) or 'prod' (prod (1 - p)), got {value!r}")
    return value


def evaluate_command(
    run: Path = typer.Option(..., "--run", help="A finished training run folder (from `lungprior train`)."),
    split: str = typer.Option("test", "--split", help="Split to evaluate: test, val or train."),
    n_resamples: int = typer.Option(1000, "--bootstrap", help="Patient-clustered bootstrap resamples for CIs."),
    no_finding: str = typer.Option(
        "max", "--no-finding", help="No Finding score: max = 1 - max p; prod = prod(1 - p)."
    ),
    cam: bool = typer.Option(True, "--cam/--no-cam", help="Grad-CAM attention-in-lung and pointing game."),
    max_cam: int = typer.Option(30, "--max-cam", help="Positive images per class for Grad-CAM."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap and of the Grad-CAM image choice."),
    device: str = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
) -> None:
    """Write RUN/predictions.csv and RUN/metrics.json (AUROC/AUPRC with CIs, No Finding, efficiency, attention)."""
    from lungprior.evaluate.run_eval import evaluate_run

    if run.is_dir():  # evaluation writes into the run folder
        output_dir(run, "--run")
    metrics = evaluate_run(run, split, n_resamples=n_resamples, seed=seed, no_finding=_no_finding_method(no_finding),
                           cam=cam, max_cam=max_cam, device=device)
    table = Table(title=f"{run} on {split}: AUROC [95% CI, patient bootstrap]", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    table.add_column("target")
    for col in ("AUROC", "AUPRC"):
        table.add_column(col, no_wrap=True)  # a CI never splits over two lines (80 columns, logs)
    table.add_column("attention in lung")
    attention = metrics.get("attention", {}).get("per_class", {})
    for k in FINDINGS:
        entry = metrics["per_class"][k]
        a = attention.get(k, {}).get("attention_in_lung")
        table.add_row(k, _fmt(entry["auroc"]), _fmt(entry["auprc"]), "n/a" if a is None else f"{a:.2f}")
    table.add_row("macro", _fmt(metrics["macro_auroc"]), "", "")
    table.add_row(f"{NO_FINDING} ({no_finding})", _fmt(metrics["no_finding"]["auroc"]),
                  _fmt(metrics["no_finding"]["auprc"]), "")
    console = plain_console()
    console.print(table)
    nf = metrics["no_finding"]
    if nf.get("auroc_uncalibrated") is not None and nf["auroc"].get("estimate") is not None:
        console.print(f"No Finding AUROC from calibrated probabilities (fitted on val): "
                      f"{nf['auroc']['estimate']:.3f}; from raw outputs: {nf['auroc_uncalibrated']:.3f}")
    calib = metrics.get("calibration")
    if calib:
        console.print("ECE raw -> calibrated: " + ", ".join(
            f"{k} {calib['raw'][k]['ece']:.3f} -> {calib['calibrated'][k]['ece']:.3f}" for k in FINDINGS))
    console.print(f"wrote {run / 'metrics.json'}")
    from lungprior.report.run_warnings import print_warnings, run_warnings

    print_warnings(lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True), run_warnings(run))


def _p_cell(p: float, bound: bool) -> str:
    """'0.031', '≤ 0.002' (a bound) or 'n/a' for the table (format_p without its leading 'p')."""
    from lungprior.evaluate.testability import format_p

    text = format_p(p, bound=bool(bound))
    return text.removeprefix("p = ").removeprefix("p ")


def comparison_table(df, run_a: Path, run_b: Path) -> tuple[Table, list[str]]:
    """`lungprior compare`'s console table (fits 80 columns) and the lines printed below it: the direction of
    the difference, the tests that ran, and why untestable rows have no p."""
    name_a, name_b = df["a"].iloc[0], df["b"].iloc[0]
    table = Table(title=f"{name_a} vs {name_b}", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("target", "AUROC A", "AUROC B", "A − B [95% CI]", "p", "p Holm"):
        table.add_column(col, no_wrap=True)
    for _, r in df.iterrows():
        holm = "" if r["p_holm"] != r["p_holm"] else _p_cell(r["p_holm"], r.get("p_holm_bound", False))
        table.add_row(r["target"], f"{r['auc_a']:.3f}", f"{r['auc_b']:.3f}", _diff(r),
                      _p_cell(r["p"], r.get("p_bound", False)), holm)
    lines = [f"diff = A − B ({name_a} minus {name_b})", f"A: {run_a}", f"B: {run_b}"]
    for test in dict.fromkeys(df["test"]):
        targets = df.loc[df["test"] == test, "target"].tolist()
        lines.append(f"test ({', '.join(targets)}): {test}")
    lines.append("p Holm: adjusted over the testable findings and No Finding of this comparison")
    for _, r in df.iterrows():
        if isinstance(r.get("note"), str) and r["note"]:
            lines.append(f"{r['target']}: {r['note']}")
    if "p_bound" in df and df["p_bound"].any():
        lines.append("≤: a bootstrap p at its floor 2 / (B + 1); the true p may be smaller")
    return table, lines


def compare_command(
    run_a: Path = typer.Argument(..., help="First evaluated run folder (A in A − B)."),
    run_b: Path = typer.Argument(..., help="Second evaluated run folder (B in A − B)."),
    out: Path = typer.Option(None, "--out", help="Write the table as OUT.csv and OUT.json."),
    n_resamples: int = typer.Option(1000, "--bootstrap", help="Resamples when --test bootstrap is chosen."),
    no_finding: str = typer.Option("max", "--no-finding", help="No Finding score: max or prod."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    test: str = typer.Option(
        "auto", "--test", help="Per-class test: auto (jackknife when a patient has several films, else delong), "
        "jackknife, delong, obuchowski or bootstrap."),
) -> None:
    """Paired tests of A − B per class, for No Finding and for the macro AUROC (clustered by patient when
    needed), Holm-adjusted, with 95% CIs; rows with too few patients on a side get no p and say why."""
    from lungprior.evaluate.run_eval import compare_runs

    if out is not None:
        output_dir(out.parent, "--out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = compare_runs(run_a, run_b, out=out, n_resamples=n_resamples, seed=seed,
                          no_finding=_no_finding_method(no_finding), test=test)
    table, lines = comparison_table(df, run_a, run_b)
    console = plain_console()
    console.print(table)
    for line in lines:
        console.print(line)
    for message in dict.fromkeys(str(w.message) for w in caught):
        console.print(f"warning: {message}")


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `compare` to the app."""
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare_command)
