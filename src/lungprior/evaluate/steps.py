"""`StepProgress`: a long command's named steps on the console (standard error, so the results on standard output
stay clean): "evaluate: step 2 of 3, bootstrap (1000 patient resamples)" as each starts, a rich spinner with the
elapsed time while it runs on a terminal, and the time it took when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console

from lungprior.console import duration, plain_console


@dataclass
class StepProgress:
    """The steps of `title`, in order; `enabled=False` prints nothing."""

    title: str
    names: Sequence[str]
    enabled: bool = True
    console: Console = field(default_factory=lambda: plain_console(stderr=True))

    @contextmanager
    def step(self, name: str, detail: str = "", *, spinner: bool = True) -> Iterator[None]:
        """Announce step `name` and time it; `spinner=False` where the step draws its own progress bar (rich
        shows one live display at a time)."""
        if not self.enabled:
            yield
            return
        k = list(self.names).index(name) + 1
        text = f"{self.title}: step {k} of {len(self.names)}, {name}" + (f" ({detail})" if detail else "")
        self.console.print(text)
        start = time.perf_counter()
        if spinner and self.console.is_terminal:
            with self.console.status(text):
                yield
        else:
            yield
        seconds = time.perf_counter() - start
        took = f"{seconds:.0f} s" if seconds < 60 else duration(seconds).removeprefix("about ")
        self.console.print(f"{self.title}: {name} done in {took}")
