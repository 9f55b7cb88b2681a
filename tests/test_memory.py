"""A run's own peak memory: sampled RSS, not the process's lifetime maximum."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from lungprior.classify.memory import PeakRSS, available, tree_rss_bytes
from lungprior.classify.run import peak_memory

pytestmark = pytest.mark.skipif(not available(), reason="needs /proc (Linux)")


def _hold(mb: int, seconds: float = 0.3) -> None:
    block = np.ones(mb * 2**20 // 8)  # touched: resident
    time.sleep(seconds)
    del block


def test_a_small_run_after_a_large_one_reports_its_own_peak() -> None:
    with PeakRSS(interval=0.02) as big:
        _hold(300)
    with PeakRSS(interval=0.02) as small:
        _hold(20)
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    assert big.peak_mb > small.peak_mb + 200  # the small run does not inherit the large one's peak
    assert small.peak_mb < lifetime - 200  # which ru_maxrss would have reported
    assert small.peak_mb >= tree_rss_bytes() / 2**20 - 50
    assert peak_memory(False, small) == (small.peak_mb, "rss sampled during the run")
