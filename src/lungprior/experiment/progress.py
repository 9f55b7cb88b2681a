"""`RunProgress`: the "run k of N, about M min left" line that `run_experiment` logs as each run starts.

The time left is the mean duration of the runs this call trained so far times the runs still to start (a run found
finished and skipped takes no time and does not count); before the first trained run there is no estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lungprior.console import duration


@dataclass
class RunProgress:
    """Counts the runs of an experiment and estimates the time left from those trained so far."""

    total: int
    trained: list[float] = field(default_factory=list)

    def starting(self, k: int, name: str) -> str:
        """The line for run `k` (1-based) of `total`, with the time left for it and the runs after it."""
        line = f"run {k} of {self.total}: {name}"
        if not self.trained:
            return f"{line} (time left: estimated after the first trained run)"
        mean = sum(self.trained) / len(self.trained)
        return f"{line} ({duration(mean * (self.total - k + 1))} left)"

    def finished(self, seconds: float, ran: bool) -> None:
        """Record a run: its duration counts only when this call trained it."""
        if ran:
            self.trained.append(float(seconds))
