"""Recording stand-ins for a server's ``docker``, ``apt-get`` and ``dpkg-query`` (no Docker engine
runs here, and tests must not install packages on the machine).

``install_shims(directory)`` writes the three scripts into ``directory`` (put it first on the sshd
sessions' PATH with ``SshServer(path_prefix=...)``) and returns a ``Shims`` handle. Every call is
appended to ``calls.log`` (one line per call, arguments joined by spaces). Behaviour:

- ``docker compose version --short`` prints a version (Compose v2 is present);
- ``docker compose ... up -d`` marks the project up (``state/up-<project>``);
- ``docker compose -p P ps --status running -q`` prints one id per service once P is up;
- ``docker compose ... exec -T antispam id -g rspamd`` prints the rspamd gid (``RSPAMD_GID``);
- ``apt-get install ... NAMES`` marks the packages installed, ``dpkg-query -W`` reports them
  (``ii``) in dpkg's ``${Package}\\t${db:Status-Abbrev}`` format.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RSPAMD_GID = 101

_DOCKER = r"""#!/bin/sh
d=$(dirname "$0"); echo "docker $*" >> "$d/calls.log"; mkdir -p "$d/state"
project=mailu; prev=
for a in "$@"; do [ "$prev" = "-p" ] && project=$a; prev=$a; done
case " $* " in
  *" compose version"*) echo 2.24.6; exit 0 ;;
  *" up -d"*) touch "$d/state/up-$project"; exit 0 ;;
  *" ps "*) [ -f "$d/state/up-$project" ] && printf 'c1\nc2\nc3\nc4\nc5\nc6\nc7\n'; exit 0 ;;
  *" exec "*"antispam id -g rspamd"*) echo @GID@; exit 0 ;;
esac
exit 0
"""

_APT = r"""#!/bin/sh
d=$(dirname "$0"); echo "apt-get $*" >> "$d/calls.log"; mkdir -p "$d/state"
install=0
for a in "$@"; do
  case "$a" in
    install) install=1 ;;
    -*|update) ;;
    *) [ $install = 1 ] && echo "$a" >> "$d/state/packages" ;;
  esac
done
exit 0
"""

_DPKG = r"""#!/bin/sh
d=$(dirname "$0"); echo "dpkg-query $*" >> "$d/calls.log"
for a in "$@"; do
  case "$a" in
    -*) ;;
    *) grep -qxF -- "$a" "$d/state/packages" 2>/dev/null && printf '%s\tii \n' "$a" ;;
  esac
done
exit 0
"""


@dataclass
class Shims:
    directory: Path

    @property
    def log(self) -> Path:
        return self.directory / "calls.log"

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def clear(self) -> None:
        self.log.unlink(missing_ok=True)

    def packages(self) -> set[str]:
        path = self.directory / "state" / "packages"
        return set(path.read_text().split()) if path.exists() else set()


def install_shims(directory: Path) -> Shims:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("docker", _DOCKER.replace("@GID@", str(RSPAMD_GID))),
        ("apt-get", _APT),
        ("dpkg-query", _DPKG),
    ):
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)
    return Shims(directory)
