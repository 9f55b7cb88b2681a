"""Which rows a process handles: `--shard i/n`, or RANK/WORLD_SIZE (and LOCAL_RANK) as set by torchrun."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from lungprior.errors import LungpriorError

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """`"i/n"` -> (i, n) with 0 <= i < n."""
    m = _SHARD.match(str(text))
    if not m:
        raise LungpriorError(f"shard {text!r}: expected i/n, e.g. 0/4")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise LungpriorError(f"shard {text!r}: need 0 <= i < n")
    return i, n


def resolve_shard(
    shard: str | tuple[int, int] | None, env: Mapping[str, str] | None = None
) -> tuple[int, int] | None:
    """The shard to run: the given one, else RANK/WORLD_SIZE from the environment; None for a single process."""
    env = os.environ if env is None else env
    if shard is None:
        world = env.get("WORLD_SIZE")
        if not world:
            return None
        shard = f"{env.get('RANK', '0')}/{world}"
    i, n = parse_shard(shard) if isinstance(shard, str) else parse_shard(f"{shard[0]}/{shard[1]}")
    return None if n == 1 else (i, n)


def local_device(device: str, env: Mapping[str, str] | None = None) -> str:
    """`cuda` becomes `cuda:<LOCAL_RANK>` under torchrun so that each process uses its own GPU."""
    env = os.environ if env is None else env
    local = env.get("LOCAL_RANK")
    if device == "cuda" and local is not None and local.isdigit():
        return f"cuda:{local}"
    return device
