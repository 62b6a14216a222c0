"""The intervention: steer the residual stream along a vector inside a context manager.

The :data:`Operator` says what is done at each steered position: ``"add"`` adds
``alpha * v`` (the default), ``"ablate"`` projects the direction out, ``"rotate"`` turns the
residual towards it by an angle keeping its norm, ``"clamp"`` sets its component along it.

``steer`` is built on the model's own ``hooks()`` context, so TransformerLens removes the
hooks in its ``finally`` block: nothing is left on the model after the ``with`` block,
also when the block raises. The model's weights are never modified.

Which positions are steered is decided per forward call from the call's attention mask,
its KV-cache length and whether it is a step of a generation
(:func:`~interp_steer.models.generating`; the model's own ``generate`` methods are marked
while the block runs), never from the tokens: the same vector acts identically on
``model(...)``, ``run_with_cache`` and ``model.generate(...)`` with or without the KV
cache, two calls are two prompts whatever their tokens, and pad positions of a left-padded
batch are never touched.

Every operator computes in float32 (or the residual's own wider type) and casts back, so
a bfloat16 or float16 model gets the same arithmetic as a float32 one. A term
``alpha * vector`` that does not fit the model's dtype is refused before anything runs,
and a steered residual or output that turns NaN or infinite raises
:class:`NonFiniteError` (at the next forward call or at the end of the block: the check
stays on the device, with no synchronisation per call).
"""

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from interp_steer.constants import POSITION_MODES, Positions, check_choice
from interp_steer.models.backend import Model, basis_mismatch, model_dtype, watch_calls
from interp_steer.models.generation import current_generation, marked_generation
from interp_steer.models.loading import model_name
from interp_steer.steering.vectors import SteeringVector, check_hook
from interp_steer.types import Direction, Mask, Residual

_OUTPUT = "output"  # the model's logits, for _Health

Operator = Literal["add", "ablate", "rotate", "clamp"]
"""What :func:`steer` does to the residual ``h`` at each steered position, with
``u = v / ‖v‖`` and ``c = h · u`` (``alpha`` scales every one; ``alpha=0`` is the identity):

* ``"add"``: ``h + alpha · v`` (the vector's norm matters);
* ``"ablate"``: ``h − alpha · c · u`` (``alpha=1`` removes the component along ``u``);
* ``"rotate"``: turn ``h`` in the plane of ``h`` and ``u`` towards ``u`` by
  ``alpha · angle`` degrees (negative: away from it), never past ``u`` (or ``−u``); the
  norm ``‖h‖`` is unchanged, and a residual parallel to ``u`` (or zero) stays as it is;
* ``"clamp"``: ``h + alpha · (value − c) · u`` (``alpha=1`` sets the component to ``value``).

Only ``"add"`` depends on the vector's norm; the others use its direction.
"""

OPERATORS: tuple[str, ...] = get_args(Operator)
"""Every :data:`Operator`, ``"add"`` first."""


class BasisWarning(UserWarning):
    """A vector is applied to a model whose weights were processed differently.

    >>> issubclass(BasisWarning, UserWarning)
    True
    """


def check_vector(model: Model, vector: SteeringVector) -> None:
    """Raise ``ValueError`` if ``vector`` cannot be applied to ``model``; warn on a mismatch.

    A warning says when the vector was fitted on another model (by name) or in another
    weight basis: its ``meta["weight_basis"]`` records TransformerLens's weight processing
    (``fold_ln``, ``center_writing_weights``, ``center_unembed``) and the model's differs
    (see :func:`~interp_steer.models.weight_basis`). Vectors without that record are
    applied without the check.

    >>> from interp_steer import load_model
    >>> check_vector(load_model("tiny"), SteeringVector(torch.zeros(3), layer=0))
    Traceback (most recent call last):
    ...
    ValueError: vector has d_model 3 but the model's residual stream has d_model 64
    """
    if not isinstance(vector, SteeringVector):
        raise ValueError(f"expected a SteeringVector, got {type(vector).__name__}")
    d_model, n_layers = int(model.cfg.d_model), int(model.cfg.n_layers)
    if vector.d_model != d_model:
        raise ValueError(
            f"vector has d_model {vector.d_model} but the model's residual stream has "
            f"d_model {d_model}"
        )
    if not 0 <= vector.layer < n_layers:
        raise ValueError(
            f"vector layer {vector.layer} is out of range: the model has layers 0..{n_layers - 1}"
        )
    if vector.hook_name not in model.hook_dict:
        raise ValueError(f"the model has no hook point named {vector.hook_name!r}")
    try:  # a d_model vector belongs on the residual stream of its own block
        check_hook(vector.layer, vector.hook_name)
    except ValueError as err:
        raise ValueError(f"vector {err}") from None
    if not bool(torch.isfinite(vector.direction).all()):
        raise ValueError("vector contains NaN or infinite values")
    name = model_name(model)
    if vector.model_name and name != "unknown" and vector.model_name != name:
        warnings.warn(
            f"vector was fitted on {vector.model_name!r} but is applied to {name!r}",
            stacklevel=3,
        )
    recorded = vector.meta.get("weight_basis")
    differs = basis_mismatch(recorded, model) if isinstance(recorded, dict) else None
    if differs:
        warnings.warn(
            f"vector was fitted in another weight basis than the model's: {differs}. "
            "TransformerLens's weight processing changes what the residual stream holds "
            "(centred writing weights remove its mean) or how it is read, so the vector's "
            "norm and alpha may not carry over; fit and steer on models loaded alike "
            "(HookedTransformer.from_pretrained_no_processing, or load_model(kind='hooked'))",
            BasisWarning,
            stacklevel=3,
        )


class NonFiniteError(ValueError):
    """Steering, or a score computed under it, gave NaN or infinite values.

    The message names the layer, the strength and the model's dtype.

    >>> isinstance(NonFiniteError("alpha=1e+300 at layer 1 (float32)"), ValueError)
    True
    """

    @staticmethod
    def found_in(err: BaseException) -> "NonFiniteError | None":
        """The :class:`NonFiniteError` in ``err``'s chain of causes (``err`` included), or None.

        >>> try:
        ...     try:
        ...         raise NonFiniteError("scores are NaN")
        ...     except NonFiniteError as inner:
        ...         raise RuntimeError("item 3 failed") from inner
        ... except RuntimeError as outer:
        ...     str(NonFiniteError.found_in(outer))
        'scores are NaN'
        """
        seen: set[int] = set()
        at: BaseException | None = err
        while at is not None and id(at) not in seen:
            if isinstance(at, NonFiniteError):
                return at
            seen.add(id(at))
            at = at.__cause__ or at.__context__
        return None


@dataclass
class _PositionTracker:
    """Works out, for each forward call, which positions to steer.

    A call reads a new prompt unless it continues the one read last: it passes a KV cache
    (or an attention mask longer than its tokens), or it is a later step of the same
    generation (:func:`~interp_steer.models.generating`; generation that recomputes the
    whole sequence each step). Then the prompt length is kept and the positions after it
    count as generated. The tokens never decide it.
    """

    mode: str
    prompt_len: int = 0
    run: object | None = None  # the generation the prompt was read in
    mask: torch.Tensor | None = None  # [batch, pos] for the current call

    def on_call(
        self,
        shape: tuple[int, int] | None,
        device: torch.device | None,
        attention: torch.Tensor | None,
        past: int,
        run: object | None,
    ) -> None:
        if shape is None:  # inputs_embeds: no token ids, treat the call as a fresh prompt
            self.mask = None
            return
        batch, length = shape
        if past == 0 and (run is None or run is not self.run):
            self.prompt_len, self.run = length, run
        real = (
            attention[:, -length:].bool().to(device)
            if attention is not None and attention.ndim == 2
            else torch.ones(batch, length, dtype=torch.bool, device=device)
        )
        self.mask = self._select(real, past + torch.arange(length, device=device))

    def _select(self, real: Mask, abs_pos: torch.Tensor) -> Mask:
        in_prompt = (abs_pos < self.prompt_len).unsqueeze(0)
        if self.mode == "all":
            return real
        if self.mode == "prompt":
            return real & in_prompt
        if self.mode == "generated":
            return real & ~in_prompt
        # "last": the last real prompt token of each row
        prompt_real = real & in_prompt
        idx = torch.arange(real.shape[1], device=real.device).expand_as(real)
        last = torch.where(prompt_real, idx, -1).max(dim=1, keepdim=True).values
        return (idx == last) & prompt_real


class _Health:
    """Whether a hooked tensor was ever non-finite, kept on its device (no sync per call)."""

    def __init__(self) -> None:
        self.flags: dict[str, torch.Tensor] = {}

    def note(self, what: str, tensor: torch.Tensor) -> None:
        bad = ~torch.isfinite(tensor).all()
        seen = self.flags.get(what)
        self.flags[what] = bad if seen is None else seen | bad.to(seen.device)

    def first_bad(self) -> str | None:
        """The first ``what`` that was non-finite (and forget them all), or None."""
        for what, flag in self.flags.items():
            if bool(flag):
                self.flags.clear()
                return what
        return None


def _terms(
    vectors: Sequence[SteeringVector], alpha: float, dtype: torch.dtype
) -> dict[str, tuple[int, torch.Tensor]]:
    """``hook name -> (layer, alpha * summed vector)`` in float32; refuse one that overflows."""
    summed: dict[str, torch.Tensor] = {}
    layers: dict[str, int] = {}
    for vector in vectors:
        d = vector.direction.detach().float()
        summed[vector.hook_name] = summed[vector.hook_name] + d if vector.hook_name in summed else d
        layers[vector.hook_name] = vector.layer
    limit = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
    name = str(dtype).removeprefix("torch.")
    terms = {}
    for hook_name, direction in summed.items():
        term = alpha * direction
        peak = float(term.abs().max()) if term.numel() else 0.0
        if not peak <= limit:  # also NaN
            raise NonFiniteError(
                f"alpha={alpha:g} at layer {layers[hook_name]} gives a steering term with an "
                f"entry of {peak:.3g}, beyond what {name} holds ({limit:.3g}); use a smaller alpha"
            )
        terms[hook_name] = (layers[hook_name], term)
    return terms


def _units(vectors: Sequence[SteeringVector], operator: str) -> dict[str, tuple[int, torch.Tensor]]:
    """``hook name -> (layer, unit direction)`` in float32, for an operator other than add."""
    units: dict[str, tuple[int, torch.Tensor]] = {}
    for vector in vectors:
        if vector.hook_name in units:
            raise ValueError(
                f"operator={operator!r} acts along one direction per hook point, got several "
                f"vectors at {vector.hook_name}; combine them into one first (v1 + v2)"
            )
        d = vector.direction.detach().double()
        norm = float(d.norm())
        if not norm > 0:
            raise ValueError(f"operator={operator!r} needs a non-zero vector (its direction)")
        units[vector.hook_name] = (vector.layer, (d / norm).float())
    return units


def _operate(
    h: torch.Tensor, u: torch.Tensor, operator: str, alpha: float, angle: float, value: float
) -> torch.Tensor:
    """Apply a non-add :data:`Operator` to ``h`` (``[..., d_model]``) along the unit ``u``."""
    if alpha == 0 or (operator == "rotate" and angle == 0):
        return h
    c = h @ u
    if operator == "ablate":
        return h - (alpha * c).unsqueeze(-1) * u
    if operator == "clamp":
        return h + (alpha * (value - c)).unsqueeze(-1) * u
    # rotate: (c, p) -> the 2-D rotation by theta in the plane of u and h's part off u
    theta = math.radians(alpha * angle)
    perp = h - c.unsqueeze(-1) * u
    p = perp.norm(dim=-1)
    new_c = c * math.cos(theta) + p * math.sin(theta)
    new_p = p * math.cos(theta) - c * math.sin(theta)
    past = new_p < 0  # would turn past u (theta > 0) or past -u (theta < 0): stop there
    new_c = torch.where(past, math.copysign(1.0, theta) * h.norm(dim=-1), new_c)
    new_p = torch.where(past, torch.zeros_like(new_p), new_p)
    off_u = p > 0  # h parallel to u (or zero): no plane to turn in, h stays as it is
    scale = torch.where(off_u, new_p / torch.where(off_u, p, torch.ones_like(p)), 0.0)
    out = new_c.unsqueeze(-1) * u + scale.unsqueeze(-1) * perp
    return torch.where(off_u.unsqueeze(-1), out, h)


def _check_operator(
    operator: str, alpha: float, angle: float | None, value: float | None, dtype: torch.dtype
) -> tuple[float, float]:
    """Validate the operator's own arguments; return ``(angle, value)`` with 0 for unused."""
    check_choice("operator", operator, OPERATORS)
    needs = {"angle": ("rotate", "degrees"), "value": ("clamp", "residual units along v/‖v‖")}
    for name, given in (("angle", angle), ("value", value)):
        owner, unit = needs[name]
        if given is None:
            if operator == owner:
                raise ValueError(f"operator={owner!r} needs {name}= (a number, in {unit})")
            continue
        if operator != owner:
            raise ValueError(f"{name} is for operator={owner!r} only, got operator={operator!r}")
        if isinstance(given, bool) or not isinstance(given, int | float):
            raise ValueError(f"{name} must be a finite number, got {given!r}")
        if not math.isfinite(given):
            raise ValueError(f"{name} must be a finite number, got {given!r}")
    if operator == "rotate" and angle is not None and not abs(alpha * angle) <= 180:
        raise ValueError(
            f"alpha * angle must lie in [-180, 180] degrees, got {alpha:g} * {angle:g}"
        )
    limit = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
    if operator == "clamp" and value is not None and not abs(alpha * value) <= limit:
        raise NonFiniteError(
            f"value={value:g} with alpha={alpha:g} is beyond what "
            f"{str(dtype).removeprefix('torch.')} holds ({limit:.3g}); use a smaller value"
        )
    return float(angle or 0.0), float(value or 0.0)


@contextmanager
def steer(
    model: Model,
    vectors: SteeringVector | Sequence[SteeringVector],
    *,
    alpha: float = 1.0,
    positions: Positions = "all",
    operator: Operator = "add",
    angle: float | None = None,
    value: float | None = None,
) -> Iterator[Model]:
    """Steer the residual stream along ``vector`` while the ``with`` block runs.

    By default adds ``alpha * vector``; ``operator`` picks another :data:`Operator`. Every
    operator acts only at the positions ``positions`` selects, never on pads, computes in
    float32 on bfloat16/float16 models, and is a function of each position's residual
    alone, so generation with and without the KV cache agree.

    Args:
        model: The model to steer (a ``TransformerBridge``, or a ``HookedTransformer`` on
            TransformerLens 3.x); it is not modified.
        vectors: One vector, or several (e.g. at several layers; for ``"add"``, vectors
            sharing a hook point are summed; the other operators take one per hook point).
        alpha: Strength of the operator. ``0`` leaves the model exactly as it is; ``1`` is
            the full operator (``"ablate"``: the whole component removed; ``"rotate"``: the
            whole ``angle``; ``"clamp"``: the component set to ``value``).
        positions: ``"all"`` (every prompt and generated token, the paper's setting),
            ``"prompt"``, ``"generated"`` or ``"last"`` (the last prompt token).
            Pad positions are never steered.
        operator: ``"add"`` (``h + alpha v``), ``"ablate"``, ``"rotate"`` or ``"clamp"``
            (see :data:`Operator`).
        angle: ``"rotate"`` only (and required there): degrees towards ``v`` (negative:
            away from it); ``alpha * angle`` must lie in [-180, 180].
        value: ``"clamp"`` only (and required there): the component ``h · v / ‖v‖`` to set,
            in residual units (e.g. the English mean projection a fitted vector records,
            ``v.meta["metrics"]["proj_english"]``).

    Yields:
        The model, for convenience.

    Raises:
        ValueError: a vector does not fit the model, ``alpha``/``positions``/``operator`` is
            invalid, ``angle``/``value`` is missing or given to the wrong operator, or a
            non-``"add"`` operator gets a zero vector or two vectors at one hook point.
            Nothing is registered in that case.
        NonFiniteError: ``alpha * vector`` (or ``alpha * value``) does not fit the model's
            dtype (raised before anything is registered), or a steered residual or the
            model's output turned NaN or infinite (raised at the next forward call or when
            the block ends).

    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> v = SteeringVector(torch.ones(64), layer=1)
    >>> base = model("Hallo Welt")
    >>> with steer(model, v, alpha=0.0):
    ...     torch.equal(model("Hallo Welt"), base)
    True
    >>> with steer(model, v, alpha=4.0):
    ...     torch.equal(model("Hallo Welt"), base)
    False
    >>> with steer(model, v, alpha=1e300):  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    interp_steer.steering.intervention.NonFiniteError: alpha=1e+300 at layer 1 ... float32 ...
    >>> with steer(model, v, operator="rotate", angle=30.0):  # norms kept, output changed
    ...     torch.equal(model("Hallo Welt"), base)
    False
    """
    vector_list = [vectors] if isinstance(vectors, SteeringVector) else list(vectors)
    if not vector_list:
        raise ValueError("steer() needs at least one SteeringVector")
    for vector in vector_list:
        check_vector(model, vector)
    check_choice("positions", positions, POSITION_MODES)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a finite number, got {alpha!r}")

    dtype = model_dtype(model)
    angle_deg, clamp_to = _check_operator(operator, alpha, angle, value, dtype)
    adds = operator == "add"
    terms = _terms(vector_list, alpha, dtype) if adds else _units(vector_list, operator)
    tracker = _PositionTracker(positions)
    health = _Health()
    how = "" if adds else f"operator={operator!r}, "
    how += {"rotate": f"angle={angle_deg:g}, ", "clamp": f"value={clamp_to:g}, "}.get(operator, "")
    where = f"with {how}alpha={alpha:g} ({str(dtype).removeprefix('torch.')})"
    hint = "use a smaller value" if operator == "clamp" else "use a smaller alpha"
    layers = ", ".join(str(layer) for layer, _ in terms.values())
    problems = {
        name: f"steering at layer {layer} {where} made the residual stream NaN or infinite; " + hint
        for name, (layer, _) in terms.items()
    }
    problems[_OUTPUT] = (
        f"the model's output turned NaN or infinite under steering at layer {layers} {where}; "
        + hint
    )

    def make_hook(name: str, term: Direction) -> Any:
        placed: dict[torch.device, torch.Tensor] = {}

        def hook(resid: Residual, hook: Any) -> Residual:
            add = placed.get(resid.device)
            if add is None:
                add = placed[resid.device] = term.to(resid.device)
            wide = torch.promote_types(resid.dtype, torch.float32)  # bf16/fp16 work in float32
            mask = tracker.mask
            if mask is not None and mask.shape != resid.shape[:2]:
                mask = None  # steer every position
            if not adds:  # `add` holds the unit direction; untouched positions stay bit-equal
                new = _operate(resid.to(wide), add.to(wide), operator, alpha, angle_deg, clamp_to)
                new = new.to(resid.dtype)
                out = new if mask is None else torch.where(mask.unsqueeze(-1), new, resid)
            elif mask is None:
                out = (resid.to(wide) + add).to(resid.dtype)
            else:
                out = (resid.to(wide) + mask.unsqueeze(-1).to(wide) * add).to(resid.dtype)
            health.note(name, out)
            return out

        return hook

    def check() -> None:
        bad = health.first_bad()
        if bad is not None:
            raise NonFiniteError(problems[bad])

    def on_call(shape: Any, device: Any, attention: Any, past: int) -> None:
        check()  # what the previous call left
        tracker.on_call(shape, device, attention, past, current_generation(model))

    def on_output(logits: Any) -> None:
        if isinstance(logits, torch.Tensor) and logits.is_floating_point() and logits.ndim == 3:
            # the last position only: what generation reads next; a full [batch, pos, vocab]
            # scan would cost a pass over ~1 GB per forward on Gemma-3's 262k vocabulary
            # (scores of every position are checked where they are computed)
            health.note(_OUTPUT, logits[:, -1])

    fwd_hooks = [(name, make_hook(name, term)) for name, (_, term) in terms.items()]
    handles = []
    try:
        with marked_generation(model):
            handles = watch_calls(model, on_call, on_output)
            with model.hooks(fwd_hooks=fwd_hooks):
                yield model
        check()
    finally:
        for handle in handles:
            handle.remove()


__all__ = [
    "BasisWarning",
    "NonFiniteError",
    "OPERATORS",
    "Operator",
    "steer",
]
