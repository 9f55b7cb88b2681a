"""The synthetic chest X-ray benchmark: lungprior's embedded default dataset."""

from lungprior.data.phantom.config import DEFAULT_PREVALENCE, PhantomConfig, parse_per_finding, parse_prevalence
from lungprior.data.phantom.generate import generate_benchmark
from lungprior.data.phantom.render import LUNG_VALUES

__all__ = ["DEFAULT_PREVALENCE", "LUNG_VALUES", "PhantomConfig", "generate_benchmark",
           "parse_per_finding", "parse_prevalence"]
