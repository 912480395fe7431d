"""Finding the external programs and daemons tests drive: missing ones fail under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        msg = f"{name} (Debian {package}) is missing; scripts/test installs it"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def checkzone(origin: str, path: Path) -> None:
    """Assert that BIND's named-checkzone accepts the zone file."""
    binary = need_binary("named-checkzone", "bind9-utils")
    proc = subprocess.run([binary, origin, str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
