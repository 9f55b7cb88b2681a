"""`lightning_quiet()`: hide Lightning's informational chatter (accelerator lines, tips) for a block."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

_LOGGERS = ("lightning.pytorch", "lightning.fabric")


@contextmanager
def lightning_quiet() -> Iterator[None]:
    """Raise Lightning's loggers to WARNING inside the block; restore their levels after."""
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
