"""An operator-defined job for the serve tests (schedules.yaml `run: probejob:probe`); imported
by real `serve` processes, so it imports nothing from the test tree."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def probe(ctx: Any) -> dict:
    """An operator-defined job (config's `run:`): logs its start and end to PROBE_LOG and, while
    PROBE_HOLD names a file that does not exist, waits (up to 120 s) as a long job would."""
    log = Path(os.environ["PROBE_LOG"])
    line = {"pid": os.getpid(), "run": ctx.run_id, "tick": ctx.scheduled_for.isoformat()}
    with log.open("a") as fh:
        fh.write(json.dumps({**line, "event": "start", "t": time.monotonic()}) + "\n")
    hold = os.environ.get("PROBE_HOLD")
    end = time.monotonic() + 120
    while hold and not Path(hold).exists() and time.monotonic() < end and not ctx.cancelled:
        time.sleep(0.05)
    with log.open("a") as fh:
        fh.write(json.dumps({**line, "event": "end", "t": time.monotonic()}) + "\n")
    return {"pid": os.getpid()}
