"""A run's own peak memory: sampled RSS, not the process's lifetime maximum."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lungprior.classify import memory
from lungprior.classify.memory import PeakRSS, available
from lungprior.classify.run import peak_memory

pytestmark = pytest.mark.skipif(not available(), reason="needs /proc (Linux)")

# Run in a fresh interpreter: inside the test session the heap already holds what earlier tests freed, so a
# 300 MB block may be served from memory that is resident anyway and the comparison would measure the session.
_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, resource, sys, time
    import numpy as np
    spec = importlib.util.spec_from_file_location("memory", sys.argv[1])  # the module alone: no torch import
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    PeakRSS, tree_rss_bytes = memory.PeakRSS, memory.tree_rss_bytes

    def hold(mb, seconds=0.5):
        block = np.ones(mb * 2**20 // 8)  # touched: resident
        time.sleep(seconds)
        del block

    with PeakRSS(interval=0.02) as big:
        hold(300)
    with PeakRSS(interval=0.02) as small:
        hold(20)
    print(json.dumps({
        "big": big.peak_mb, "small": small.peak_mb,
        "lifetime": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "now": tree_rss_bytes() / 2**20, "small_bytes": small.peak_bytes,
    }))
    """
)


def test_a_small_run_after_a_large_one_reports_its_own_peak() -> None:
    module = Path(memory.__file__)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, str(module)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["big"] > r["small"] + 200  # the small run does not inherit the large one's peak
    assert r["small"] < r["lifetime"] - 200  # which ru_maxrss would have reported
    assert r["small"] >= r["now"] - 50
    sampler = PeakRSS()
    sampler.peak_bytes = r["small_bytes"]
    assert peak_memory(False, sampler) == (r["small"], "rss sampled during the run")
