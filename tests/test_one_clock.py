"""One clock for the whole product (product.md §4 "One clock").

Every read of the date or time in ``penguinctl/`` goes through ``penguinctl.clock``; monotonic
timers for durations and timeouts are the only other time source. The AST walk below fails on
any other way of asking "what time is it". Allowed, because they measure durations or wait and
never say what time it is: ``time.monotonic``, ``time.monotonic_ns``, ``time.perf_counter``,
``time.perf_counter_ns``, ``time.process_time``, ``time.sleep``, and ``datetime.fromtimestamp``
/ ``time.gmtime``/``localtime``/``strftime`` given an explicit time value.
"""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from clitools import run_inprocess

from penguinctl import clock

pytestmark = pytest.mark.clock  # date-sensitive: scripts/test re-runs it under shifted clocks

PACKAGE = Path(__file__).resolve().parents[1] / "penguinctl"
ALLOWED_FILES = {PACKAGE / "clock.py"}  # the one clock itself

# (object name, attribute) calls that read the wall clock
FORBIDDEN_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}
# calls that read the wall clock only when given no time argument
NO_ARG_FORBIDDEN = {
    ("time", "gmtime"),
    ("time", "localtime"),
    ("time", "ctime"),
    ("time", "asctime"),
    ("utils", "formatdate"),
    ("email.utils", "formatdate"),
    (None, "formatdate"),
    (None, "localtime"),
}
FORBIDDEN_IMPORTS = {("time", "time"), ("time", "time_ns")}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_IMPORTS:
                    found.append(f"{where}: from {node.module} import {alias.name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = _dotted(func.value) or ""
            short = owner.rsplit(".", 1)[-1]
            key = (short, func.attr)
            if key in FORBIDDEN_CALLS:
                found.append(f"{where}: {owner}.{func.attr}()")
            elif (key in NO_ARG_FORBIDDEN or (owner, func.attr) in NO_ARG_FORBIDDEN) and not (
                node.args or node.keywords
            ):
                found.append(f"{where}: {owner}.{func.attr}() without a time value")
            elif (short, func.attr) == ("time", "strftime") and len(node.args) < 2:
                found.append(f"{where}: time.strftime() without a time value")
        elif (
            isinstance(func, ast.Name)
            and (None, func.id) in NO_ARG_FORBIDDEN
            and not (node.args or node.keywords)
        ):
            found.append(f"{where}: {func.id}() without a time value")
    return found


def test_product_code_reads_time_only_through_the_clock():
    files = sorted(p for p in PACKAGE.rglob("*.py") if p not in ALLOWED_FILES)
    assert len(files) > 100  # the walk really covers the package
    bad = [v for p in files for v in _violations(p)]
    assert not bad, "read the time through penguinctl.clock instead:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime, UTC\nx = datetime.now(UTC)\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from datetime import date\nx = date.today()\n",
        "import time\nx = time.time()\n",
        "from time import time\n",
        "import email.utils\nx = email.utils.formatdate()\n",
        "import time\nx = time.strftime('%Y')\n",
        "import time\nx = time.localtime()\n",
    ],
)
def test_the_walk_catches_each_forbidden_form(tmp_path, source):
    path = PACKAGE / "_probe_for_test.py"  # inside the package so relative paths work
    try:
        path.write_text(source)
        assert _violations(path)
    finally:
        path.unlink(missing_ok=True)


def test_the_walk_allows_timers_and_explicit_times():
    ok = (
        "import time\nfrom datetime import datetime, UTC\n"
        "t = time.monotonic(); p = time.perf_counter(); time.sleep(0)\n"
        "x = datetime.fromtimestamp(0, UTC); y = time.strftime('%Y', time.gmtime(0))\n"
    )
    path = PACKAGE / "_probe_for_test.py"
    try:
        path.write_text(ok)
        assert _violations(path) == []
    finally:
        path.unlink(missing_ok=True)


# -- the clocks ---------------------------------------------------------------------------------


def test_environment_selects_the_clock(tmp_path):
    real = datetime.now(UTC)
    assert isinstance(clock.from_env({}), clock.SystemClock)

    shifted = clock.from_env({"PENGUINCTL_TODAY": "2028-02-29"}).now()
    assert shifted.date() == date(2028, 2, 29)
    assert abs(shifted.replace(year=real.year, month=real.month, day=real.day) - real) < timedelta(
        minutes=1
    )  # the time of day is real

    offset = clock.from_env({"PENGUINCTL_TIME_OFFSET": "86400"}).now()
    assert timedelta(hours=23) < offset - real < timedelta(hours=25)

    path = tmp_path / "clock"
    clock.FileClock.write(path, datetime(2030, 1, 1, tzinfo=UTC))
    env = {
        "PENGUINCTL_CLOCK_FILE": str(path),
        "PENGUINCTL_TODAY": "2028-02-29",
        "PENGUINCTL_TIME_OFFSET": "5",
    }
    file_clock = clock.from_env(env)  # the file wins over the others
    assert file_clock.now() == datetime(2030, 1, 1, tzinfo=UTC)
    clock.FileClock.write(path, datetime(2030, 1, 8, 12, tzinfo=UTC))
    assert file_clock.now() == datetime(2030, 1, 8, 12, tzinfo=UTC)  # follows the file
    assert clock.from_env({k: v for k, v in env.items() if "FILE" not in k}).now().date() == date(
        2028, 2, 29
    )  # then the date


def test_file_clock_never_falls_back_to_real_time(tmp_path):
    with pytest.raises(FileNotFoundError):
        clock.FileClock(tmp_path / "missing").now()
    bad = tmp_path / "bad"
    bad.write_text("next tuesday")
    with pytest.raises(ValueError, match="not an ISO 8601 instant"):
        clock.FileClock(bad).now()


def test_installed_clock_is_read_by_code_deep_inside():
    from penguinctl.state.models import utcnow

    fixed = clock.ManualClock(datetime(2027, 12, 31, 23, 59, 30, tzinfo=UTC))
    previous = clock.install(fixed)
    try:
        assert utcnow() == fixed.now()
        fixed.advance(timedelta(seconds=45))
        assert clock.today() == date(2028, 1, 1)
    finally:
        clock.install(previous)


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PENGUINCTL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PENGUINCTL_STATE", raising=False)
    monkeypatch.chdir(tmp_path)
    return lambda *args: run_inprocess(capsys, *args)


def test_a_shifted_clock_reaches_every_record_of_an_apply(cli, monkeypatch):
    """State rows, audit events, DKIM selectors and the zone serial all follow the clock."""
    import sqlite3

    monkeypatch.setenv("PENGUINCTL_TODAY", "2028-02-29")
    spec = Path(__file__).resolve().parents[1] / "examples" / "quickstart.yaml"
    res = cli("apply", "-f", spec, "--yes")
    assert res.code == 0, res.err
    db = sqlite3.connect(Path("home") / "state.db")
    stamps = [r[0] for r in db.execute("SELECT ts FROM audit_events")]
    stamps += [r[0] for r in db.execute("SELECT updated_at FROM resources")]
    stamps += [r[0] for r in db.execute("SELECT started_at FROM apply_runs")]
    assert stamps and all(s.startswith("2028-02-29") for s in stamps), stamps[:5]
    keys = cli("get", "dkim", "-o", "json")
    assert keys.code == 0, keys.err
    assert "pm202802" in keys.out and "pm2026" not in keys.out
    zones = list((Path("home") / "zones").glob("*.zone"))
    assert zones and all(" 20280229" in z.read_text() for z in zones)


def test_a_malformed_clock_variable_is_a_usage_error(cli, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_TODAY", "tomorrow")
    res = cli("get", "domains")
    assert res.code == 2
    assert "PENGUINCTL_TODAY" in res.err and "YYYY-MM-DD" in res.err
