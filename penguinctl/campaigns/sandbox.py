"""The bounded Jinja2 sandbox campaign templates render in: what a template may do, and how much.

Jinja2's ``ImmutableSandboxedEnvironment`` refuses escapes (private attributes, mutation of
lists and dicts, unsafe callables) but not cost: nested loops, ``center(10**9)``,
``'%01000000000d' % 1`` or a recursive macro run for minutes or allocate gigabytes. A campaign
template is written by a tenant's user and rendered by the worker for every message, so every
render is bounded here, with Jinja2's own hooks:

- **Steps and time.** Each render has a budget (:class:`Budget`): at most :data:`MAX_STEPS`
  loop iterations, calls and filter applications, and :data:`MAX_SECONDS` of the thread's CPU
  time. Loops are counted by wrapping every ``{% for %}`` iterable in a counting filter (an
  AST transform before compiling), calls through ``SandboxedEnvironment.call``, filters by a
  wrapper around each one. Macros and recursive loops nest at most :data:`MAX_DEPTH` deep.
- **Sizes.** No value a template builds may exceed :data:`MAX_OUTPUT` characters, and neither
  may its output: string concatenation (``~``, ``+``), repetition (``*``), ``join``,
  ``replace``, the buffers of macros and blocks (``Environment.concat``) are measured *before*
  they are built. Padding (``center``, ``indent``, ``ljust``, ``%10d``, ``{:>10}``) is at most
  :data:`MAX_PAD` wide; ``slice`` makes at most :data:`MAX_PAD` slices; integers stay under
  :data:`MAX_INT_BITS` bits.
- **What is there.** Every arithmetic operator is intercepted (``intercepted_binops``), which
  also keeps them from being folded at compile time; filters are an allowlist (:data:`FILTERS`;
  no ``random``: a re-render must give the same text; no ``tojson``/``pprint``/``xmlattr``/
  ``urlize``) wrapped so none runs at compile time; methods may be called only on strings
  (an allowlist, bounded), dicts and lists (read-only) and the loop object; no globals, no
  ``include``/``import``/``extends`` (``check`` refuses them and unknown filters at launch).

Anything a render raises becomes :class:`TemplateLimit` or the caller's template error, never
an exception that escapes to the worker (templates.render catches them all).
"""

from __future__ import annotations

import contextvars
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.runtime import LoopContext, Macro, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import soft_str

MAX_OUTPUT = 1024 * 1024  # characters of any value a template builds, and of its output
MAX_BUILT = 16 * MAX_OUTPUT  # characters (or items) of all the values one render builds
MAX_STEPS = 100_000  # loop iterations + calls + filter applications per render
MAX_SECONDS = 1.0  # CPU seconds of the rendering thread per render
MAX_DEPTH = 32  # nested macro calls and recursive loops
MAX_PAD = 1000  # widest padding (center, indent, ljust, %10d, {:>10}) and most slices
MAX_REPEAT = 100_000  # longest string or list a '*' may build
MAX_INT_BITS = 4096  # largest integer a template may compute


class TemplateLimit(Exception):
    """A template went over one of the limits above (the message says which)."""


# -- the budget of one render ---------------------------------------------------------------------
class Budget:
    """What one render (one template) may still spend; ``with Budget():`` makes it the
    budget of the code run inside the block (a context variable: per thread)."""

    __slots__ = ("_token", "built", "deadline", "depth", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.built = MAX_BUILT  # characters or items the render may still build
        self.depth = 0
        self.deadline = 0.0  # time.thread_time() value

    def __enter__(self) -> Budget:
        self.deadline = time.thread_time() + MAX_SECONDS
        self._token = _BUDGET.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self._token)

    def spend(self) -> None:
        """One step: over budget (steps or CPU time) raises TemplateLimit."""
        self.steps -= 1
        if self.steps < 0:
            raise TemplateLimit(f"more than {MAX_STEPS:,} loop iterations, calls and filters")
        if not self.steps & 63 and time.thread_time() > self.deadline:  # a clock read per 64
            raise TemplateLimit(f"rendering took more than {MAX_SECONDS:g}s of CPU time")

    def build(self, size: int) -> None:
        """Account ``size`` characters (or items) just built."""
        self.built -= size
        if self.built < 0:
            raise TemplateLimit(f"built more than {MAX_BUILT:,} characters in all")


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "template_budget", default=None
)


def current() -> Budget:
    """The budget of the render in progress. Outside a render (Jinja folding constants at
    compile time) there is none and it refuses, so nothing is evaluated without a budget."""
    found = _BUDGET.get()
    if found is None:
        raise TemplateLimit("not rendering")
    return found


def charge() -> Budget:
    """One step of the current render (see Budget.spend); returns the budget."""
    found = current()
    found.spend()
    return found


def _sized(value: Any, budget: Budget | None = None) -> Any:
    """``value``, refused when it is a string or sequence longer than MAX_OUTPUT; its size
    counts against MAX_BUILT."""
    if isinstance(value, str | list | tuple):
        if len(value) > MAX_OUTPUT:
            raise TemplateLimit(f"a value longer than {MAX_OUTPUT:,} characters or items")
        (budget or current()).build(len(value))
    elif value.__class__ is int and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"an integer of more than {MAX_INT_BITS} bits")
    return value


def _joined_size(items: Iterable[Any]) -> tuple[list[str], int]:
    parts = [soft_str(item) for item in items]
    return parts, sum(len(part) for part in parts)


def _check_join(items: Iterable[Any], separator: str = "") -> list[str]:
    parts, size = _joined_size(items)
    size += len(separator) * max(0, len(parts) - 1)
    if size > MAX_OUTPUT:
        raise TemplateLimit(f"joined text longer than {MAX_OUTPUT:,} characters")
    current().build(size)
    return parts


def bounded_concat(pieces: Iterable[str]) -> str:
    """``Environment.concat``: the output of a template, macro or block, refused as soon as
    it would exceed MAX_OUTPUT (before it is joined)."""
    out: list[str] = []
    append = out.append
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_OUTPUT:
            raise TemplateLimit(f"output longer than {MAX_OUTPUT:,} characters")
        append(piece)
    current().build(size)
    return "".join(out)


# -- padding and formatting ---------------------------------------------------------------------
# a printf conversion: flags, width, precision (a '*' takes them from the arguments)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_SPEC_NUMBERS = re.compile(r"\d+")


def _pad(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_PAD:
        raise TemplateLimit(f"{what} wider than {MAX_PAD} characters")


def check_printf(text: str) -> None:
    """Refuse a ``%`` format wider or more precise than MAX_PAD, or taking its width from
    an argument (``%*d``)."""
    for match in _PRINTF.finditer(text):
        for number in (match.group(1), match.group(2)):
            if number == "*":
                raise TemplateLimit("'*' widths are not allowed in % formats")
            if number and int(number) > MAX_PAD:
                raise TemplateLimit(f"a % format wider than {MAX_PAD} characters")


def check_format_string(text: str) -> None:
    """Refuse a ``str.format`` string whose fields are padded wider than MAX_PAD or take
    their spec from an argument (``{:{w}}``)."""
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return  # format() raises its own error
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise TemplateLimit("nested format specs are not allowed")
        if any(int(n) > MAX_PAD for n in _SPEC_NUMBERS.findall(spec)):
            raise TemplateLimit(f"a format field wider than {MAX_PAD} characters")


def _check_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * (len(new) - len(old)) > MAX_OUTPUT:
        raise TemplateLimit(f"replace would make more than {MAX_OUTPUT:,} characters")


# -- operators -------------------------------------------------------------------------------------
def binop(operator: str, left: Any, right: Any) -> Any:
    """Every arithmetic operator of a template, bounded."""
    charge()
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                if len(seq) * times > MAX_REPEAT:
                    raise TemplateLimit(f"repetition longer than {MAX_REPEAT:,}")
                return _sized(left * right)
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"an integer of more than {MAX_INT_BITS} bits")
        return left * right
    if operator == "**":
        if isinstance(right, int) and abs(right) > 64:
            raise TemplateLimit("exponent larger than 64")
        ints = isinstance(left, int) and isinstance(right, int)
        if ints and right > 0 and left.bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"an integer of more than {MAX_INT_BITS} bits")
        return left**right
    if operator == "%" and isinstance(left, str):
        check_printf(left)
        return _sized(left % right)
    sized = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if operator == "+" and sized and len(left) + len(right) > MAX_OUTPUT:
        raise TemplateLimit(f"a value longer than {MAX_OUTPUT:,} characters or items")
    return _sized(_OPERATORS[operator](left, right))


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}


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
    _pad(pad, "indent")
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
        _check_join(items, separator)
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
        _check_replace(
            args[1], args[2], args[3], kwargs.get("count", args[4] if len(args) > 4 else None)
        )


def _center(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    _pad(kwargs.get("width", args[1] if len(args) > 1 else 80), "center")


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
        return _sized(func(*args, **kwargs), budget)

    run.__name__ = run.__qualname__ = f"bounded_{name}"
    return run


def _for_steps(name: str) -> Callable[..., Any]:
    @pass_context
    def steps(context: Any, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            charge()
            yield item

    steps.__name__ = name
    return steps


@pass_context
def _concat(context: Any, items: Any) -> str:
    """``a ~ b ~ c`` (an AST transform turns Concat nodes into this filter): measured first."""
    charge()
    parts = _check_join(items)
    return markup_join(parts) if context.eval_ctx.autoescape else str_join(parts)


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
            _pad(args[0], name)
        elif name == "replace" and len(args) >= 2:
            _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else None)
        elif name == "join" and args:
            _check_join(list(args[0]), owner)
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
            return _sized(super().call(__context, __obj, *args, **kwargs), budget)
        finally:
            budget.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        check_format_string(value.__self__)

        def bounded(*args: Any, **kwargs: Any) -> str:
            charge()
            return _sized(wrapper(*args, **kwargs))

        bounded._pc_format = True  # type: ignore[attr-defined]
        return bounded


def _sync(func: Callable[..., Any]) -> Callable[..., Any]:
    """The synchronous function behind one of Jinja's async-variant filters (whose wrapper
    takes an extra eval context and decides per call), else ``func``."""
    if getattr(func, "jinja_async_variant", False):
        return func.__wrapped__  # type: ignore[attr-defined,no-any-return]
    return func


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
    env.filters = {name: _bounded(name, _sync(JINJA_FILTERS[name])) for name in FILTERS}
    env.filters[STEPS_FILTER] = _for_steps(STEPS_FILTER)
    env.filters[CONCAT_FILTER] = _concat
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


__all__ = [
    "FILTERS",
    "MAX_OUTPUT",
    "Budget",
    "TemplateLimit",
    "UndefinedError",
    "environment",
    "forbidden",
    "instrument",
]
