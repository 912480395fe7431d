"""The only place exceptions become messages and exit codes.

A known ``PenguinError`` prints one line: ``error: what (where) -- hint``. Anything else prints one
line plus the path of a debug log holding the traceback. ``--debug`` prints tracebacks instead.
Messages are passed through the secret masker before printing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from pathlib import Path

from penguinctl import clock
from penguinctl.errors import ExitCode, PenguinError, SpecError
from penguinctl.private_files import make_dirs


def _write_debug_log(exc: BaseException, log_dir: Path | None, mask=lambda s: s) -> Path:
    text = mask("".join(traceback.format_exception(exc)))
    stamp = clock.now().strftime("%Y%m%dT%H%M%S")
    for directory in (log_dir, Path(tempfile.gettempdir())):
        if directory is None:
            continue
        try:
            make_dirs(directory)
            # mkstemp: a new name, 0600, never through a symlink (the fallback is /tmp)
            fd, name = tempfile.mkstemp(
                prefix=f"penguinctl-debug-{stamp}-", suffix=".log", dir=directory
            )
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return Path(name)
        except OSError:
            continue
    return Path("(could not write a debug log)")


def handle(exc: BaseException, *, debug: bool, log_dir: Path | None, mask=lambda s: s) -> int:
    """Print ``exc`` for a person and return the exit code."""
    err = sys.stderr
    if isinstance(exc, KeyboardInterrupt):
        print("error: interrupted", file=err)
        return ExitCode.INTERRUPTED
    if debug:
        print(mask("".join(traceback.format_exception(exc))), file=err, end="")
    if isinstance(exc, SpecError):
        for issue in exc.issues:
            print(f"error: {mask(str(issue))}", file=err)
        print(f"{len(exc.issues)} error(s); nothing was written.", file=err)
        return exc.exit_code
    if isinstance(exc, PenguinError):
        line = f"error: {mask(exc.message)}"
        if exc.hint:
            line += f" -- {mask(exc.hint)}"
        print(line, file=err)
        return exc.exit_code
    path = _write_debug_log(exc, log_dir, mask)
    summary = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    print(f"error: unexpected failure: {mask(summary)}", file=err)
    print(f"debug log: {path} (re-run with --debug for the traceback)", file=err)
    return ExitCode.UNEXPECTED
