"""The `lungprior` command behaves as command-line tools do: --version, bare `lungprior`, `python -m lungprior`,
and a --help that does not load PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib import import_module, resources
from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

import lungprior
from lungprior.cli.main import COMMANDS, app, load_command

SRC = str(Path(lungprior.__file__).resolve().parents[1])
ROOT = Path(SRC).parent


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120)


def test_version_prints_the_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"lungprior {lungprior.__version__}"


def test_bare_command_shows_help_and_exits_0() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    for name in COMMANDS:
        assert f"  {name} " in result.output


def test_python_dash_m_runs_the_cli() -> None:
    helped = _python("-m", "lungprior", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Commands:" in helped.stdout and "demo" in helped.stdout
    version = _python("-m", "lungprior", "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"lungprior {lungprior.__version__}"


def test_unknown_command_exits_2() -> None:
    result = CliRunner().invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def _heavy_modules_after(argv: list[str]) -> str:
    """The heavy modules a fresh interpreter has loaded after `lungprior ARGV` (e.g. --help), as printed."""
    code = ("import sys; from lungprior.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('heavy:', sorted(m for m in ('torch', 'pandas', 'cv2', 'matplotlib') if m in sys.modules))")
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_help_does_not_import_torch() -> None:
    assert _heavy_modules_after(["--help"]) == "heavy: []"


def test_every_registered_command_is_listed_under_its_module() -> None:
    modules = {module for module, _ in COMMANDS.values()}
    for module in modules:
        holder = typer.Typer()
        import_module(module).register(holder)
        for info in holder.registered_commands:
            assert COMMANDS[info.name][0] == module, info.name
    for name, (_, summary) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert command.get_short_help_str(limit=100) == summary
        assert len(summary) <= 66, name  # fits one line of --help at 80 columns


def test_demo_help_names_the_backbone_the_demo_trains() -> None:
    demo = yaml.safe_load(resources.files("lungprior.experiment").joinpath("demo.yaml").read_text())
    assert demo["training"]["backbones"] == ["resnet10t"]
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "ResNet10-T" in result.output and "ResNet18" not in result.output


def test_startup_benchmark_reports_help_under_one_second() -> None:
    result = _python(str(ROOT / "benchmarks" / "cli_startup.py"), "--runs", "3")
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("lungprior --help:"))
    seconds = float(line.split()[2])
    assert seconds < 1.0, line


def test_segment_help_loads_no_model_code_and_names_every_engine_and_backend() -> None:
    heavy = _heavy_modules_after(["segment", "--help"])
    assert "torch" not in heavy and "cv2" not in heavy, heavy
    from lungprior.cli.segment import BACKEND_NAMES, ENGINE_NAMES
    from lungprior.segment import list_backends
    from lungprior.segment.infer import ENGINES

    assert ENGINE_NAMES.split(", ") == list(ENGINES)
    assert BACKEND_NAMES.split(", ") == list_backends()
