"""Batched, left-padded model calls for evaluation: greedy generation and choice scoring.

Both take plain strings, tokenise each row on its own (BOS as the model's ``to_tokens``
adds it), left-pad with an explicit attention mask, and run under whatever hooks are active
(so :func:`interp_steer.steering.steer` applies). Log-likelihood scoring puts every
continuation of every context into ONE forward pass and computes logits only for the last
positions, where the continuations sit; that pass takes the exact fast path of
:mod:`interp_steer.models.fast` (the Hugging Face modules without the bridge's wrappers).

Example:
    >>> from interp_steer import load_model
    >>> model = load_model("tiny")
    >>> [round(s, 2) < 0 for s, _, _ in score_continuations(model, ["Hi"], [[" a", " b"]])[0]]
    [True, True]
"""

import warnings
from collections.abc import Sequence

import torch

from interp_steer.models.backend import Model
from interp_steer.models.fast import fast_forward, prefix_blocker, prefix_step
from interp_steer.models.generation import greedy_generate, keeps_logits
from interp_steer.types import Mask, Tokens


def token_ids(model: Model, text: str, *, bos: bool) -> list[int]:
    """Token ids of one text: with the model's BOS (as ``to_tokens``) or bare (continuations).

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> token_ids(model, "Hi", bos=True), token_ids(model, "Hi", bos=False)
        ([2, 43, 76], [43, 76])
    """
    if bos:
        return [int(t) for t in model.to_tokens(text, truncate=False)[0]]
    return list(model.tokenizer(text, add_special_tokens=False)["input_ids"])


def context_tokens(
    model: Model, texts: Sequence[str], *, warn: str | None = None
) -> tuple[list[torch.Tensor], int]:
    """Token ids of each text (with BOS, as ``to_tokens``), cut to the model's context.

    A text longer than ``model.cfg.n_ctx`` tokens keeps its first ``n_ctx`` tokens.
    Evaluation never cuts (:func:`token_ids`); activation collection, the logit lens and
    BiPO do, and say so.

    Args:
        model: The bridge.
        texts: The texts.
        warn: If given and any text was cut, one warning names this (``"activations"``)
            and the count.

    Returns:
        One 1-D CPU tensor of ids per text, and how many texts were cut.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")  # n_ctx 512, one token per byte
        >>> rows, n_cut = context_tokens(model, ["Hallo", "x" * 600])
        >>> [len(r) for r in rows], n_cut
        ([6, 512], 1)
    """
    n_ctx = int(getattr(model.cfg, "n_ctx", None) or 0)  # 0: no limit known
    rows = [model.to_tokens(t, move_to_device=False, truncate=False)[0] for t in texts]
    n_cut = 0 if not n_ctx else sum(len(r) > n_ctx for r in rows)
    if n_cut:
        rows = [r[:n_ctx] for r in rows]
        if warn is not None:
            warn_cut(warn, n_cut, len(rows), n_ctx, "texts", stacklevel=3)
    return rows, n_cut


def warn_cut(
    what: str, n_cut: int, total: int, n_ctx: int, unit: str = "texts", *, stacklevel: int = 2
) -> None:
    """Warn once that ``n_cut`` of ``total`` inputs were cut to the ``n_ctx``-token context.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_cut("activations", 3, 200, 512)
    >>> str(caught[0].message)
    "activations: 3 of 200 texts exceed the model's context of 512 tokens and were cut to it"
    """
    warnings.warn(
        f"{what}: {n_cut} of {total} {unit} exceed the model's context of {n_ctx} "
        "tokens and were cut to it",
        stacklevel=stacklevel + 1,
    )


def pad_id(model: Model) -> int:
    """The id left padding uses: the tokenizer's pad token, else its EOS, else 0.

    Padded positions are masked out, so the id changes no result; it only has to exist.

    >>> from interp_steer import load_model
    >>> pad_id(load_model("tiny"))
    0
    """
    tok = model.tokenizer
    for token in (tok.pad_token_id, tok.eos_token_id):
        if token is not None:
            return int(token)
    return 0


def left_pad(model: Model, rows: Sequence[Sequence[int]]) -> tuple[Tokens, Mask]:
    """Left-pad token rows into ``(ids, attention_mask)`` tensors on the model's device.

    The one padding helper of the package (generation, scoring, activations, BiPO, the
    logit lens); pass ``mask.long()`` as a forward's ``attention_mask``.

    Example:
        >>> from interp_steer import load_model
        >>> ids, mask = left_pad(load_model("tiny"), [[2, 5, 6], [2, 7]])
        >>> ids.tolist(), mask.long().tolist()
        ([[2, 5, 6], [0, 2, 7]], [[1, 1, 1], [0, 1, 1]])
    """
    return _pad(model, rows, left=True)


def _pad(model: Model, rows: Sequence[Sequence[int]], *, left: bool) -> tuple[Tokens, Mask]:
    """:func:`left_pad`, or with ``left=False`` the rows padded on the right."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id(model), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        if len(row):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = torch.as_tensor(row, dtype=torch.long)
            mask[i, span] = True
    device = model.cfg.device or "cpu"
    return ids.to(device), mask.to(device)


def tail_logits(model: Model, ids: Tokens, mask: Mask, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions, ``[batch, keep, d_vocab]``, in one forward.

    Only those positions are unembedded where the model takes ``logits_to_keep``. The
    forward is :func:`~interp_steer.models.fast.fast_forward`: a bridge's Hugging Face
    modules alone, with the active hooks (``steer``'s) fired as the bridge fires them, or
    the bridge itself where a hook needs it.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> ids, mask = left_pad(model, [[2, 5, 6], [2, 7]])
        >>> full = model(ids, attention_mask=mask.long())[:, -1:]
        >>> torch.allclose(tail_logits(model, ids, mask, 1), full, atol=1e-5)  # float rounding
        True
    """
    logits = fast_forward(model, ids, mask, logits_to_keep=keep if keeps_logits(model) else None)
    return logits[:, -keep:]


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    r"""Cut ``text`` at the first occurrence of any stop string.

    Example:
        >>> cut_at_stop("18.\n\nQuestion: next", ["Question:", "\n\n\n"])
        '18.\n\n'
    """
    return text[: min((text.find(s) for s in stops if s and s in text), default=len(text))]


def generate_texts(
    model: Model,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    stop: Sequence[str] = (),
    progress: bool | None = None,
) -> list[str]:
    """Greedy continuations of a left-padded batch, cut at the first stop string.

    Decodes with the KV cache through :func:`interp_steer.models.greedy_generate`
    (which works around TransformerLens 4.3's cache bug), stopping a row at EOS; its bar
    counts generated tokens (``progress`` as there).

    Example:
        >>> from interp_steer import load_model
        >>> outs = generate_texts(load_model("tiny"), ["Hallo", "Hi"], max_new_tokens=4)
        >>> len(outs), all(isinstance(o, str) for o in outs)
        (2, True)
    """
    ids, mask = left_pad(model, [token_ids(model, p, bos=True) for p in prompts])
    rows = greedy_generate(
        model, ids, mask, max_new_tokens=max_new_tokens, stop=stop, progress=progress
    )
    texts = model.tokenizer.batch_decode(rows, skip_special_tokens=True)
    return [cut_at_stop(t, stop) for t in texts]


def score_continuations(
    model: Model,
    contexts: Sequence[str],
    continuations: Sequence[Sequence[str]],
    *,
    share_context: bool = False,
) -> list[list[tuple[float, int, int]]]:
    """Log-likelihood of each continuation after its context, batched.

    Rows are ``context tokens + continuation tokens`` (the continuation tokenised on its
    own), left-padded, so every continuation ends at the last position and only the last
    ``max continuation length + 1`` positions' logits are computed: ONE forward.

    With ``share_context``, each context runs once and its continuations run on its KV
    cache (two forwards: the contexts, then every continuation right-padded after its
    context): far fewer tokens when contexts are long and have several continuations
    (the forcing benchmark's relevance scores one continuation under ``k + 1`` prompts).
    The sums equal the one-forward ones up to float rounding. It applies where
    :func:`~interp_steer.models.fast.prefix_blocker` is None (the unhooked bridge), else
    the call takes the one forward: under a hook the scores stay those of the forward the
    hook was written for.

    Args:
        model: The model; active hooks apply.
        contexts: The contexts (BOS added as ``to_tokens`` adds it).
        continuations: Per context, its continuations (each non-empty in tokens).
        share_context: Run each context once (see above).

    Returns:
        Per context, per continuation: ``(sum of log-probabilities, tokens, characters)``.

    Raises:
        ValueError: A continuation with no tokens.

    Example:
        >>> from interp_steer import load_model
        >>> model = load_model("tiny")
        >>> s = score_continuations(model, ["Es regnet"], [[" heute", " nie"]])
        >>> [(n_tok, n_chr) for _, n_tok, n_chr in s[0]], s[0][0][0] < 0
        ([(6, 5), (4, 3)], True)
        >>> shared = score_continuations(model, ["Es regnet"], [[" heute", " nie"]],
        ...                              share_context=True)
        >>> [abs(a[0] - b[0]) < 1e-4 for a, b in zip(s[0], shared[0])]
        [True, True]
    """
    ctxs = [token_ids(model, context, bos=True) for context in contexts]
    conts: list[list[list[int]]] = []
    for context_conts in continuations:
        conts.append([])
        for cont in context_conts:
            cont_ids = token_ids(model, cont, bos=False)
            if not cont_ids:
                raise ValueError(f"continuation {cont!r} has no tokens")
            conts[-1].append(cont_ids)
    if len(ctxs) != len(conts):
        raise ValueError(f"one list of continuations per context: {len(ctxs)} and {len(conts)}")
    if share_context and prefix_blocker(model) is None and any(conts):
        sums = _sums_on_shared_contexts(model, ctxs, conts)
    else:
        sums = _sums_in_one_forward(model, ctxs, conts)
    out, i = [], 0
    for texts, tokens in zip(continuations, conts, strict=True):
        out.append(
            [
                (sums[i + j], len(ids), len(t.strip()))
                for j, (t, ids) in enumerate(zip(texts, tokens, strict=True))
            ]
        )
        i += len(texts)
    return out


def _sums_in_one_forward(
    model: Model, ctxs: list[list[int]], conts: list[list[list[int]]]
) -> list[float]:
    """Summed log-probabilities, rows ``context + continuation`` left-padded in one forward."""
    rows = [
        ctx + cont for ctx, context_conts in zip(ctxs, conts, strict=True) for cont in context_conts
    ]
    spans = [len(cont) for context_conts in conts for cont in context_conts]
    ids, mask = left_pad(model, rows)
    keep = max(spans) + 1
    with torch.no_grad():
        logits = tail_logits(model, ids, mask, keep)
    sums = []
    for r, c in enumerate(spans):
        logprobs = logits[r, keep - 1 - c : keep - 1].float().log_softmax(-1)
        sums.append(float(logprobs.gather(-1, ids[r, -c:, None]).sum()))
    return sums


def _sums_on_shared_contexts(
    model: Model, ctxs: list[list[int]], conts: list[list[list[int]]]
) -> list[float]:
    """Summed log-probabilities: each context once, its continuations on its KV cache."""
    ids, mask = left_pad(model, ctxs)
    owner = [c for c, context_conts in enumerate(conts) for _ in context_conts]
    rows = [cont for context_conts in conts for cont in context_conts]
    cont_ids, cont_mask = _pad(model, rows, left=False)  # row r follows its context at once
    index = torch.as_tensor(owner, dtype=torch.long, device=ids.device)
    with torch.no_grad():
        first, cache = prefix_step(
            model, ids, mask.long(), None, logits_to_keep=1 if keeps_logits(model) else None
        )
        cache.batch_select_indices(index)
        attention = torch.cat([mask.long()[index], cont_mask.long()], dim=1)
        logits, _ = prefix_step(model, cont_ids, attention, cache)
    last = first[:, -1]  # predicts each context's first continuation token
    sums = []
    for r, row in enumerate(rows):
        scores = torch.cat([last[owner[r], None], logits[r, : len(row) - 1]])
        logprobs = scores.float().log_softmax(-1)
        sums.append(float(logprobs.gather(-1, cont_ids[r, : len(row), None]).sum()))
    return sums


__all__ = [
    "context_tokens",
    "cut_at_stop",
    "generate_texts",
    "left_pad",
    "pad_id",
    "score_continuations",
    "tail_logits",
    "token_ids",
    "warn_cut",
]
