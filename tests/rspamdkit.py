"""Debian's real ``rspamd`` (3.x, as MailU runs) loading the DKIM signing files penguinctl writes
for MailU, on loopback.

MailU's antispam container sees ``<root>/overrides/rspamd`` at ``/overrides`` and (penguinctl's
compose) ``<root>/dkim-sign`` at ``/dkim-sign``, and MailU's own ``local.d/dkim_signing.conf``
(``use_vault = true`` and friends) includes ``/overrides/dkim_signing.conf`` at priority 1: the
trap penguinctl's ``.priority 2`` override defeats. ``Rspamd(workdir, root)`` reproduces exactly
that layout without touching the host: rspamd runs in a private mount namespace (``unshare
-m``) chrooted into an overlay of ``/`` (writes land in ``workdir``), where ``/overrides`` and
``/dkim-sign`` are bind mounts of the MailU root's directories, as in the container. Its normal
worker listens on 127.0.0.1 and a free port; ``sign(raw, user)`` passes a message through it
with ``rspamc --mime`` (an authenticated user, as MailU's submission port does) and returns the
message rspamd wrote back (with its DKIM-Signature). File maps are polled every 2 s here
(``map_watch_interval``), so a selector switch penguinctl writes is picked up without a
restart, as in MailU.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from daemons import need_binary
from sshd import free_port

STARTUP_TIMEOUT = 120.0  # compiling its TLD list and regexps takes a while on a busy machine

# MailU 2024.06's core/rspamd/conf/dkim_signing.conf (mailu.md), the vault unreachable here
MAILU_DKIM_SIGNING = """\
try_fallback = false;
use_esld = false;
allow_username_mismatch = true;
use_vault = true;
vault_url = "http://127.0.0.1:9/internal/rspamd/vault";
vault_token = "mailu";
.include(try=true,priority=1,duplicate=merge) "/overrides/dkim_signing.conf"
"""

_START = r"""
set -e
m=$1; shift
mount -t overlay overlay -o "lowerdir=/,upperdir=$m.upper,workdir=$m.work" "$m"
mkdir -p "$m/overrides" "$m/dkim-sign" "$m/rspamd-local"
mount --bind "$OVERRIDES" "$m/overrides"
mount --bind "$DKIMSIGN" "$m/dkim-sign"
mount --bind "$LOCAL" "$m/rspamd-local"
mount --bind /dev "$m/dev"
mount -t proc proc "$m/proc"
exec chroot "$m" "$@"
"""


class Rspamd:
    def __init__(self, workdir: Path, root: Path) -> None:
        self.workdir = workdir
        self.root = root
        self.port = 0
        self.proc: subprocess.Popen | None = None

    def _config(self) -> Path:
        local = self.workdir / "local"
        for sub in ("local.d", "override.d", "db", "run", "log"):
            (local / sub).mkdir(parents=True, exist_ok=True)
        (local / "local.d" / "dkim_signing.conf").write_text(MAILU_DKIM_SIGNING)
        picked: list[int] = []
        while len(picked) < 3:
            port = free_port("127.0.0.1")
            if port not in picked:
                picked.append(port)
        self.port = picked[0]
        ports = dict(zip(("worker-normal.inc", "worker-controller.inc", "worker-proxy.inc"),
                         picked, strict=True))  # fmt: skip
        for name, port in ports.items():
            (local / "override.d" / name).write_text(f'bind_socket = "127.0.0.1:{port}";\n')
        (local / "override.d" / "logging.inc").write_text(
            'type = "file";\nfilename = "/rspamd-local/log/rspamd.log";\nlevel = "info";\n'
        )
        (local / "local.d" / "options.inc").write_text(
            "dns { timeout = 1s; retransmits = 1; }\nmap_watch_interval = 2s;\n"
        )
        return local

    def start(self) -> Rspamd:
        rspamd = need_binary("rspamd", "rspamd")
        need_binary("rspamc", "rspamd")
        local = self._config()
        merged = self.workdir / "merged"
        for d in (merged, Path(f"{merged}.upper"), Path(f"{merged}.work")):
            d.mkdir(parents=True, exist_ok=True)
        env = {"OVERRIDES": str(self.root / "overrides" / "rspamd"),
               "DKIMSIGN": str(self.root / "dkim-sign"), "LOCAL": str(local),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}  # fmt: skip
        self.log = open(self.workdir / "rspamd.out", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", _START, "sh", str(merged),
             rspamd, "-f", "-u", "root", "-g", "root", "-i",
             "--var", "LOCAL_CONFDIR=/rspamd-local", "--var", "DBDIR=/rspamd-local/db",
             "--var", "RUNDIR=/rspamd-local/run", "--var", "LOGDIR=/rspamd-local/log"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        import urllib.request

        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited: {self.logs()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2) as r:
                    if r.read().strip() == b"pong":
                        return self
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"rspamd did not answer: {self.logs()[-2000:]}")

    def logs(self) -> str:
        parts = []
        for p in (self.workdir / "rspamd.out", self.workdir / "local" / "log" / "rspamd.log"):
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)

    def sign(self, raw: bytes, user: str) -> bytes:
        res = subprocess.run(
            ["rspamc", "-h", f"127.0.0.1:{self.port}", "-t", "20", "--user", user,
             "--ip", "127.0.0.1", "--mime"],
            input=raw, capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"rspamc failed: {res.stderr.decode(errors='replace')[-500:]}")
        return res.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def __enter__(self) -> Rspamd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
