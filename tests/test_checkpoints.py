"""Every weight or checkpoint file opens through one function: weights_only, regular files only, one error format."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lungprior.checkpoints import load_tensor_file
from lungprior.classify.backbone import load_weights_file
from lungprior.classify.run import load_checkpoint
from lungprior.errors import LungpriorError
from lungprior.segment.weights import load_state_dict_flexible


class _Payload:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def _loaders() -> dict[str, Callable[[Path], object]]:
    return {
        "tensor file": load_tensor_file,
        "lightning checkpoint": lambda p: load_checkpoint(p, "delete it"),
        "pretrained": lambda p: load_weights_file(torch.nn.Linear(2, 2), p),
        "segmenter": lambda p: load_state_dict_flexible(torch.nn.Linear(2, 2), p),
    }


@pytest.mark.parametrize("name", list(_loaders()))
def test_every_loader_refuses_with_one_format(tmp_path: Path, name: str, capsys: pytest.CaptureFixture) -> None:
    load = _loaders()[name]
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(LungpriorError, match=r"garbage\.pth: cannot read .*: corrupt or truncated \("):
        load(garbage)
    torch.save({"a": torch.zeros(2)}, tmp_path / "cut.pth")
    whole = (tmp_path / "cut.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(LungpriorError, match=r"cut\.pth: cannot read .*: corrupt or truncated \("):
        load(tmp_path / "cut.pth")
    torch.save({"state_dict": {}, "payload": _Payload()}, tmp_path / "planted.pth")
    planted = r"planted\.pth: refused: the .* holds more than tensors and plain data \(.*GLOBAL"
    with pytest.raises(LungpriorError, match=planted):
        load(tmp_path / "planted.pth")
    assert "code ran" not in capsys.readouterr().out
    with pytest.raises(LungpriorError, match=r"absent\.pth: .* not found"):
        load(tmp_path / "absent.pth")
    os.mkfifo(tmp_path / "pipe.pth")  # a plain open would block with no writer
    with pytest.raises(LungpriorError, match=r"pipe\.pth: .*is a FIFO, not a regular file"):
        load(tmp_path / "pipe.pth")
    with pytest.raises(LungpriorError, match=r"is a directory"):
        load(tmp_path)


def test_a_plain_tensor_file_loads(tmp_path: Path) -> None:
    torch.save({"weight": torch.arange(4.0)}, tmp_path / "ok.pth")
    assert torch.equal(load_tensor_file(tmp_path / "ok.pth")["weight"], torch.arange(4.0))
    assert torch.equal(load_tensor_file(tmp_path / "ok.pth", mmap=True)["weight"], torch.arange(4.0))
