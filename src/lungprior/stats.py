"""Short import path for the evaluation statistics, e.g. `lungprior.stats.delong_test`."""

from lungprior.evaluate import stats as _stats
from lungprior.evaluate.stats import *  # noqa: F403

__all__ = _stats.__all__
