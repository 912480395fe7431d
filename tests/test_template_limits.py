"""Campaign templates are bounded in cost (issue 16 §2.2): every hostile template fails with a
TemplateError naming the limit, quickly and without allocating gigabytes; what can be refused
without a lead is refused by ``check`` (campaign launch); ordinary templates still render.

The hostile templates run in a child process with a 1 GiB address-space limit and a timeout,
so a regression fails this test instead of exhausting the machine's memory."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

from penguinctl.campaigns.templates import TemplateError, check, render

HOSTILE = {
    # loops: 10^10 iterations
    "nested loops": "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{{ b }}"
    "{% endfor %}{% endfor %}",
    "nested silent loops": "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}"
    "{% endfor %}{% endfor %}",
    # padding and formatting: gigabytes in one operation
    "center": "{{ first_name | center(1000000000) }}",
    "str.center": "{{ first_name.center(1000000000) }}",
    "ljust": "{{ first_name.ljust(1000000000) }}",
    "indent": "{{ first_name | indent(1000000000) }}",
    "printf width": "{{ '%01000000000d' % 1 }}",
    "printf star": "{{ '%*d' % (1000000000, 1) }}",
    "format filter": "{{ '%01000000000d' | format(1) }}",
    "str.format": "{{ '{:>1000000000}'.format(first_name) }}",
    "slice": "{{ first_name | list | slice(1000000000) | list }}",
    # building big values
    "repeat": "{{ 'x' * 1000000000 }}",
    "replace": "{{ ('x' * 100000) | replace('', 'y' * 100000) }}",
    "join": "{{ (['x' * 100000] * 100000) | join }}",
    "concat": "{% set s = 'x' * 100000 %}{{ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s }}",
    "doubling macro": "{% macro m(s) %}{{ m(s ~ s) }}{% endmacro %}{{ m(first_name) }}",
    "many values": "{% macro m() %}{{ 'x' * 100000 }}{% endmacro %}"
    + "".join(f"{{% set a{i} = m() %}}" for i in range(400))
    + "{{ a1 }}",
    "output": "{% macro m() %}{{ 'x' * 100000 }}{% endmacro %}"
    "{% for i in 'x' * 10000 %}{{ m() }}{% endfor %}",
    "big integers": "{{ " + " * ".join(["(2 ** 64)"] * 100) + " }}",
    "power": "{{ 9 ** 99999 }}",
    "sum of lists": "{{ ([[1] * 1000] * 1000) | sum(start=[]) }}",
    "to_bytes": "{{ (5).to_bytes(1000000000, 'big') }}",
    # what used to kill the worker with AssertionError / RecursionError
    "truncate(-5)": "{{ first_name | truncate(-5) }}",
    "recursive macro": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "recursive loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "deep nesting": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    "division": "{{ 1 / 0 }}",
}
_CHILD = """
import json, sys
from penguinctl.campaigns.templates import TemplateError, render
out = {}
for name, template in json.loads(sys.stdin.read()).items():
    try:
        render(template, {"first_name": "Ann"}, seed="s")
        out[name] = "rendered"
    except TemplateError as exc:
        out[name] = "TemplateError: " + exc.message
print(json.dumps(out))
"""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_hostile_templates_fail_alone_within_limits() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(HOSTILE),
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limited,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    for name in HOSTILE:
        assert results[name].startswith("TemplateError: "), (name, results[name])
        assert "MemoryError" not in results[name], (name, results[name])
    limits = {name: text for name, text in results.items() if "exceeds a limit" in text}
    assert "more than 100,000 loop iterations" in limits["nested loops"]
    assert "center wider than 1000" in limits["center"]
    assert "a % format wider than 1000" in limits["printf width"]
    assert "built more than" in limits["many values"]
    assert "nested more than 32 deep" in limits["recursive macro"]
    assert "truncate" in results["truncate(-5)"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_refuses_at_launch_what_fails_for_any_lead(name: str) -> None:
    result = check(HOSTILE[name])
    assert result.problems, name


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{{ first_name | random }}", "filter 'random' is not available"),
        ("{{ x | tojson }}", "filter 'tojson' is not available"),
        ("{% include 'other' %}", "{% include %} is not available"),
        ("{% import 'm' as m %}", "{% import %} is not available"),
        ("{% extends 'base' %}", "{% extends %} is not available"),
        ("{{ x is nonsense }}", "test 'nonsense' is not available"),
        ("{{ x.__class__ }}", "attribute '__class__' is not allowed"),
    ],
)
def test_check_refuses_forbidden_constructs(template: str, needle: str) -> None:
    assert any(needle in problem for _, problem in check(template).problems)


def test_data_dependent_failures_are_left_to_the_send() -> None:
    # fails only for a lead whose name is 6 letters long: not refused at launch
    template = "{{ 100 // (first_name | length - 6) }}"
    assert check(template).problems == ()
    with pytest.raises(TemplateError):
        render(template, {"first_name": "Sample"}, seed="s")
    assert render(template, {"first_name": "Ann"}, seed="s") == "-34"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ first_name | truncate(5, end='.', leeway=0) }}", "Anna."),
        ("[{{ first_name | center(14) }}]", "[  Anna-Maria  ]"),
        ("{{ first_name | indent(2, first=True) }}", "  Anna-Maria"),
        ("{{ '%-12s|' % first_name }}", "Anna-Maria  |"),
        ("{{ '{:>12}'.format(first_name) }}", "  Anna-Maria"),
        ("{{ first_name.split('-') | join(' & ') }}", "Anna & Maria"),
        ("{{ first_name | replace('-', ' ') | upper }}", "ANNA MARIA"),
        ("{{ [1, 2, 3] | sum }} {{ (first_name ~ '!') * 2 }}", "6 Anna-Maria!Anna-Maria!"),
        ("{% for c in first_name | list | slice(2) %}{{ c | join }};{% endfor %}", "Anna-;Maria;"),
        ("{% for w in ['a', 'b'] %}{{ loop.index }}{{ loop.cycle('x', 'y') }}{% endfor %}", "1x2y"),
        ("{% macro hi(n) %}Hi {{ n }}{% endmacro %}{{ hi(first_name) }}", "Hi Anna-Maria"),
        ("{{ {'a': 1}.get('a') }} {{ first_name.lower().startswith('anna') }}", "1 True"),
    ],
)
def test_ordinary_templates_still_render(template: str, expected: str) -> None:
    assert check(template).problems == ()
    assert render(template, {"first_name": "Anna-Maria"}, seed="s") == expected
