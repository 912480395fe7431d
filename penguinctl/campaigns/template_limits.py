"""The limits of one campaign template render, and the checks that keep each operation in them.

Each render has a :class:`Budget` (``with Budget():``, a context variable, so per thread): at most
:data:`MAX_STEPS` loop iterations, calls and filter applications and :data:`MAX_SECONDS` of the
thread's CPU time (``charge``); no value over :data:`MAX_OUTPUT` characters or items and at most
:data:`MAX_BUILT` built in all (``sized``, ``check_join``, ``bounded_concat``: measured *before*
a join is built); padding at most :data:`MAX_PAD` wide (``check_pad``, ``check_printf``,
``check_format_string``); ``binop`` is every arithmetic operator of a template, bounded.
Over a limit: :class:`TemplateLimit`. sandbox.py wires these into Jinja2.
"""

from __future__ import annotations

import contextvars
import re
import string
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any

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


def sized(value: Any, budget: Budget | None = None) -> Any:
    """``value``, refused when it is a string or sequence longer than MAX_OUTPUT; its size
    counts against MAX_BUILT."""
    kind = value.__class__
    if kind is str or kind is list or kind is tuple or isinstance(value, str | list | tuple):
        if len(value) > MAX_OUTPUT:
            raise TemplateLimit(f"a value longer than {MAX_OUTPUT:,} characters or items")
        (budget or current()).build(len(value))
    elif kind is int and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"an integer of more than {MAX_INT_BITS} bits")
    return value


def _joined_size(items: Iterable[Any]) -> tuple[list[str], int]:
    parts = [soft_str(item) for item in items]
    return parts, sum(len(part) for part in parts)


def check_join(items: Iterable[Any], separator: str = "") -> list[str]:
    parts, size = _joined_size(items)
    size += len(separator) * max(0, len(parts) - 1)
    if size > MAX_OUTPUT:
        raise TemplateLimit(f"joined text longer than {MAX_OUTPUT:,} characters")
    current().build(size)
    return parts


def bounded_concat(pieces: Iterable[str]) -> str:
    """``Environment.concat``: the output of a template, macro or block, refused as soon as
    it would exceed MAX_OUTPUT (before it is joined)."""
    found = iter(pieces)
    out: list[str] = []
    size = 0
    while chunk := list(islice(found, 256)):  # references to strings already built: cheap
        size += sum(map(len, chunk))
        if size > MAX_OUTPUT:
            raise TemplateLimit(f"output longer than {MAX_OUTPUT:,} characters")
        out += chunk
    current().build(size)
    return "".join(out)


# -- padding and formatting ---------------------------------------------------------------------
# a printf conversion: flags, width, precision (a '*' takes them from the arguments)
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_SPEC_NUMBERS = re.compile(r"\d+")


def check_pad(width: Any, what: str) -> None:
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


def check_replace(text: Any, old: Any, new: Any, count: Any = None) -> None:
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
                return sized(left * right)
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
        return sized(left % right)
    both = isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple)
    if operator == "+" and both and len(left) + len(right) > MAX_OUTPUT:
        raise TemplateLimit(f"a value longer than {MAX_OUTPUT:,} characters or items")
    return sized(_OPERATORS[operator](left, right))


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "/": lambda a, b: a / b,
    "//": lambda a, b: a // b,
    "%": lambda a, b: a % b,
}
