"""Campaign templates: spintax ``{Hi|Hello}`` resolved first, then Jinja2 in a sandbox.

Order and syntax
- Spintax is resolved on the template *source*, never on rendered output, so a lead's values
  (a company called ``{A|B}``) are never spun and never evaluated as template code.
- ``{a|b|c}`` picks one option; groups nest (``{Hi|Hello {there|friend}}``). Jinja constructs
  (``{{ ... }}``, ``{% ... %}``, ``{# ... #}``) are opaque to spintax, wherever they appear, so a
  ``|`` filter inside ``{{ }}`` never splits an option; ``{{{ x }}|Hi}`` reads as a group that
  starts with ``{{ x }}``, and a ``{{`` that never closes as a group starting with a nested
  group (``{{a|b}|c}``). A ``{{`` that a ``}}`` closes is always Jinja, so an option that starts
  with a nested group (``{|{a|b}}``) is written with something before it (``{|x {a|b}}``).
  ``\\{``, ``\\}``, ``\\|`` and ``\\\\`` write a literal brace, bar or
  backslash. A ``{...}`` without any ``|`` is an error (it usually is a mistyped ``{{ var }}``).
- The choice is seeded: ``seed`` (the caller passes ``campaign/lead/step``) feeds a SHA-256
  based generator, so re-rendering gives the same text.

Missing variables (the decision for issue 7)
- A variable used without a ``default`` that the lead does not have is an error: rendering raises
  :class:`TemplateError` naming the variable (the caller adds the lead and step). An empty value
  counts as missing. ``{{ x | default("...") }}``, ``{% if x %}`` and ``x is defined`` are fine.
- ``campaign launch`` rejects a variable used without a default unless it is a lead column, a
  built-in (sender, unsubscribe URL) or listed in the campaign's ``fields``; ``leads import``
  rejects a row that lacks a variable the templates use without a default.

Sandbox (sandbox.py)
- ``ImmutableSandboxedEnvironment`` with no globals (no ``range``, ``cycler``, ``joiner``,
  ``namespace``, ``lipsum``, ``dict``), an allowlist of filters, and every render bounded in
  steps, CPU time, value and output sizes, padding and nesting depth. Any failure of a render
  is a :class:`TemplateError` (the send that needed it fails alone; see worker.py).
- ``check`` (campaign launch) refuses what fails whatever the lead: syntax, ``_private``
  attributes, filters and tests not available, ``include``/``import``/``extends``, and a
  template that fails both sample leads it is rendered for (``truncate(-5)``, a loop over too
  much, ``'%01000000000d' % 1``...).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from penguinctl.errors import ExitCode, PenguinError

if TYPE_CHECKING:
    from jinja2 import Template

MAX_TEMPLATE = 256 * 1024  # characters of template source
MAX_DEPTH = 32  # spintax nesting


class TemplateError(PenguinError):
    """A template cannot be rendered (or is invalid). ``variable`` names a missing variable."""

    exit_code = ExitCode.SPEC_INVALID

    def __init__(
        self, message: str, *, hint: str | None = None, variable: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.variable = variable


class SpintaxError(ValueError):
    """Bad spintax: ``line`` and ``col`` are 1-based positions in the template source."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


# -- spintax -----------------------------------------------------------------------------------
@dataclass
class _Group:
    options: list[list[Any]] = field(default_factory=lambda: [[]])  # items: str | _Group


_ESCAPABLE = {"{": "{{ '{' }}", "}": "{{ '}' }}", "|": "|", "\\": "\\"}
_JINJA_CLOSE = {"{": "}}", "%": "%}", "#": "#}"}


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def _jinja_end(text: str, start: int) -> int:
    """Index just after the Jinja construct opening at ``start`` (``{{``, ``{%`` or ``{#``)."""
    closer = _JINJA_CLOSE[text[start + 1]]
    i = start + 2
    if closer == "#}":
        end = text.find("#}", i)
        if end < 0:
            raise SpintaxError("unclosed '{#' comment", *_position(text, start))
        return end + 2
    depth = 0
    quote: str | None = None
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        elif depth == 0 and text.startswith(closer, i):
            return i + 2
        i += 1
    opener = text[start : start + 2]
    raise SpintaxError(f"unclosed '{opener}' (expected '{closer}')", *_position(text, start))


def _raw_end(text: str, start: int, end: int) -> int:
    """After ``{% raw %}`` at ``start..end``: index just after the matching ``{% endraw %}``."""
    i = end
    while True:
        j = text.find("{%", i)
        if j < 0:
            raise SpintaxError("unclosed '{% raw %}'", *_position(text, start))
        k = _jinja_end(text, j)
        if text[j + 2 : k - 2].strip(" -+") == "endraw":
            return k
        i = k


def _jinja_at(text: str, i: int) -> int:
    """End of the Jinja construct opening at ``i``, or 0 when ``{`` opens a spintax group
    instead: ``{{{`` (a group starting with ``{{ x }}``) and a ``{{`` that never closes (a group
    starting with a nested group, ``{{a|b}|c}``)."""
    if text.startswith("{{{", i):
        return 0
    try:
        end = _jinja_end(text, i)
    except SpintaxError:
        if text[i + 1] == "{":
            return 0
        raise
    if text[i + 1] == "%" and text[i + 2 : end - 2].strip(" -+") == "raw":
        end = _raw_end(text, i, end)
    return end


def parse_spintax(text: str) -> list[Any]:
    """Parse ``text`` into items: literal Jinja-source strings and groups of options."""
    root: list[Any] = []
    stack: list[tuple[_Group, int]] = []
    current = root
    buf: list[str] = []
    i = 0
    n = len(text)

    def flush() -> None:
        if buf:
            current.append("".join(buf))
            buf.clear()

    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "\\" and nxt in _ESCAPABLE:
            buf.append(_ESCAPABLE[nxt])
            i += 2
        elif ch == "{" and nxt in _JINJA_CLOSE and (end := _jinja_at(text, i)):
            buf.append(text[i:end])
            i = end
        elif ch == "{":
            if len(stack) >= MAX_DEPTH:
                raise SpintaxError(
                    f"spintax nested more than {MAX_DEPTH} levels", *_position(text, i)
                )
            flush()
            group = _Group()
            current.append(group)
            stack.append((group, i))
            current = group.options[0]
            i += 1
        elif ch == "|" and stack:
            flush()
            group = stack[-1][0]
            group.options.append([])
            current = group.options[-1]
            i += 1
        elif ch == "}":
            if not stack:
                raise SpintaxError(
                    "unbalanced '}' (write \\} for a literal brace)", *_position(text, i)
                )
            flush()
            group, opened = stack.pop()
            if len(group.options) < 2:
                snippet = text[opened : i + 1]
                raise SpintaxError(
                    f"{snippet[:40]!r} is not spintax (no '|' between options); for a "
                    "variable write {{ name }}, for literal braces \\{ and \\}",
                    *_position(text, opened),
                )
            current = stack[-1][0].options[-1] if stack else root
            i += 1
        else:
            buf.append(ch)
            i += 1
    if stack:
        opened = stack[0][1]
        if text.startswith("{{", opened):
            message = "unclosed '{{' (expected '}}' to end the expression)"
        else:
            message = "unclosed '{' (spintax is {a|b}; write \\{ for a literal brace)"
        raise SpintaxError(message, *_position(text, opened))
    flush()
    return root


class _SeededChoices:
    """Deterministic choices from a seed (SHA-256 in counter mode; no global random state)."""

    def __init__(self, seed: str) -> None:
        self._key = hashlib.sha256(seed.encode()).digest()
        self._counter = 0

    def below(self, n: int) -> int:
        digest = hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
        self._counter += 1
        return int.from_bytes(digest[:8], "big") % n


def _emit(items: list[Any], choices: _SeededChoices, out: list[str]) -> None:
    for item in items:
        if isinstance(item, str):
            out.append(item)
        else:
            _emit(item.options[choices.below(len(item.options))], choices, out)


@lru_cache(maxsize=512)
def _parsed(template: str) -> tuple[Any, ...]:
    return tuple(parse_spintax(template))


def resolve_spintax(template: str, seed: str) -> str:
    """The Jinja source of ``template`` with every spintax group resolved for ``seed``."""
    if "{" not in template and "}" not in template and "\\" not in template:
        return template
    try:
        items = list(_parsed(template))
    except SpintaxError as exc:
        raise TemplateError(f"bad spintax at line {exc.line}, column {exc.col}: {exc}") from None
    out: list[str] = []
    _emit(items, _SeededChoices(seed), out)
    return "".join(out)


def _all_first_or_last(items: list[Any], last: bool, out: list[str]) -> None:
    for item in items:
        if isinstance(item, str):
            out.append(item)
        else:
            _all_first_or_last(item.options[-1 if last else 0], last, out)


def _samples(items: list[Any], count: int = 16) -> Iterator[str]:
    """Jinja sources covering the first and the last option of each group plus ``count``
    seeded mixes (validation cannot try every combination: it is exponential)."""
    for last in (False, True):
        out: list[str] = []
        _all_first_or_last(items, last, out)
        yield "".join(out)
    if any(not isinstance(i, str) for i in items):
        for k in range(count):
            out = []
            _emit(items, _SeededChoices(f"validate/{k}"), out)
            yield "".join(out)


# -- Jinja -------------------------------------------------------------------------------------
@cache
def _environment(html: bool) -> Any:
    from jinja2 import Undefined
    from jinja2.exceptions import UndefinedError

    from penguinctl.campaigns.sandbox import environment

    class MissingVariable(UndefinedError):
        def __init__(self, message: str, name: str | None) -> None:
            super().__init__(message)
            self.variable = name

    class Missing(Undefined):
        """Fails when printed, iterated or measured; false in ``if``; ``default`` replaces it."""

        __slots__ = ()

        def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
            if self._undefined_exception is UndefinedError:
                raise MissingVariable(self._undefined_message, self._undefined_name)
            raise self._undefined_exception(self._undefined_message)

        __str__ = __iter__ = __len__ = __contains__ = _fail_with_undefined_error  # type: ignore[assignment]

    return environment(html, Missing)


@lru_cache(maxsize=1024)
def _compile(source: str, html: bool) -> Template:
    """The template compiled with its loops counted and concatenations measured (sandbox.py).
    Raises TemplateError for bad syntax and for anything else compiling raises (a template
    nested too deep for the parser, say)."""
    from jinja2.exceptions import TemplateSyntaxError

    from penguinctl.campaigns.sandbox import instrument

    env = _environment(html)
    try:
        ast = instrument(env.parse(source))
        return env.from_string(ast)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error at line {exc.lineno}: {exc.message}") from None
    except (RecursionError, MemoryError):
        raise TemplateError("template is nested too deeply to compile") from None
    except Exception as exc:  # any failure is this template's
        raise TemplateError(f"template cannot be compiled: {type(exc).__name__}") from None


def render(
    template: str,
    context: Mapping[str, Any],
    *,
    seed: str,
    html: bool = False,
) -> str:
    """Render ``template`` for ``context``: spintax seeded by ``seed``, then sandboxed Jinja
    under the limits of sandbox.py (steps, CPU time, sizes, depth).

    ``html=True`` escapes variable values for HTML. Every failure is a :class:`TemplateError`
    (``.variable`` names a missing variable): bad syntax, an unsafe operation, a limit, or any
    exception the template's own code raises (``truncate(-5)``, a division by zero...).
    """
    if len(template) > MAX_TEMPLATE:
        raise TemplateError(f"template is longer than {MAX_TEMPLATE} characters")
    source = resolve_spintax(template, seed)
    compiled = _compile(source, html)
    values = {k: v for k, v in context.items() if v is not None and v != ""}
    return _run(compiled, values)


def _run(compiled: Template, values: dict[str, Any]) -> str:
    from jinja2.exceptions import SecurityError, UndefinedError

    from penguinctl.campaigns.template_limits import MAX_OUTPUT, Budget, TemplateLimit

    try:
        with Budget():
            text = compiled.render(values)
    except TemplateLimit as exc:
        raise TemplateError(
            f"template exceeds a limit: {exc}",
            hint="templates render each message within fixed limits (see the README)",
        ) from None
    except SecurityError as exc:
        raise TemplateError(
            f"unsafe template refused: {exc}",
            hint="templates may only use variables, filters and simple expressions",
        ) from None
    except UndefinedError as exc:
        name = getattr(exc, "variable", None)
        if name is None:
            raise TemplateError(f"template error: {exc.message}") from None
        raise TemplateError(
            f"template variable '{name}' is not set",
            hint=f'give it a default: {{{{ {name} | default("...") }}}}',
            variable=name,
        ) from None
    except RecursionError:
        raise TemplateError("template error: nested too deeply") from None
    except Exception as exc:  # the template's own failure, never the worker's
        raise TemplateError(f"template error: {type(exc).__name__}: {_short(exc)}") from None
    if len(text) > MAX_OUTPUT:
        raise TemplateError(f"rendered template is larger than {MAX_OUTPUT} characters")
    return text


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 200 else text[:197] + "..."


# -- static checks (campaign launch) --------------------------------------------------------------
@dataclass(frozen=True)
class TemplateCheck:
    """What a template uses: every variable, those used without a guard, and problems found
    (``(line, message)``, line 1-based in the template source)."""

    variables: frozenset[str]
    required: frozenset[str]
    problems: tuple[tuple[int, str], ...]


def _walk_names(node: Any, guarded: frozenset[str], used: set[str], required: set[str]) -> None:
    from jinja2 import nodes

    if isinstance(node, nodes.Name) and node.ctx == "load":
        used.add(node.name)
        if node.name not in guarded:
            required.add(node.name)
        return
    if isinstance(node, nodes.Filter) and node.name in ("default", "d"):
        inner = node.node
        if isinstance(inner, nodes.Name):
            used.add(inner.name)
        else:
            _walk_names(inner, guarded, used, required)
        for child in [*node.args, *node.kwargs]:
            _walk_names(child, guarded, used, required)
        return
    guard = ("defined", "undefined", "none")
    if isinstance(node, nodes.Test) and node.name in guard and isinstance(node.node, nodes.Name):
        used.add(node.node.name)
        return
    if isinstance(node, nodes.If | nodes.CondExpr):
        test_names = {
            n.name
            for n in [node.test, *node.test.find_all(nodes.Name)]
            if isinstance(n, nodes.Name)
        }
        _walk_names(node.test, guarded | test_names, used, required)
        inner_guard = guarded | test_names
        bodies = (
            [node.expr1, node.expr2]
            if isinstance(node, nodes.CondExpr)
            else [*node.body, *node.elif_, *node.else_]
        )
        for child in bodies:
            if child is not None:
                _walk_names(child, inner_guard, used, required)
        return
    for child in node.iter_child_nodes():
        _walk_names(child, guarded, used, required)


@lru_cache(maxsize=256)
def check(template: str) -> TemplateCheck:
    """Parse ``template`` without rendering it: spintax, Jinja syntax (for a sample of spintax
    choices), ``_private`` attribute access, and the variables it uses."""
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    from penguinctl.campaigns.sandbox import forbidden

    problems: list[tuple[int, str]] = []
    used: set[str] = set()
    required: set[str] = set()
    if len(template) > MAX_TEMPLATE:
        return TemplateCheck(frozenset(), frozenset(), ((1, "template is too long"),))
    try:
        items = parse_spintax(template)
    except SpintaxError as exc:
        return TemplateCheck(frozenset(), frozenset(), ((exc.line, f"col {exc.col}: {exc}"),))
    env = _environment(False)
    seen: set[str] = set()
    parsed: list[str] = []
    for source in _samples(items):
        if source in seen:
            continue
        seen.add(source)
        try:
            ast = env.parse(source)
        except TemplateSyntaxError as exc:
            problems.append((exc.lineno or 1, f"template syntax error: {exc.message}"))
            break
        except (RecursionError, MemoryError):
            problems.append((1, "template is nested too deeply"))
            break
        parsed.append(source)
        assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
        _walk_names(ast, frozenset(assigned), used, required)
        problems.extend(forbidden(ast, env))
    if not problems:
        problems.extend(_trial(parsed, used))
    return TemplateCheck(frozenset(used), frozenset(required), tuple(dict.fromkeys(problems)))


# Two leads as different as can be: a template that fails for both fails whatever the lead
# (truncate(-5), 'x' * 10**6, a loop over too much...), and is refused at launch; one that
# fails for one of them only depends on the data and is left to the send (which fails alone).
_SAMPLE_LEADS = ("Sample", "A much longer sample value, 1234567890 + Ümlaut")


def _trial(sources: list[str], variables: set[str]) -> list[tuple[int, str]]:
    """Render the first sampled sources (every spintax group's first option, then its last)
    for the sample leads under the render limits: the problem of the first that fails for
    every one of them."""
    builtins = {
        "sender_email": "sender@example.com",
        "sender_name": "Sam Sender",
        "sender_first_name": "Sam",
        "unsubscribe_url": "https://example.com/u/1.1.1.token",
        "campaign": "campaign",
    }
    for source in sources[:2]:
        compiled = _compile(source, False)
        errors: list[str] = []
        for value in _SAMPLE_LEADS:
            context = {**dict.fromkeys(variables, value), **builtins}
            try:
                _run(compiled, context)
            except TemplateError as exc:
                errors.append(exc.message)
        if len(errors) == len(_SAMPLE_LEADS):
            return [(1, f"fails for any lead: {errors[0]}")]
    return []
