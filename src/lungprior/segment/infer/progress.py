"""A rich progress bar that shows images per second."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """Images per second since the start (batches finish in bursts, so recent-update rates mislead)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not elapsed or not task.completed:
            return Text("-- img/s")
        return Text(f"{task.completed / elapsed:.2f} img/s")


@contextmanager
def image_progress(total: int, enabled: bool = True, description: str = "segment") -> Iterator[Callable[[], None]]:
    """Yield `advance()`, to be called once per finished image."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeRemainingColumn())
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
