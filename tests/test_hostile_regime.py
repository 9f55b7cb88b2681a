"""`regime` files read by the experiment's YAML loader: duplicate keys, a bare `regime:`, colliding cell names."""

from __future__ import annotations

from pathlib import Path

import pytest

from lungprior.errors import LungpriorError
from lungprior.experiment.regime import cell_name, load_regime

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "regime_smoke.yaml"


@pytest.mark.parametrize("text, message", [
    ("regime:\n  bias: [0.0]\n  bias: [0.9]\n", "duplicate key 'bias'"),
    ("name: a\nname: b\nregime: {bias: [0.0]}\n", "duplicate key 'name'"),
    ("regime:\n", "holds only 'regime:'"),
    ("regime:\n  bias: [0.5]\n", "holds only 'regime:'"),
    ("", "empty"),
    ("- regime\n", "mapping"),
    ("regime:\n  bias: [zero]\n", "regime.bias.0"),
])
def test_regime_files_are_read_as_strictly_as_experiments(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(LungpriorError, match=message):
        load_regime(path)


def test_bias_values_that_share_a_cell_folder_are_refused(tmp_path: Path) -> None:
    assert cell_name(0.1234561, 1.0) == cell_name(0.1234564, 1.0)  # six significant digits
    for values in ("[0.1234561, 0.1234564]", "[0.5, 0.5]"):
        path = tmp_path / "r.yaml"
        path.write_text(SMOKE.read_text().replace("bias: [0.0, 0.9]", f"bias: {values}"))
        with pytest.raises(LungpriorError, match="same cell folder"):
            load_regime(path)
    path.write_text(SMOKE.read_text().replace("bias: [0.0, 0.9]", "bias: [0.123456, 0.123457]"))
    _, regime = load_regime(path)
    assert len({cell_name(b, 1.0) for b in regime.bias}) == 2
