"""Layer indices and the residual-stream hook point every stage reads and writes.

Example:
    >>> HOOK_TEMPLATE.format(layer=3)
    'blocks.3.hook_resid_post'
"""

from collections.abc import Sequence

from interp_steer.models.backend import Model

HOOK_TEMPLATE = "blocks.{layer}.hook_resid_post"


def check_layers(model: Model, layers: int | Sequence[int]) -> tuple[int, ...]:
    """Return ``layers`` as a sorted tuple of unique ints, or raise ``ValueError``.

    A ``range`` is checked by its ends before it is expanded, so ``range(10**9)`` fails
    at once.

    >>> from interp_steer import load_model
    >>> check_layers(load_model("tiny"), [3, 1, 3])
    (1, 3)
    >>> check_layers(load_model("tiny"), range(10**9))
    Traceback (most recent call last):
    ...
    ValueError: layer 999999999 is out of range: the model has layers 0..3
    """
    n_layers = int(model.cfg.n_layers)
    if isinstance(layers, range) and len(layers):
        low, high = min(layers[0], layers[-1]), max(layers[0], layers[-1])
        for end in (low, high):
            if not 0 <= end < n_layers:
                raise ValueError(
                    f"layer {end!r} is out of range: the model has layers 0..{n_layers - 1}"
                )
    items = [layers] if isinstance(layers, int) else list(layers)
    if not items:
        raise ValueError("layers must name at least one layer")
    for layer in items:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise ValueError(
                f"layer {layer!r} is out of range: the model has layers 0..{n_layers - 1}"
            )
    return tuple(sorted(set(items)))


__all__ = [
    "HOOK_TEMPLATE",
    "check_layers",
]
