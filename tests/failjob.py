"""An operator-defined job that fails (schedules.yaml `run: failjob:boom`), for job.failed."""

from __future__ import annotations

from typing import Any


def boom(ctx: Any) -> dict:
    raise RuntimeError("restic: repository is locked by another process")
