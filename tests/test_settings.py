"""Where penguinctl finds its home and state, and why: the project directory, the config file,
`status`, plain PostgreSQL URLs, read-only commands that create nothing, configuration mistakes
that exit 2 (issue 17, items 2-5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from clitools import QUICKSTART, run_inprocess
from daemons import not_applicable

from penguinctl.errors import ConfigError
from penguinctl.settings import load_settings, normalize_state_url


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No PENGUINCTL_* variables; HOME and the XDG dirs inside tmp; cwd an empty directory."""
    for name in list(os.environ):
        if name.startswith("PENGUINCTL_") or name.startswith("XDG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- the home: PENGUINCTL_HOME, a project directory, the XDG default ---------------------------


def test_project_dir_is_found_from_a_subdirectory_before_the_xdg_default(clean_env):
    work = clean_env / "work"
    deep = work / "a" / "b"
    deep.mkdir(parents=True)
    assert load_settings(cwd=deep).sources["home"][0] == "default"
    assert load_settings(cwd=deep).data_dir == clean_env / "user/.local/share/penguinctl"

    (work / ".penguinctl").mkdir()
    s = load_settings(cwd=deep)
    assert s.config_dir == s.data_dir == work / ".penguinctl"
    assert s.state_url == f"sqlite:///{work / '.penguinctl' / 'state.db'}"
    assert s.sources["home"][0] == "project dir"

    env = {**os.environ, "PENGUINCTL_HOME": str(clean_env / "elsewhere")}
    assert load_settings(env, cwd=deep).data_dir == clean_env / "elsewhere"
    assert load_settings(env, cwd=deep).sources["home"] == ("env", "PENGUINCTL_HOME")


def test_init_project_then_get_from_a_subdirectory_sees_the_same_state(clean_env, capsys):
    work = clean_env / "work"
    res = run_inprocess(capsys, "init", "--project")
    assert res.code == 0, res.err
    assert (work / ".penguinctl" / "state.db").is_file()
    res = run_inprocess(capsys, "apply", "-f", QUICKSTART, "--yes")
    assert res.code == 0, res.err
    assert (work / ".penguinctl" / "zones" / "acme-mail.example.zone").is_file()
    sub = work / "specs" / "clients"
    sub.mkdir(parents=True)
    os.chdir(sub)
    res = run_inprocess(capsys, "get", "domains", "-o", "json")
    assert res.code == 0, res.err
    assert sorted(d["name"] for d in res.json()) == [
        "acme-growth.example",
        "acme-mail.example",
        "acme-outreach.example",
    ]
    assert not (clean_env / "user").exists()  # nothing in the XDG default


def test_init_project_refuses_when_penguinctl_home_is_set(clean_env, capsys, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(clean_env / "home"))
    res = run_inprocess(capsys, "init", "--project")
    assert res.code == 2
    assert "PENGUINCTL_HOME" in res.err
    assert not (clean_env / "work" / ".penguinctl").exists()


# -- the config file ---------------------------------------------------------------------------


def test_config_file_sets_state_secrets_and_dns_defaults(clean_env, monkeypatch):
    project = clean_env / "work" / ".penguinctl"
    project.mkdir()
    other = clean_env / "other.db"
    (project / "config.yaml").write_text(
        f"state: sqlite:///{other}\n"
        "secrets: vault\n"
        "dns:\n  zones_dir: ../zones\n  resolvers: [192.0.2.53, '192.0.2.54:5353']\n"
    )
    s = load_settings()
    assert s.config_file == project / "config.yaml"
    assert s.state_url == f"sqlite:///{other}"
    assert s.sources["state"] == ("config file", f"{project / 'config.yaml'}: state")
    assert s.secrets_backend == "vault"
    assert s.zones_dir == clean_env / "work" / "zones"
    assert s.dns_resolvers == ("192.0.2.53", "192.0.2.54:5353")

    # the environment wins over the file, the flag over both
    monkeypatch.setenv("PENGUINCTL_STATE", "sqlite:///env.db")
    monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
    s = load_settings()
    assert s.state_url == "sqlite:///env.db" and s.sources["state"][0] == "env"
    assert s.secrets_backend == "keystore" and s.sources["secrets"][0] == "env"
    s = load_settings(state_url="sqlite:///flag.db")
    assert s.state_url == "sqlite:///flag.db" and s.sources["state"] == ("flag", "--state")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("state: sqlite:///x.db\nstat: typo\n", ":2:1: unknown key 'stat'"),
        ("dns:\n  zone_dir: z\n", ":2:3: unknown key 'dns.zone_dir'"),
        ("dns: {resolvers: 192.0.2.1}\n", "dns.resolvers: "),
        ("secrets: consul\n", "secrets='consul' is not a secrets backend"),
        ("- state\n", ":1:1: must be a mapping"),
        ("state: [\n", "invalid YAML"),
    ],
)
def test_config_file_mistakes_are_located_and_exit_2(clean_env, capsys, content, message):
    project = clean_env / "work" / ".penguinctl"
    project.mkdir()
    (project / "config.yaml").write_text(content)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_settings()
    res = run_inprocess(capsys, "get", "domains")
    assert res.code == 2
    assert str(project / "config.yaml") in res.err and "debug log" not in res.err
    assert run_inprocess(capsys, "get", "--help").code == 0  # help never reads the config


def test_status_says_what_is_in_effect_and_why(clean_env, capsys, monkeypatch):
    project = clean_env / "work" / ".penguinctl"
    project.mkdir()
    (project / "config.yaml").write_text("dns: {zones_dir: myzones}\n")
    monkeypatch.setenv("PENGUINCTL_SECRETS", "keystore")
    res = run_inprocess(capsys, "status", "-o", "json")
    assert res.code == 0, res.err
    data = res.json()
    assert data["home"]["value"] == str(project) and data["home"]["source"] == "project dir"
    assert data["config_file"]["value"] == str(project / "config.yaml")
    assert data["state"]["source"] == "default" and data["state"]["exists"] is False
    assert "penguinctl init" in data["state"]["status"]
    assert data["secrets"]["source"] == "env" and data["secrets"]["detail"] == "PENGUINCTL_SECRETS"
    assert data["dns_zones_dir"] == {
        "value": str(project / "myzones"),
        "source": "config file",
        "detail": f"{project / 'config.yaml'}: dns.zones_dir",
    }
    assert data["dns_resolvers"]["source"] == "default"
    assert _tree(project) == ["config.yaml"]  # status created nothing

    res = run_inprocess(capsys, "--state", f"sqlite:///{clean_env / 's.db'}", "status")
    assert res.code == 0, res.err
    assert "from flag: --state" in res.out and "not created yet" in res.out


# -- read-only commands create nothing ---------------------------------------------------------

READ_ONLY = [
    ["get", "domains"],
    ["get", "invoices"],
    ["describe", "domain", "acme-mail.example"],
    ["state", "history"],
    ["state", "audit"],
    ["state", "lock-status"],
    ["dns", "records", "acme-mail.example"],
    ["dkim", "status"],
    ["server", "list"],
    ["invoices", "list"],
    ["campaign", "status"],
    ["backup", "list"],
    ["state", "specs"],
    ["jobs", "list"],
    ["jobs", "history"],
]


@pytest.mark.parametrize("argv", READ_ONLY, ids=" ".join)
def test_read_only_commands_before_init_create_nothing(clean_env, capsys, argv):
    before = _tree(clean_env)
    res = run_inprocess(capsys, *argv)
    assert res.code == 2, res.err
    assert "no state store yet" in res.err and "penguinctl init" in res.err
    assert "debug log" not in res.err
    assert _tree(clean_env) == before


def test_get_with_a_state_path_that_does_not_exist_creates_no_folder(clean_env, capsys):
    missing = clean_env / "nonexistent" / "dir" / "state.db"
    res = run_inprocess(capsys, "--state", f"sqlite:///{missing}", "get", "domains")
    assert res.code == 2
    assert res.err.strip() == (
        f"error: no state store yet at {missing} -- create it with `penguinctl init` or "
        "`penguinctl apply -f SPEC`, or point --state / PENGUINCTL_STATE at an existing one"
    )
    assert not (clean_env / "nonexistent").exists()


def test_read_only_commands_read_an_existing_state(clean_env, capsys, state_url, monkeypatch):
    monkeypatch.setenv("PENGUINCTL_HOME", str(clean_env / "home"))
    monkeypatch.setenv("PENGUINCTL_STATE", state_url)
    res = run_inprocess(capsys, "get", "domains")
    assert res.code == 2 and "no state store yet" in res.err
    assert run_inprocess(capsys, "apply", "-f", QUICKSTART, "--yes").code == 0
    res = run_inprocess(capsys, "get", "domains", "-o", "json")
    assert res.code == 0 and len(res.json()) == 3


# -- state URLs --------------------------------------------------------------------------------


def test_plain_postgres_urls_mean_psycopg():
    assert normalize_state_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_state_url("postgresql://u:p@h:5433/db?sslmode=require") == (
        "postgresql+psycopg://u:p@h:5433/db?sslmode=require"
    )
    assert normalize_state_url("postgresql+psycopg2://h/db") == "postgresql+psycopg://h/db"
    assert normalize_state_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"
    assert normalize_state_url("sqlite:///postgres://x") == "sqlite:///postgres://x"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_plain_postgres_url_works_end_to_end(clean_env, capsys, state_url, scheme, monkeypatch):
    if not state_url.startswith("postgresql+psycopg://"):
        not_applicable("the URL spellings are PostgreSQL's; this is the SQLite half")
    plain = state_url.replace("postgresql+psycopg://", f"{scheme}://", 1)
    monkeypatch.setenv("PENGUINCTL_HOME", str(clean_env / "home"))
    res = run_inprocess(capsys, "--state", plain, "apply", "-f", QUICKSTART, "--yes")
    assert res.code == 0, res.err
    res = run_inprocess(capsys, "--state", plain, "get", "domains", "-o", "json")
    assert res.code == 0, res.err
    assert len(res.json()) == 3


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a valid SQLAlchemy URL"),
        ("mysql+nosuchdriver://x/y", "unsupported database"),
        ("postgresql://nobody:secretpw@127.0.0.1:1/none", "is unreachable"),
    ],
)
def test_bad_or_unreachable_state_exits_2_without_a_debug_log(clean_env, capsys, url, message):
    res = run_inprocess(capsys, "--state", url, "apply", "-f", QUICKSTART, "--yes")
    assert res.code == 2, res.err
    assert message in res.err
    assert "debug log" not in res.err and "secretpw" not in res.err
    assert len(res.err.strip().splitlines()) == 1
