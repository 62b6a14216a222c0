"""Griffe extension for the docs build: doctests as code, Sphinx roles as links.

The package's docstrings end with runnable ``>>>`` examples (pytest runs them as
doctests) and cross-reference with Sphinx roles (``:func:`fit_vector```). Griffe's Google
parser turns ``>>>`` lines into code only inside an ``Examples:`` section and leaves roles
as text; Markdown would read a bare doctest as a paragraph, and ``[...]`` in its output
as broken cross-references. In the docs build only (the source is not touched), this
extension:

* reads a top-level ``Example:`` heading as ``Examples:`` (Google style allows both;
  Griffe would render the singular as an admonition of plain text);
* wraps every run of unindented ``>>>`` lines (with the expected output that follows, up
  to the next blank line) in a ``pycon`` code fence;
* turns ``:func:`name```, ``:class:`~pkg.mod.Name``` and the other roles into optional
  autorefs: a link where the target is documented, plain code where it is not (an
  unresolved optional reference never fails the strict build).
"""

import re
from collections.abc import Callable
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`(~?)([\w.]+)(?:\(\))?`")


def fence_doctests(text: str) -> str:
    """Return ``text`` with each unindented doctest run fenced, ``Example:`` as ``Examples:``.

    >>> fence_doctests("Intro.\\n>>> 1 + 1\\n2").split("\\n")
    ['Intro.', '', '```pycon', '>>> 1 + 1', '2', '```']
    """
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False  # inside a fence written by hand: leave it alone
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.rstrip() == "Example:":
            line = "Examples:"
        if in_fence or not line.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        if out and out[-1].strip():
            out.append("")
        out.append("```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append("```")
    return "\n".join(out)


def link_roles(text: str, resolve: Callable[[str], str]) -> str:
    """Replace Sphinx roles outside code fences and doctests with optional autorefs.

    >>> link_roles("See :func:`~a.b.run`.", lambda name: name)
    'See <autoref identifier="a.b.run" optional><code>run</code></autoref>.'
    """

    def replace(match: re.Match[str]) -> str:
        short, name = match.group(1) == "~", match.group(2)
        title = name.rsplit(".", 1)[-1] if short else name
        return f'<autoref identifier="{resolve(name)}" optional><code>{title}</code></autoref>'

    out: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        code = in_fence or line.lstrip().startswith((">>>", "..."))
        out.append(line if code else _ROLE.sub(replace, line))
    return "\n".join(out)


def _resolver(obj: griffe.Object) -> Callable[[str], str]:
    """Resolve a (possibly relative, possibly dotted) name in ``obj``'s scope to a full path."""

    def resolve(name: str) -> str:
        if name.startswith("interp_steer"):
            return name
        head, _, rest = name.partition(".")
        scope: griffe.Object | None = obj
        while scope is not None:  # the object, its class, its module, ...
            try:
                full = scope.resolve(head)
            except griffe.NameResolutionError:
                scope = scope.parent
                continue
            return f"{full}.{rest}" if rest else full
        return name

    return resolve


class DoctestFences(griffe.Extension):
    """Fence top-level doctests and link Sphinx roles in every docstring before parsing."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the object's docstring (the docs' copy only)."""
        if obj.docstring is None:
            return
        text = fence_doctests(obj.docstring.value)
        obj.docstring.value = link_roles(text, _resolver(obj))
