"""Templates: spintax (seeded, nested, escaped, not confused with Jinja), sandbox, missing vars."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from penguinctl.campaigns.templates import (
    TemplateError,
    check,
    parse_spintax,
    render,
    resolve_spintax,
)


def test_default_filter_and_values():
    t = '{{ first_name | default("there") }}'
    assert render(t, {}, seed="s") == "there"
    assert render(t, {"first_name": ""}, seed="s") == "there"  # blank counts as missing
    assert render(t, {"first_name": None}, seed="s") == "there"
    assert render(t, {"first_name": "Ann"}, seed="s") == "Ann"


def test_spintax_is_seeded_and_covers_options():
    t = "{Hi|Hello|Hey} there"
    seen = {render(t, {}, seed=f"c/l{i}/0") for i in range(60)}
    assert seen == {"Hi there", "Hello there", "Hey there"}
    assert render(t, {}, seed="x") == render(t, {}, seed="x")


def test_nested_and_escaped():
    t = r"{a|b {c|d}} \{literal\} a\|b \\"
    outs = {render(t, {}, seed=str(i)) for i in range(50)}
    tail = " {literal} a|b \\"  # one backslash
    assert outs == {"a" + tail, "b c" + tail, "b d" + tail}
    # escaped braces never turn into Jinja
    assert render(r"\{\{ x \}\}", {"x": "no"}, seed="s") == "{{ x }}"


def test_spintax_not_confused_with_jinja():
    ctx = {"first_name": "Ann", "items": ["a", "b"]}
    # a filter's '|' inside {{ }} does not split options; {% %} inside an option is kept whole
    t = "{Hi {{ first_name | upper }}|Hello {% for i in items %}{{ i }}{% endfor %}}"
    outs = {render(t, ctx, seed=str(i)) for i in range(40)}
    assert outs == {"Hi ANN", "Hello ab"}
    # '{{{' is a group starting with a Jinja expression
    outs = {render("{{{ first_name }}|friend}!", ctx, seed=str(i)) for i in range(40)}
    assert outs == {"Ann!", "friend!"}
    # Jinja comments and raw blocks are opaque
    assert render("{# {a|b} #}x{% raw %}{a|b}{% endraw %}", {}, seed="s") == "x{a|b}"
    # a dict literal inside an expression
    assert render("{{ {'k': 'v'}['k'] }}", {}, seed="s") == "v"


def test_lead_values_are_never_spun_or_evaluated():
    ctx = {"company": "{A|B} {{ 7*7 }} {% if 1 %}x{% endif %}"}
    assert render("{{ company }}", ctx, seed="s") == ctx["company"]


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{a|b", "unclosed '{'"),
        ("a}", "unbalanced '}'"),
        ("{first_name}", "not spintax"),
        ("{{ x ", "unclosed '{{'"),
        ("{# x", "unclosed '{#'"),
    ],
)
def test_bad_spintax(template, needle):
    with pytest.raises(TemplateError, match="bad spintax"):
        render(template, {"x": 1}, seed="s")
    assert any(needle in message for _, message in check(template).problems)


def test_missing_variable_is_named():
    with pytest.raises(TemplateError) as info:
        render("Hi {{ first_name }}", {}, seed="s")
    assert info.value.variable == "first_name"
    assert "'first_name' is not set" in str(info.value)
    # guarded uses are fine
    assert render("{% if company %}at {{ company }}{% endif %}.", {}, seed="s") == "."
    assert render("{{ company if company else 'you' }}", {}, seed="s") == "you"
    assert render("{{ 'y' if x is defined else 'n' }}", {}, seed="s") == "n"


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ range(10) }}",
        "{{ 'x' * 1000000 }}",
        "{{ 9 ** 99999 }}",
        "{{ ''['__class__'] }}",
        "{{ first_name.__class__ }}",
        "{{ first_name.format.__globals__ }}",
        "{% set x = [] %}{{ x.append(1) }}",
        "{{ self.__init__ }}",
        "{{ config }}",
    ],
)
def test_sandbox_escapes_fail_safely(template):
    with pytest.raises(TemplateError) as info:
        render(template, {"first_name": "Ann"}, seed="s")
    assert "Traceback" not in str(info.value)


def test_check_reports_variables_and_private_attributes():
    result = check("{Hi|Hey} {{ first_name }} {{ company | default('you') }} {{ x.__dict__ }}")
    assert result.variables == {"first_name", "company", "x"}
    assert result.required == {"first_name", "x"}
    assert any("'__dict__'" in m for _, m in result.problems)
    loop = check("{% for i in items %}{{ i }}{% endfor %}{% set y = 1 %}{{ y }}")
    assert loop.required == {"items"}


def test_html_escapes_values():
    out = render("<p>{{ company }}</p>", {"company": "<b>&</b>"}, seed="s", html=True)
    assert out == "<p>&lt;b&gt;&amp;&lt;/b&gt;</p>"
    assert render("{{ company }}", {"company": "<b>"}, seed="s") == "<b>"


# -- properties ----------------------------------------------------------------------------------
WORD = st.text(alphabet="abcxyz ", min_size=0, max_size=6)


@st.composite
def spintax(draw, depth=0):
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        if depth < 3 and draw(st.booleans()):
            options = draw(st.lists(spintax(depth=depth + 1), min_size=2, max_size=4))
            # '{{' is Jinja when a '}}' closes it: an option starting with a group needs a char
            options = ["a" + o if o.startswith("{") else o for o in options]
            parts.append("{" + "|".join(options) + "}")
        else:
            parts.append(draw(WORD))
    return "".join(parts)


def _options(template: str) -> set[str]:
    """Every text the template can produce (small templates only)."""

    def expand(items) -> set[str]:
        outs = {""}
        for item in items:
            if isinstance(item, str):
                outs = {o + item for o in outs}
            else:
                alts = set().union(*(expand(opt) for opt in item.options))
                outs = {o + a for o in outs for a in alts}
        return outs

    return expand(parse_spintax(template))


@settings(max_examples=100, deadline=None)
@given(template=spintax(), seed=st.text(max_size=20))
def test_spintax_deterministic_and_valid(template, seed):
    first = resolve_spintax(template, seed)
    assert resolve_spintax(template, seed) == first
    assert render(template, {}, seed=seed) == first
    assert first in _options(template)


@settings(max_examples=200, deadline=None)
@given(value=st.text(min_size=1, max_size=40))
def test_any_value_renders_verbatim(value):
    assert render("[{{ v }}]", {"v": value}, seed="s") == f"[{value}]"


@settings(max_examples=150, deadline=None)
@given(
    attr=st.sampled_from(
        [
            "__class__",
            "__mro__",
            "__globals__",
            "__subclasses__",
            "__init__",
            "__dict__",
            "__builtins__",
            "__code__",
            "func_globals",
            "gi_frame",
            "mro",
        ]
    ),
    base=st.sampled_from(["''", "v", "[]", "{}", "cycler", "(1).real", "v.upper"]),
)
def test_sandbox_property(attr, base):
    template = f"{{{{ {base}.{attr} }}}}"
    try:
        out = render(template, {"v": "text"}, seed="s")
    except TemplateError:
        return
    assert "<" not in out and "function" not in out and "class" not in out
