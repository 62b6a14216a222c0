"""Layer indices and the residual-stream hook point every stage reads and writes.

Example:
    >>> HOOK_TEMPLATE.format(layer=3)
    'blocks.3.hook_resid_post'
"""

from collections.abc import Sequence

from transformer_lens.model_bridge import TransformerBridge

HOOK_TEMPLATE = "blocks.{layer}.hook_resid_post"


def check_layers(model: TransformerBridge, layers: int | Sequence[int]) -> tuple[int, ...]:
    """Return ``layers`` as a sorted tuple of unique ints, or raise ``ValueError``.

    >>> from interp_steer import load_model
    >>> check_layers(load_model("tiny"), [3, 1, 3])
    (1, 3)
    """
    n_layers = int(model.cfg.n_layers)
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
