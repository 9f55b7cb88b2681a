"""`lungprior evaluate` and `lungprior compare`: metrics of a run, and paired tests between two runs."""

from __future__ import annotations

from pathlib import Path

import typer
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
    table = Table(title=f"{run} on {split}: AUROC [95% CI, patient bootstrap]")
    for col in ("target", "AUROC", "AUPRC", "attention in lung"):
        table.add_column(col)
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


def compare_command(
    run_a: Path = typer.Argument(..., help="First evaluated run folder."),
    run_b: Path = typer.Argument(..., help="Second evaluated run folder."),
    out: Path = typer.Option(None, "--out", help="Write the table as OUT.csv and OUT.json."),
    n_resamples: int = typer.Option(1000, "--bootstrap", help="Paired bootstrap resamples for the macro AUROC."),
    no_finding: str = typer.Option("max", "--no-finding", help="No Finding score: max or prod."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    test: str = typer.Option(
        "auto", "--test", help="Per-class test: auto (obuchowski when a patient has several films, else delong), "
        "delong, obuchowski or bootstrap."),
) -> None:
    """Paired tests per class and for No Finding (clustered by patient when needed), Holm-adjusted, with 95% CIs;
    paired patient bootstrap of the macro AUROC."""
    from lungprior.evaluate.run_eval import compare_runs

    if out is not None:
        output_dir(out.parent, "--out")
    df = compare_runs(run_a, run_b, out=out, n_resamples=n_resamples, seed=seed,
                      no_finding=_no_finding_method(no_finding), test=test)
    table = Table(title=f"{df['a'].iloc[0]} vs {df['b'].iloc[0]}")
    for col in ("target", "AUROC A", "AUROC B", "A - B [95% CI]", "p", "p (Holm)", "test"):
        table.add_column(col)
    for _, r in df.iterrows():
        holm = "" if r["p_holm"] != r["p_holm"] else f"{r['p_holm']:.4f}"
        table.add_row(r["target"], f"{r['auc_a']:.3f}", f"{r['auc_b']:.3f}", _diff(r), f"{r['p']:.4g}",
                      holm, r["test"])
    plain_console().print(table)


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `compare` to the app."""
    app.command("evaluate")(evaluate_command)
    app.command("compare")(compare_command)
