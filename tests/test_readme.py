"""The README works as written: its quickstart runs verbatim to a report, and every link and anchor in it and in
the docs resolves."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = "## Quickstart on small data"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def fenced_block_after(text: str, heading: str) -> list[str]:
    """The command lines of the first ```bash block under `heading` (continuation lines joined)."""
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None, f"no bash block under {heading!r}"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a markdown file (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6} (.*)", line)
        if m:
            base = slug(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def _prose(text: str) -> str:
    """The text without fenced code blocks (links and headings inside them are not links)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def broken_links(page: Path) -> list[str]:
    """Links of `page` to files that do not exist or to anchors that those files do not have."""
    bad = []
    for target in LINK.findall(re.sub(r"`[^`\n]*`", "", _prose(page.read_text(encoding="utf-8")))):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.exists():
            bad.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    return bad


def test_slug_follows_github() -> None:
    assert slug("Outside context (`--context`)") == "outside-context---context"
    assert slug("Cross-validation: zero-shot vs fine-tuned") == "cross-validation-zero-shot-vs-fine-tuned"
    assert slug("The converged map: what it shows") == "the-converged-map-what-it-shows"


def test_a_broken_link_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    (tmp_path / "b.md").write_text("# Real heading\n")
    page = tmp_path / "a.md"
    page.write_text("[ok](b.md#real-heading) [gone](c.md) [bad](b.md#nope) `[code](x.md)`\n")
    assert broken_links(page) == ["a.md: c.md (no such file)", "a.md: b.md#nope (no such heading)"]


def test_readme_and_docs_links_resolve() -> None:
    pages = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    bad = [b for page in pages for b in broken_links(page)]
    assert not bad, "\n".join(bad)


def test_quickstart_runs_verbatim_to_a_report(tmp_path: Path) -> None:
    """The quickstart's commands, exactly as the README shows them, in an empty folder beside a copy of configs/;
    their CPU time stays under two minutes (what two quiet cores give in two minutes of wall time at most)."""
    assert shutil.which("lungprior"), "the lungprior console script is not installed (pip install -e .)"
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for line in fenced_block_after(README.read_text(encoding="utf-8"), QUICKSTART):
        result = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{line}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"quickstart: {wall:.0f} s wall, {cpu:.0f} s CPU")
    report = tmp_path / "qs" / "study" / "report.html"
    assert report.is_file() and report.stat().st_size > 10_000
    assert (tmp_path / "qs" / "masks.png").is_file()
    assert "macro" in result.stdout.lower() or "macro" in result.stderr.lower()
    assert cpu < 120, f"the quickstart used {cpu:.0f} s of CPU time ({wall:.0f} s wall)"


def test_ci_runs_the_readmes_test_command() -> None:
    readme = README.read_text(encoding="utf-8")
    (command,) = fenced_block_after(readme, "## Tests")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci[-1] == command


def test_the_demo_command_installs_what_the_demo_needs() -> None:
    (command,) = fenced_block_after(README.read_text(encoding="utf-8"), "## The demo")
    assert command.startswith("pip install -e '.[segment]' && lungprior demo")
