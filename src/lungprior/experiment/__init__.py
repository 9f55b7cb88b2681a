"""The whole study as one command: `run_experiment(load_experiment("study.yaml"), "out/")`."""

from lungprior.experiment.config import ExperimentConfig, load_experiment
from lungprior.experiment.runner import ExperimentResult, run_experiment

__all__ = ["ExperimentConfig", "ExperimentResult", "load_experiment", "run_experiment"]
