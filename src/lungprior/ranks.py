"""Which process of a multi-process launch this is, from the launcher's environment (torchrun, SLURM, Lightning).

One rule for every stage: the global rank is `RANK` when set (torchrun); else, for processes that Lightning's DDP
launcher starts (they carry `LOCAL_RANK` and `NODE_RANK` only), `NODE_RANK * processes per machine + LOCAL_RANK`;
else `SLURM_PROCID`; else 0. The lead process (global rank 0) does the single-process work (data, segmentation,
evaluation, tables, report, run records) while the others wait for it or skip it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def global_rank(env: Mapping[str, str] | None = None, devices: int | str | None = None) -> int:
    """This process's global rank (0 when not distributed).

    `devices`, the processes per machine, is used only where the launcher does not say it (`LOCAL_WORLD_SIZE`) and
    a process on a second machine must be numbered; unknown, the machine's processes are counted as LOCAL_RANK + 1,
    which still tells the lead (rank 0) from every other process.
    """
    env = os.environ if env is None else env
    rank = _int(env, "RANK")
    if rank is not None:
        return rank
    local = _int(env, "LOCAL_RANK")
    if local is not None:
        node = _int(env, "NODE_RANK", "GROUP_RANK") or 0
        size = _int(env, "LOCAL_WORLD_SIZE")
        if size is None and devices is not None and str(devices).isdigit():
            size = int(devices)
        size = max(size or 0, local + 1)
        return node * size + local
    return _int(env, "SLURM_PROCID") or 0


def is_lead(env: Mapping[str, str] | None = None) -> bool:
    """True in the process with global rank 0 (also when not distributed at all)."""
    return global_rank(env) == 0
