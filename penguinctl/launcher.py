"""The `penguinctl` console script: a read-only command runs warm when it can
(``penguinctl.warm``), everything else (and everything when it cannot) in this process."""

from __future__ import annotations

import sys


def main() -> None:
    from penguinctl.warm.client import run

    code = run(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from penguinctl.cli import main as cli_main

    cli_main()
