"""The bounded Jinja2 sandbox campaign templates render in: what a template may do, and how much.

Jinja2's ``ImmutableSandboxedEnvironment`` refuses escapes (private attributes, mutation of
lists and dicts, unsafe callables) but not cost: nested loops, ``center(10**9)``,
``'%01000000000d' % 1`` or a recursive macro run for minutes or allocate gigabytes. A campaign
template is written by a tenant's user and rendered by the worker for every message, so every
render is bounded here, with Jinja2's own hooks:

- **Steps and time.** Each render has a budget (``Budget``): at most ``MAX_STEPS``
  loop iterations, calls and filter applications, and ``MAX_SECONDS`` of the thread's CPU
  time. Loops are counted by wrapping every ``{% for %}`` iterable in a counting filter (an
  AST transform before compiling), calls through ``SandboxedEnvironment.call``, filters by a
  wrapper around each one. Macros and recursive loops nest at most ``MAX_DEPTH`` deep.
- **Sizes.** No value a template builds may exceed ``MAX_OUTPUT`` characters, and neither
  may its output: string concatenation (``~``, ``+``), repetition (``*``), ``join``,
  ``replace``, the buffers of macros and blocks (``Environment.concat``) are measured *before*
  they are built. Padding (``center``, ``indent``, ``ljust``, ``%10d``, ``{:>10}``) is at most
  ``MAX_PAD`` wide; ``slice`` makes at most ``MAX_PAD`` slices; integers stay under
  ``MAX_INT_BITS`` bits.
- **What is there.** Every arithmetic operator is intercepted (``intercepted_binops``), which
  also keeps them from being folded at compile time; filters are an allowlist (``FILTERS``;
  no ``random``: a re-render must give the same text; no ``tojson``/``pprint``/``xmlattr``/
  ``urlize``) wrapped so none runs at compile time; methods may be called only on strings
  (an allowlist, bounded), dicts and lists (read-only) and the loop object; no globals, no
  ``include``/``import``/``extends`` (``check`` refuses them and unknown filters at launch).

The limits and the budget live in template_limits.py, the filters in template_filters.py; this
module wires them into Jinja2 (the environment, calls, the AST transform) and lists what
``check`` refuses at launch. Anything a render raises becomes a template error in
templates.render, never an exception that escapes to the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from penguinctl.campaigns.template_filters import FILTERS, bounded_filters, concat, for_steps
from penguinctl.campaigns.template_limits import (
    MAX_DEPTH,
    TemplateLimit,
    binop,
    bounded_concat,
    charge,
    check_format_string,
    check_join,
    check_pad,
    check_replace,
    sized,
)

STEPS_FILTER = "_pc_steps"  # names a template cannot write (filters named with '_' are refused)
CONCAT_FILTER = "_pc_concat"


class _Bound(NodeTransformer):
    """Counts every loop iteration and measures every concatenation (see the module doc)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, STEPS_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        items = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return nodes.Filter(items, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def instrument(ast: nodes.Template) -> nodes.Template:
    """The template with its loops counted and its concatenations measured."""
    _Bound().visit(ast)
    return ast


# -- calls -----------------------------------------------------------------------------------------
_STR_METHODS = frozenset(
    {
        "capitalize",
        "casefold",
        "center",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "islower",
        "isnumeric",
        "isspace",
        "istitle",
        "isupper",
        "join",
        "ljust",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "replace",
        "rfind",
        "rindex",
        "rjust",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        "zfill",
    }
)
_READ_METHODS = {
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call a template has no business making, or one that would be too costly."""
    if isinstance(obj, Macro | LoopContext) or getattr(obj, "_pc_format", False):
        return
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, LoopContext) and name in ("cycle", "changed"):
        return
    if isinstance(owner, str) and name in _STR_METHODS:
        if name in ("center", "ljust", "rjust", "zfill") and args:
            check_pad(args[0], name)
        elif name == "replace" and len(args) >= 2:
            check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "join" and args:
            check_join(list(args[0]), owner)
        return
    allowed = next((m for t, m in _READ_METHODS.items() if isinstance(owner, t)), frozenset())
    if name in allowed:
        return
    what = f"{type(owner).__name__}.{name}" if owner is not None else type(obj).__name__
    raise SecurityError(f"calling {what} is not allowed in a template")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The environment of campaign templates (see the module doc)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    concat = staticmethod(bounded_concat)  # type: ignore[assignment]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return binop(operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = charge()
        _check_call(__obj, args, kwargs)
        if budget.depth >= MAX_DEPTH:
            raise TemplateLimit(f"macros or loops nested more than {MAX_DEPTH} deep")
        budget.depth += 1
        try:
            return sized(super().call(__context, __obj, *args, **kwargs), budget)
        finally:
            budget.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_format_string(value.__self__)

        def bounded(*args: Any, **kwargs: Any) -> str:
            charge()
            return sized(wrapper(*args, **kwargs))

        bounded._pc_format = True  # type: ignore[attr-defined]
        return bounded


def environment(html: bool, undefined: type[Undefined]) -> BoundedSandbox:
    """A new bounded environment: no globals, the allowlisted filters (bounded), autoescape
    for HTML."""
    env = BoundedSandbox(
        undefined=undefined,
        autoescape=html,
        keep_trailing_newline=True,
        auto_reload=False,
        cache_size=0,
    )
    env.globals.clear()
    env.filters = bounded_filters()
    env.filters[STEPS_FILTER] = for_steps
    env.filters[CONCAT_FILTER] = concat
    return env


# -- what check() refuses at launch ------------------------------------------------------------
_STATEMENTS = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
}


def forbidden(ast: nodes.Template, env: BoundedSandbox) -> list[tuple[int, str]]:
    """``(line, problem)`` for every construct of ``ast`` campaign templates may not use:
    private attributes and items, filters and tests not available here, other templates."""
    problems: list[tuple[int, str]] = []
    for attr in ast.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            problems.append((attr.lineno, f"attribute '{attr.attr}' is not allowed"))
    for item in ast.find_all(nodes.Getitem):
        key = item.arg
        if isinstance(key, nodes.Const) and str(key.value).startswith("_"):
            problems.append((item.lineno, f"item '{key.value}' is not allowed"))
    for node in ast.find_all(nodes.Filter):
        if node.name not in FILTERS:
            problems.append((node.lineno, f"filter '{node.name}' is not available in templates"))
    for test in ast.find_all(nodes.Test):
        if test.name not in env.tests:
            problems.append((test.lineno, f"test '{test.name}' is not available in templates"))
    for kind, shown in _STATEMENTS.items():
        for stmt in ast.find_all(kind):
            problems.append((stmt.lineno, f"{shown} is not available in templates"))
    return problems


__all__ = ["FILTERS", "BoundedSandbox", "environment", "forbidden", "instrument"]
