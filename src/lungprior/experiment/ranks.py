"""Which process of a multi-process launch this is, from the launcher's environment (torchrun, SLURM, Lightning).

An experiment launched on several processes runs every stage in every process: the lead process (global rank 0)
does the single-process stages (data, segmentation, evaluation, tables, report) while the others wait for its
`stage.json`; every process takes part in training, where Lightning's DDP joins them.
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


def is_lead(env: Mapping[str, str] | None = None) -> bool:
    """True in the process with global rank 0 (also when not distributed at all).

    torchrun sets RANK, SLURM sets SLURM_PROCID; processes that Lightning's DDP launcher starts carry LOCAL_RANK
    and NODE_RANK only.
    """
    env = os.environ if env is None else env
    rank = _int(env, "RANK", "SLURM_PROCID")
    if rank is not None:
        return rank == 0
    return (_int(env, "LOCAL_RANK") or 0) == 0 and (_int(env, "NODE_RANK", "GROUP_RANK") or 0) == 0
