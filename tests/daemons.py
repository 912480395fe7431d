"""The one rule for what a test needs and this machine may lack: fail under CI, skip elsewhere.

A test that needs a daemon, a program, PostgreSQL or an optional Python module asks through
:func:`need_binary`, :func:`optional_binary`, :func:`need_module` or :func:`missing`. On a
developer's machine a missing one skips the test (with what to install); under CI it fails, so a
runner that lacks it can never pass by silently skipping.

"Under CI" is :func:`in_ci`: the ``CI`` environment variable set to ``true``, ``1``, ``yes`` or
``on`` (any case), as CI services set it. ``.ci/run`` and ``scripts/test`` export ``CI=true``.

The conftest also installs :func:`pytest_runtest_makereport`, which turns *any* skip into a
failure under CI (``pytest.skip``, ``pytest.importorskip``, ``skipif`` markers, a skipping
fixture), except a skip that says the test does not apply on this platform or backend: those
go through :func:`not_applicable` (or carry :data:`NOT_APPLICABLE` at the start of a ``skipif``
reason). A new skip therefore cannot switch a test off in CI without saying so.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

CI_VALUES = frozenset({"true", "1", "yes", "on"})
NOT_APPLICABLE = "not applicable here: "


def in_ci(env: Mapping[str, str] | None = None) -> bool:
    """Whether the tests run under CI (``CI`` is true, 1, yes or on, in any case)."""
    value = (os.environ if env is None else env).get("CI", "")
    return value.strip().lower() in CI_VALUES


def missing(what: str) -> NoReturn:
    """Something the test needs is missing: fail under CI, skip otherwise. ``what`` says what
    and how to get it."""
    if in_ci():
        pytest.fail(f"{what} (under CI every test must run)", pytrace=False)
    pytest.skip(what)


def not_applicable(reason: str) -> NoReturn:
    """Skip a test that does not apply here (another backend, platform or privilege level);
    allowed under CI, unlike a skip for something missing."""
    pytest.skip(NOT_APPLICABLE + reason)


def _find(name: str) -> str | None:
    sbin = Path(f"/usr/sbin/{name}")
    return shutil.which(name) or (str(sbin) if sbin.exists() else None)


def need_binary(name: str, package: str) -> str:
    """The path of program ``name`` (Debian package ``package``); see :func:`missing`."""
    path = _find(name)
    if path is None:
        missing(f"{name} (Debian {package}) is missing; scripts/test installs it")
    return path


def optional_binary(name: str, package: str) -> str | None:
    """A program that makes a test stricter when present (a config checker): None when it is
    missing outside CI; missing under CI fails."""
    path = _find(name)
    if path is None and in_ci():
        missing(f"{name} (Debian {package}) is missing; scripts/test installs it")
    return path


def need_module(name: str, requirement: str | None = None) -> ModuleType:
    """Import Python module ``name`` (installed by ``requirement``, default the same name, from
    the test extras); see :func:`missing`. Use instead of ``pytest.importorskip``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(
            f"Python module {name} cannot be imported ({exc}); "
            f"install {requirement or name} (pip install -e '.[test]')"
        )


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Under CI, a skip is a failure unless it says the test is :func:`not_applicable`."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail") or not in_ci():
        return
    reason = _skip_reason(report)
    if reason.startswith(NOT_APPLICABLE):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI: {reason}\n"
        "Under CI every test must run: install what it needs, or, if the test cannot apply "
        "here, skip it with daemons.not_applicable(reason)."
    )


def checkzone(origin: str, path: Path) -> None:
    """Assert that BIND's named-checkzone accepts the zone file."""
    binary = need_binary("named-checkzone", "bind9-utils")
    proc = subprocess.run([binary, origin, str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
