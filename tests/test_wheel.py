"""The wheel carries the shipped files (issue 18, item 1): build it from a copy of the checkout,
install it into a fresh virtual environment, remove the checkout's sources, and run the
quickstart (README command 1) with that installation.

The fresh environment gets penguinctl from the wheel only; its dependencies are this test
environment's (linked, without penguinctl), so nothing is downloaded but the build backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from test_quickstart import _copy_repo, _env, _run

pytestmark = pytest.mark.slow


def _deps_dir(dest: Path) -> Path:
    """This environment's site-packages without penguinctl (links), for a .pth file."""
    dest.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("penguinctl", "__editable__", "_virtualenv")) or name.endswith(".pth"):
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def _fresh_venv(path: Path, deps: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "penguinctl_test_deps.pth").write_text(f"{deps}\n")
    return python


def test_the_wheel_ships_config_playbooks_templates_and_runs_the_quickstart(tmp_path):
    repo = _copy_repo(tmp_path / "penguinctl")
    dist = tmp_path / "dist"
    build = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(repo)],
        tmp_path, {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("penguinctl-*.whl")

    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("config", "playbooks", "templates"):
        for path in (repo / kind).rglob("*"):
            if path.is_file():
                rel = path.relative_to(repo).as_posix()
                assert f"penguinctl/_shipped/{rel}" in names, rel
    assert not any(n.startswith(("config/", "playbooks/", "templates/")) for n in names)

    # The checkout's own sources and shipped files are gone: only the wheel can supply them.
    for gone in ("penguinctl", "config", "playbooks", "templates", "setup.py", "pyproject.toml"):
        target = repo / gone
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    home = tmp_path / "home"
    home.mkdir()
    venv = tmp_path / "venv"
    python = _fresh_venv(venv, _deps_dir(tmp_path / "deps"))
    env = _env(home, PENGUINCTL_VENV=str(venv), PENGUINCTL_PACKAGE=str(wheel),
               PIP_NO_INDEX="1")  # fmt: skip
    first = _run(["./scripts/quickstart"], repo, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.count("No changes.") == 1  # the second apply
    assert (repo / ".penguinctl" / "state.db").is_file()

    probe = """
import json, penguinctl
from penguinctl import shipped
from penguinctl.billing.catalog import load_catalog
from penguinctl.control.config import load_schedules
from penguinctl.health import dnsbl
from penguinctl.mailu.stack import playbook_digest
from penguinctl.playbook.loader import available, load_playbook
from penguinctl.playbook.render import render_template
print(json.dumps({
    "package": penguinctl.__file__,
    "root": str(shipped.root()),
    "plans": sorted(load_catalog().plans),
    "jobs": sorted(load_schedules({}).jobs),
    "dnsbl": list(dnsbl.ip_lists()),
    "playbooks": available(),
    "mailu_steps": len(load_playbook("mailu").steps),
    "digest": playbook_digest(),
    "rspamd": render_template("mailu/dkim_signing.conf.j2", {}).decode(),
}))
"""
    out = _run([str(python), "-c", probe], tmp_path, {**env, "PENGUINCTL_HOME": str(home)})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    site = str(venv / "lib")
    assert got["package"].startswith(site) and got["root"].startswith(site)
    assert got["root"].endswith("penguinctl/_shipped")
    assert {"starter", "professional", "business", "enterprise"} <= set(got["plans"])
    assert "check" in got["jobs"] and "zen.spamhaus.org" in got["dnsbl"]
    assert got["playbooks"] == ["example", "mailu"] and got["mailu_steps"] > 3
    assert "use_vault = false;" in got["rspamd"]

    from penguinctl.mailu.stack import playbook_digest

    assert got["digest"] == playbook_digest()  # the same files as the checkout's
