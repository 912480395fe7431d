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
