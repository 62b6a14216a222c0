"""Doctest namespace: examples in docstrings can use `torch` and `np` without importing."""

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    doctest_namespace["torch"] = torch
    doctest_namespace["np"] = np
