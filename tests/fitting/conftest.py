"""Fixtures of BiPO's tests: a model with frozen parameters, and the fast-step check."""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from interp_steer.fitting.bipo import FastStep, ReferenceStep


@contextlib.contextmanager
def _frozen(model: Any) -> Iterator[Any]:
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


@pytest.fixture(scope="session")
def frozen_params() -> Callable[[Any], contextlib.AbstractContextManager[Any]]:
    """``with frozen_params(model):`` its parameters' requires_grad off (as BiPO trains)."""
    return _frozen


def _fast_step_matches(model: Any, layer: int, pairs: list[Any]) -> None:
    """FastStep against ReferenceStep on encoded preference pairs, pair by pair.

    Asserts equal reference log-probs, and loss (relative 1e-4) and gradient (relative
    1e-4, cosine ≥ 0.9999) for both signs.
    """
    dim = int(model.cfg.d_model)
    fast = FastStep(model, layer, pairs, False)
    ref = ReferenceStep(model, layer, pairs, 1)
    torch.testing.assert_close(fast.ref, ref.ref, rtol=1e-5, atol=1e-4)
    v = (torch.randn(dim, generator=torch.Generator().manual_seed(layer)) * 0.5).requires_grad_()
    with torch.enable_grad():
        for i in range(len(pairs)):
            for sign in (1.0, -1.0):
                loss_fast, grad_fast = fast.loss_and_grad([i], v, sign, 0.1)
                loss_ref, grad_ref = ref.loss_and_grad([i], v, sign, 0.1)
                assert abs(float(loss_fast - loss_ref)) <= 1e-4 * abs(float(loss_ref))
                assert float((grad_fast - grad_ref).norm() / grad_ref.norm()) <= 1e-4
                cos = torch.nn.functional.cosine_similarity(grad_fast, grad_ref, dim=0)
                assert float(cos) >= 0.9999


@pytest.fixture(scope="session")
def fast_step_matches() -> Callable[[Any, int, list[Any]], None]:
    """``fast_step_matches(model, layer, pairs)``: the fast step equals the reference."""
    return _fast_step_matches
