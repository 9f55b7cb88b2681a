"""One rule for claiming an output folder: resume with the same settings, refuse other ones with each change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lungprior.data.claim import claim_folder
from lungprior.errors import LungpriorError


def test_a_new_folder_is_recorded_and_resumed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert claim_folder(out, "s.json", {"a": 1, "b": (1, 2)}, "a run") is None
    assert json.loads((out / "s.json").read_text()) == {"a": 1, "b": [1, 2]}
    assert claim_folder(out, "s.json", {"a": 1, "b": (1, 2)}, "a run") == {"a": 1, "b": [1, 2]}


def test_other_settings_name_every_change(tmp_path: Path) -> None:
    claim_folder(tmp_path, "s.json", {"a": 1, "b": "x", "gone": None, "old": 2}, "a run")
    with pytest.raises(LungpriorError) as info:
        claim_folder(tmp_path, "s.json", {"a": 3, "b": "x", "new": True}, "a run")
    assert str(info.value) == (f'{tmp_path}: holds a run made with other settings (a: 1 -> 3; new: null -> true; '
                               "old: 2 -> null); use a new --out folder")
    assert claim_folder(tmp_path, "s.json", {"a": 1, "b": "x", "old": 5}, "a run", ignore=("old",)) is not None


def test_upgrade_fills_settings_added_since(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"a": 1}')
    with pytest.raises(LungpriorError, match=r"\(b: null -> 0\)"):
        claim_folder(tmp_path, "s.json", {"a": 1, "b": 0}, "masks")
    assert claim_folder(tmp_path, "s.json", {"a": 1, "b": 0}, "masks", upgrade=lambda old: {"b": 0, **old})


def test_folders_it_refuses(tmp_path: Path) -> None:
    (tmp_path / ".lock").write_text("")  # hidden files (locks) do not count
    assert claim_folder(tmp_path, "s.json", {"a": 1}, "a benchmark", record=False) is None
    assert not (tmp_path / "s.json").exists()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(LungpriorError, match=r"not empty and holds no benchmark \(no s\.json\); choose a new"):
        claim_folder(tmp_path, "s.json", {"a": 1}, "a benchmark", fix="choose a new --out folder")
    assert claim_folder(tmp_path, "s.json", {"a": 1}, "predictions", owns_folder=False) is None
    with pytest.raises(LungpriorError, match=r"notes\.txt: exists and is not a folder"):
        claim_folder(tmp_path / "notes.txt", "s.json", {}, "a run")
    (tmp_path / "s.json").write_text("{cut")
    with pytest.raises(LungpriorError, match=r"s\.json: unreadable"):
        claim_folder(tmp_path, "s.json", {"a": 1}, "predictions")
    (tmp_path / "s.json").write_text("[1]")
    with pytest.raises(LungpriorError, match=r"s\.json: unreadable \(not a JSON object\)"):
        claim_folder(tmp_path, "s.json", {"a": 1}, "predictions")
