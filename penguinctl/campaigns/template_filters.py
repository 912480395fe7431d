"""The filters campaign templates may use (an allowlist), each wrapped to stay in the limits.

Every filter is charged one step, its arguments checked before it runs (``center`` width,
``truncate`` length, ``join``/``replace`` result size, ``slice`` count, ``sum`` of numbers
only...) and its result measured (template_limits.py). The wrapper takes the context
(``pass_context``), so Jinja never runs a filter at compile time, outside a budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from jinja2 import pass_context
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import markup_join, str_join
from jinja2.utils import _PassArg

from penguinctl.campaigns.template_limits import (
    MAX_OUTPUT,
    MAX_PAD,
    TemplateLimit,
    charge,
    check_join,
    check_pad,
    check_printf,
    check_replace,
    sized,
)


# -- filters ---------------------------------------------------------------------------------------
def _truncate(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # do_truncate(env, s, length=255, killwords=False, end="...", leeway=None) asserts
    length = kwargs.get("length", args[2] if len(args) > 2 else 255)
    end = kwargs.get("end", args[4] if len(args) > 4 else "...")
    if isinstance(length, int) and isinstance(end, str) and length < len(end):
        raise ValueError(f"truncate: length {length} is shorter than the end {end!r}")


def _indent(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # do_indent(s, width=4, first=False, blank=False)
    text = args[0] if args else ""
    width = kwargs.get("width", args[1] if len(args) > 1 else 4)
    pad = len(width) if isinstance(width, str) else width
    check_pad(pad, "indent")
    grown = isinstance(text, str) and isinstance(pad, int)
    if grown and len(text) + (text.count("\n") + 1) * pad > MAX_OUTPUT:
        raise TemplateLimit(f"indent would make more than {MAX_OUTPUT:,} characters")


def _slice(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # sync_do_slice(value, slices, fill_with=None)
    slices = kwargs.get("slices", args[1] if len(args) > 1 else 1)
    if isinstance(slices, int) and slices > MAX_PAD:
        raise TemplateLimit(f"more than {MAX_PAD} slices")


def _join(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # sync_do_join(eval_ctx, value, d="", attribute=None): materialise and measure first
    if len(args) < 2 or kwargs.get("attribute") is not None or len(args) > 3:
        return args, kwargs
    separator = kwargs.get("d", args[2] if len(args) > 2 else "")
    items = list(args[1])
    if isinstance(separator, str):
        check_join(items, separator)
    return (args[0], items, *args[2:]), kwargs


def _sum(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # sync_do_sum(env, iterable, attribute=None, start=0): numbers only (lists: quadratic)
    items = list(args[1]) if len(args) > 1 else []
    start = kwargs.get("start", args[3] if len(args) > 3 else 0)
    numbers = (int, float)
    plain = kwargs.get("attribute") is None and len(args) < 3
    if plain and not all(isinstance(i, numbers) for i in [start, *items]):
        raise ValueError("sum adds numbers only")
    return (args[0], items, *args[2:]), kwargs


def _replace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # do_replace(eval_ctx, s, old, new, count=None)
    if len(args) >= 4:
        check_replace(
            args[1], args[2], args[3], kwargs.get("count", args[4] if len(args) > 4 else None)
        )


def _center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    check_pad(kwargs.get("width", args[1] if len(args) > 1 else 80), "center")


def _format(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and isinstance(args[0], str):
        check_printf(args[0])


Check = Callable[[tuple[Any, ...], dict[str, Any]], Any]
# name -> the check run on its arguments (as Jinja passes them) before it runs
_CHECKS: dict[str, Check | None] = {
    "abs": None,
    "attr": None,
    "batch": None,
    "capitalize": None,
    "center": _center,
    "count": None,
    "d": None,
    "default": None,
    "dictsort": None,
    "e": None,
    "escape": None,
    "filesizeformat": None,
    "first": None,
    "float": None,
    "forceescape": None,
    "format": _format,
    "groupby": None,
    "indent": _indent,
    "int": None,
    "items": None,
    "join": _join,
    "last": None,
    "length": None,
    "list": None,
    "lower": None,
    "map": None,
    "max": None,
    "min": None,
    "reject": None,
    "rejectattr": None,
    "replace": _replace,
    "reverse": None,
    "round": None,
    "safe": None,
    "select": None,
    "selectattr": None,
    "slice": _slice,
    "sort": None,
    "string": None,
    "striptags": None,
    "sum": _sum,
    "title": None,
    "trim": None,
    "truncate": _truncate,
    "unique": None,
    "upper": None,
    "urlencode": None,
    "wordcount": None,
    "wordwrap": None,
}
FILTERS = frozenset(_CHECKS)


def _bounded(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` charged one step, its arguments checked and its result measured. It takes the
    context (``pass_context``), so Jinja never runs it at compile time, and hands the filter
    the argument it asked for (context, eval context or environment)."""
    check = _CHECKS[name]
    wants = _PassArg.from_obj(func)

    @pass_context
    def run(context: Any, *args: Any, **kwargs: Any) -> Any:
        budget = charge()
        if wants is _PassArg.context:
            args = (context, *args)
        elif wants is _PassArg.eval_context:
            args = (context.eval_ctx, *args)
        elif wants is _PassArg.environment:
            args = (context.environment, *args)
        if check is not None:
            changed = check(args, kwargs)
            if changed is not None:
                args, kwargs = changed
        return sized(func(*args, **kwargs), budget)

    run.__name__ = run.__qualname__ = f"bounded_{name}"
    return run


@pass_context
def for_steps(context: Any, iterable: Any) -> Iterator[Any]:
    """The iterable of a ``{% for %}`` (an AST transform wraps each): one step per item."""
    for item in iterable:
        charge()
        yield item


@pass_context
def concat(context: Any, items: Any) -> str:
    """``a ~ b ~ c`` (an AST transform turns Concat nodes into this filter): measured first."""
    charge()
    parts = check_join(items)
    return markup_join(parts) if context.eval_ctx.autoescape else str_join(parts)


def _sync(func: Callable[..., Any]) -> Callable[..., Any]:
    """The synchronous function behind one of Jinja's async-variant filters (whose wrapper
    takes an extra eval context and decides per call), else ``func``."""
    if getattr(func, "jinja_async_variant", False):
        return func.__wrapped__  # type: ignore[attr-defined,no-any-return]
    return func


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """The filters of a campaign template: the allowlisted ones, bounded."""
    return {name: _bounded(name, _sync(JINJA_FILTERS[name])) for name in FILTERS}
