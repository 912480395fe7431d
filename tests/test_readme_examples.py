"""The README's "Using it" and "Bulk onboarding" commands run as written against `examples/`
(issue 17, item 6): each line is executed in a copy of the tree, from a fresh project directory,
and must succeed; the lines that need real servers or live DNS are parsed (options exist, values
convert) but not run."""

from __future__ import annotations

import os
import re
import shlex
import shutil

import pytest
from clitools import REPO, cli_tree, parse_command_line, run_inprocess

README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLES = REPO / "examples"


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    nxt = README.find("\n### ", start + len(title))
    ends = [e for e in (end, nxt) if e != -1]
    return README[start : min(ends)] if ends else README[start:]


def _blocks(text: str, lang: str = "sh") -> list[list[str]]:
    found = re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)
    return [[ln for ln in block.splitlines() if ln.strip()] for block in found]


def _commands(block: list[str]) -> list[list[str]]:
    return [
        words[1:]
        for words in (shlex.split(ln, comments=True) for ln in block)
        if words and words[0] == "penguinctl"
    ]


@pytest.fixture
def tree_copy(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("PENGUINCTL_", "XDG_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("PENGUINCTL_TODAY", "2026-11-23")
    work = tmp_path / "examples"
    shutil.copytree(EXAMPLES, work)
    monkeypatch.chdir(work)
    return work


def test_using_it_runs_as_written(tree_copy, capsys):
    section = _section("## Using it")
    runnable, real_servers = _blocks(section)[:2]
    assert runnable[0] == "cd examples"
    commands = _commands(runnable)
    assert len(commands) >= 15
    for argv in commands:
        res = run_inprocess(capsys, *argv)
        assert res.code == 0, f"penguinctl {' '.join(argv)} -> {res.code}\n{res.err}{res.out}"
    # what the lines did, in the copied tree
    assert (tree_copy / ".penguinctl" / "state.db").is_file()
    assert sorted(p.name for p in (tree_copy / "zones").iterdir()) == [  # dns export
        "acme-mail.example.zone",
        "acme-outreach.example.zone",
    ]
    assert sorted(p.name for p in (tree_copy / "specs" / "clients" / "acme").iterdir()) == [
        "client-a.example.yaml",
        "client-b.example.yaml",
    ]
    assert not (tree_copy.parent / "user").exists()  # nothing outside the project directory

    root = cli_tree()
    for line in real_servers:
        assert parse_command_line(root, line) is None, line


def test_bulk_onboarding_runs_as_written(tree_copy, capsys):
    section = _section("### Bulk onboarding (CSV)")
    (csv_block,) = _blocks(section, "csv")
    assert "\n".join(csv_block) + "\n" == (EXAMPLES / "clients.csv").read_text()
    (commands,) = [_commands(b) for b in _blocks(section) if _commands(b)]
    assert run_inprocess(capsys, "init", "--project").code == 0
    for argv in commands:
        res = run_inprocess(capsys, *argv)
        assert res.code == 0, f"penguinctl {' '.join(argv)} -> {res.code}\n{res.err}{res.out}"
    last = res.json()
    assert {"client-a.example", "client-b.example"} <= {r["domain"] for r in last["results"]}
    assert (tree_copy / "specs" / "clients" / "acme" / "client-b.example.yaml").is_file()


def test_quickstart_section_names_what_the_script_runs():
    script = (REPO / "scripts" / "quickstart").read_text()
    section = _section("## The two commands")
    for command in (
        "penguinctl init --project",
        "penguinctl apply -f examples/quickstart.yaml --yes",
        "penguinctl get domains",
        "penguinctl dns records acme-mail.example",
    ):
        assert command in section and command.replace("penguinctl ", "run penguinctl ") in script
