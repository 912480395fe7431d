"""Run the real penguinctl entry point in-process or as a subprocess, capturing its streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart.yaml"


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_inprocess(capsys, *args: str) -> Result:
    from penguinctl.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Result(code, out, err)


def run_subprocess(env: dict[str, str], *args: str, timeout: float = 300) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "penguinctl", *map(str, args)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def agency_spec(n: int, *, tenant: str = "agency", mailboxes: int = 1) -> str:
    """A spec with one tenant, one external server, one zonefile provider and n domains."""
    docs = [
        f"apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {{name: {tenant}}}\n"
        "spec: {plan: business}\n",
        "apiVersion: penguinctl/v1\nkind: Server\n"
        f"metadata: {{name: shared-mx, tenant: {tenant}}}\n"
        "spec:\n  provider: external\n  external: {ips: [192.0.2.10]}\n"
        "  hostname: mx.agency-mail.example\n",
        "apiVersion: penguinctl/v1\nkind: DnsProvider\n"
        f"metadata: {{name: zones, tenant: {tenant}}}\n"
        "spec: {type: zonefile}\n",
    ]
    for i in range(n):
        boxes = "".join(
            f"    - {{local: user{j}, display_name: User {j}, daily_limit: 30}}\n"
            for j in range(mailboxes)
        )
        docs.append(
            f"apiVersion: penguinctl/v1\nkind: Domain\n"
            f"metadata: {{name: client{i:05d}.example, tenant: {tenant}}}\n"
            "spec:\n  server: shared-mx\n  dns: zones\n"
            "  dmarc: {policy: none, rua: dmarc@agency-mail.example}\n"
            f"  mailboxes:\n{boxes}"
        )
    return "---\n".join(docs)


# -- the command tree (help walk, README and help examples) ------------------------------------


def cli_tree():
    """The root click command exactly as `penguinctl` runs it (conventions applied)."""
    from penguinctl.cli import build_command

    return build_command()


def walk_commands(root):
    """(path, command, context) for the root and every command below it, depth first."""
    stack = [(["penguinctl"], root, None)]
    while stack:
        path, command, parent = stack.pop()
        ctx = command.context_class(command, info_name=path[-1], parent=parent)
        yield path, command, ctx
        for name, sub in reversed(list(getattr(command, "commands", {}).items())):
            stack.append(([*path, name], sub, ctx))


def run_help(*path: str) -> str:
    """The help text of ``penguinctl PATH... --help`` (in-process, as a user sees it)."""
    root = cli_tree()
    for p, command, ctx in walk_commands(root):
        if tuple(p[1:]) == path:
            return command.get_help(ctx)
    raise KeyError(path)


def parse_command_line(root, line: str) -> str | None:
    """Parse ``penguinctl ...`` as the CLI would, without running it: None when it parses, else
    the usage error. Global options are hoisted like `penguinctl` does."""
    import shlex

    from penguinctl.cli import GLOBAL_FLAGS, GLOBAL_VALUED, hoist_global_options

    words = shlex.split(line, comments=True)
    for i, word in enumerate(words):  # the shell's part: redirections, pipes, chains
        if word in (">", ">>", "2>", "|", "&&", ";", "<"):
            words = words[:i]
            break
    if not words or words[0] != "penguinctl":
        return f"{line!r} does not start with penguinctl"
    args = hoist_global_options(words[1:])
    try:
        root.make_context("penguinctl", list(args), resilient_parsing=True)
        while args and (args[0] in GLOBAL_FLAGS or args[0].split("=")[0] in GLOBAL_VALUED):
            args = args[1 if args[0] in GLOBAL_FLAGS or "=" in args[0] else 2 :]
        command, name = root, "penguinctl"
        while hasattr(command, "commands"):
            if not args:
                return "no sub-command"
            name, args = args[0], args[1:]
            if name not in command.commands:
                return f"no command {name!r}"
            command = command.commands[name]
        command.make_context(name, list(args))
    except Exception as exc:  # click's UsageError and friends
        return f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
    return None
