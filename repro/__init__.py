"""The paper's study on a model that runs here: ``make results`` → ``docs/results.md``."""

from repro.config import QUICK, STUDY, StudyConfig
from repro.page import write_results
from repro.run import main, run_study

__all__ = ["QUICK", "STUDY", "StudyConfig", "main", "run_study", "write_results"]
