"""MailU containers and disk use, asked over SSH in one command.

``docker compose ps --all --format json`` (a JSON array, or one object per line in newer
Compose) gives each service's ``State`` and ``Health``; ``df -P -k ROOT`` the disk holding the
MailU root. A container not running or unhealthy fails; one still ``starting`` warns. Disk
thresholds follow the facts file: warn over 80 %, fail over 90 %.
"""

from __future__ import annotations

import json
from typing import Any

from penguinctl.health.results import Result

DISK_WARN, DISK_FAIL = 80, 90
_MARK = "--penguinctl-df--"
_SCRIPT = (
    'docker compose --project-directory "$1" -p "$2" ps --all --format json; '
    f'echo "{_MARK}"; df -P -k "$1"'
)


def parse_ps(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return list(json.loads(text))
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def parse_df(text: str) -> tuple[int, str] | None:
    """(use %, mount point) from ``df -P`` output."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        return None
    cols = lines[-1].split()
    try:
        return int(cols[4].rstrip("%")), cols[5]
    except (IndexError, ValueError):
        return None


def check(conn, *, root: str, project: str, base: dict[str, str]) -> list[Result]:
    res = conn.run(["sh", "-c", _SCRIPT, "sh", root, project], timeout=60)
    ps_text, _, df_text = res.stdout.partition(_MARK)
    out = []
    containers = Result(check="containers", subject=project, status="ok", **base)
    try:
        items = parse_ps(ps_text)
    except ValueError:
        items = None
    if items is None:
        containers.status, containers.detail = "error", "unreadable `docker compose ps` output"
    elif not items:
        containers.status = "fail"
        containers.detail = f"no containers in project {project} ({res.stderr.strip()[:120]})"
    else:
        bad, starting = [], []
        for c in items:
            name = c.get("Service") or c.get("Name") or "?"
            state = (c.get("State") or "").lower()
            health = (c.get("Health") or "").lower()
            if state != "running" or health == "unhealthy":
                bad.append(f"{name} {state}{'/' + health if health else ''}")
            elif health == "starting":
                starting.append(name)
        containers.data = {"containers": len(items), "bad": bad, "starting": starting}
        if bad:
            containers.status, containers.detail = "fail", "not healthy: " + ", ".join(bad)
        elif starting:
            containers.status, containers.detail = "warn", "starting: " + ", ".join(starting)
        else:
            containers.detail = f"{len(items)} running and healthy"
    out.append(containers)
    disk = Result(check="disk", subject=root, status="ok", **base)
    parsed = parse_df(df_text)
    if parsed is None:
        disk.status, disk.detail = "error", f"df failed: {res.stderr.strip()[-120:]}"
    else:
        used, mount = parsed
        disk.data = {"used_percent": used, "mount": mount}
        disk.detail = f"{used}% used on {mount}"
        if used > DISK_FAIL:
            disk.status = "fail"
        elif used > DISK_WARN:
            disk.status = "warn"
    out.append(disk)
    return out
