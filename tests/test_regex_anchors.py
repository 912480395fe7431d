"""Whole-string checks use ``fullmatch`` (or ``\\Z``), never ``$``: in Python ``$`` also matches
before a trailing newline, so ``abc\\n`` passed the secret path check and created a file named
``abc\\n.secret``. Each validator is tried with a trailing newline, and the package is scanned
so that no ``$``-anchored pattern comes back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from penguinctl.errors import SecretError
from penguinctl.providers.secrets.keystore import KeystoreBackend

PACKAGE = Path(__file__).resolve().parent.parent / "penguinctl"
RE_FUNCS = {"compile", "match", "fullmatch", "search"}


def _dollar_patterns() -> list[str]:
    """``re.<func>("...$")`` calls in the package whose pattern ends with an unescaped ``$``
    and are not multi-line (where ``$`` means end of line on purpose)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in RE_FUNCS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "re"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str | bytes)
            ):
                continue
            pattern = node.args[0].value
            multiline = any("M" in ast.unparse(arg) for arg in [*node.args[1:], *node.keywords])
            if _has_dollar(pattern) and not multiline:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {pattern!r}")
    return found


def _has_dollar(pattern: str | bytes) -> bool:
    """Whether the parsed pattern uses ``$`` (AT_END) anywhere, lookarounds included."""
    from re import _constants as c
    from re import _parser

    def walk(items) -> bool:
        for op, arg in items:
            if op is c.AT and arg is c.AT_END:
                return True
            subs = arg if isinstance(arg, list | tuple) else [arg]
            for sub in subs:
                if isinstance(sub, _parser.SubPattern) and walk(sub):
                    return True
                if isinstance(sub, list | tuple) and any(
                    isinstance(x, _parser.SubPattern) and walk(x) for x in sub
                ):
                    return True
        return False

    return walk(_parser.parse(pattern))


def _compiled_dollar_patterns() -> list[str]:
    """Module-level compiled patterns (those built from f-strings or names too)."""
    import importlib
    import pkgutil

    import penguinctl

    found = []
    for info in pkgutil.walk_packages(penguinctl.__path__, "penguinctl."):
        if info.name.startswith("penguinctl.state.migrations"):
            continue  # alembic scripts, run by alembic only
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, re.Pattern)
                and not value.flags & re.MULTILINE
                and _has_dollar(value.pattern)
            ):
                found.append(f"{info.name}.{name}: {value.pattern!r}")
    return found


def test_no_dollar_anchored_patterns_in_the_package():
    assert _dollar_patterns() == []
    assert _compiled_dollar_patterns() == []


def test_the_scan_sees_a_dollar_pattern(tmp_path, monkeypatch):
    import test_regex_anchors as me

    (tmp_path / "bad.py").write_text(
        "import re\n"
        'A = re.compile(r"^[a-z]+$")\n'
        'B = re.compile(r"(?:[a-z]+\\.)+(?![0-9]+$)[a-z]+")\n'
        'C = re.fullmatch(rb"(a|b$)", b"a")\n'
    )
    (tmp_path / "ok.py").write_text(
        "import re\n"
        'D = re.compile(r"^x$", re.M)\n'
        'E = re.compile(r"[$%]+\\$\\Z")\n'
        'F = re.compile(r"[a-z]+")\n'
    )
    monkeypatch.setattr(me, "PACKAGE", tmp_path)
    assert [f.split(": ", 1)[1] for f in me._dollar_patterns()] == [
        "'^[a-z]+$'",
        "'(?:[a-z]+\\\\.)+(?![0-9]+$)[a-z]+'",
        "b'(a|b$)'",
    ]


def test_a_secret_path_with_a_trailing_newline_is_refused(tmp_path):
    ks = KeystoreBackend(tmp_path / "ks", key_file=tmp_path / "master.key")
    for path in ("abc\n", "domains/a.example\n/dkim/x", "abc\r", "ok/\nbad"):
        with pytest.raises(SecretError, match="invalid secret path"):
            ks.put(path, {"v": "1"})
    assert not [p for p in (tmp_path / "ks").rglob("*") if p.is_file()]
    ks.put("abc", {"v": "1"})
    assert ks.list() == ["abc"]


def test_campaign_spec_fields_refuse_a_trailing_newline():
    from penguinctl.campaigns.spec import Schedule, Variant

    # every spec string refuses control characters first (spec/text.py); the fields' own
    # checks must refuse a trailing newline too
    with pytest.raises(ValidationError, match="U\\+000A"):
        Schedule(hours="09:00-17:00\n")
    with pytest.raises(ValueError, match="hours must be HH:MM-HH:MM"):
        Schedule._hours("09:00-17:00\n")
    assert Schedule(hours="09:00 - 17:00").hours == "09:00-17:00"
    with pytest.raises(ValidationError, match="U\\+000A"):
        Variant(name="B\n", weight=10, subject="x")
    with pytest.raises(ValueError, match="variant name"):
        Variant._name("B\n")


def test_other_validators_refuse_a_trailing_newline():
    from penguinctl.billing.periods import Period
    from penguinctl.errors import UsageError
    from penguinctl.playbook.model import mode_bits

    with pytest.raises(ValueError, match="not octal"):
        mode_bits("0644\n")
    assert mode_bits("0644") == 0o644
    with pytest.raises(UsageError):
        Period.parse("٢٠٢٦-07")  # Arabic-Indic digits are digits to \\d, not to a period
    assert str(Period.parse(" 2026-07 ")) == "2026-07"
