"""A real BIND 9 (``named``) for tests: dynamic primary zones, a TSIG key, loopback only.

``BindServer(workdir, zones=[...])`` is a context manager. On entry it writes, in ``workdir``:

- ``named.conf``: ``listen-on port N { 127.0.0.1; }``, ``listen-on-v6 { none; }``, recursion and
  NOTIFY off, ``controls { }`` (no rndc channel), pid/session-key/managed-keys files in
  ``workdir``; one ``type primary`` zone per name with ``allow-update { key K; }`` and
  ``allow-transfer { key K; }`` (``{ none; }`` with ``allow_transfer=False``);
- one minimal zone file per zone (SOA + an out-of-zone NS under ``.invalid``, RFC 6761);

then starts ``named -g -4 -n 1 -c named.conf -p N`` (foreground, as the current user; log in
``workdir/named.log``) on a random free high port, and waits (bounded) until it answers an SOA
query for every zone. On exit it terminates the server (then kills it). Everything stays on
127.0.0.1.

A missing ``named`` fails the test under ``CI=true`` and skips it otherwise.
"""

from __future__ import annotations

import base64
import os
import random
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.tsig
from daemons import need_binary, optional_binary

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def named_binary(name: str = "named") -> str:
    """The path of ``named``; a missing one fails under CI=true, skips otherwise."""
    return need_binary(name, "bind9")


def free_port() -> int:
    """A random high port that is free for both TCP and UDP on 127.0.0.1 right now."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as sock:
                    sock.bind((HOST, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found on 127.0.0.1")


def zone_text(zone: str) -> str:
    return (
        "$TTL 300\n"
        f"@ IN SOA ns1.penguinctl.invalid. hostmaster.{zone}. 1 3600 600 1209600 300\n"
        "@ IN NS ns1.penguinctl.invalid.\n"
    )


class BindServer:
    """A running ``named`` serving ``zones`` as dynamic primaries (use as a context manager)."""

    def __init__(
        self,
        workdir: Path,
        zones: Sequence[str],
        *,
        key_name: str = "penguinctl-test",
        algorithm: str = "hmac-sha256",
        allow_transfer: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.zones = [z.rstrip(".").lower() for z in zones]
        self.key_name = key_name
        self.algorithm = algorithm
        self.allow_transfer = allow_transfer
        self.secret = base64.b64encode(os.urandom(32)).decode("ascii")
        self.host = HOST
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    # -- files -------------------------------------------------------------------------------
    def config_text(self) -> str:
        d = self.workdir
        transfer = f"key {self.key_name};" if self.allow_transfer else "none;"
        zones = "".join(
            f'zone "{z}" {{\n  type primary;\n  file "{d / (z + ".zone")}";\n'
            f"  allow-update {{ key {self.key_name}; }};\n"
            f"  allow-transfer {{ {transfer} }};\n}};\n"
            for z in self.zones
        )
        return (
            "options {\n"
            f'  directory "{d}";\n'
            f'  pid-file "{d / "named.pid"}";\n'
            f'  session-keyfile "{d / "session.key"}";\n'
            f'  managed-keys-directory "{d}";\n'
            f"  listen-on port {self.port} {{ 127.0.0.1; }};\n"
            "  listen-on-v6 { none; };\n"
            "  recursion no;\n"
            "  allow-query { 127.0.0.0/8; };\n"
            "  notify no;\n"
            "  dnssec-validation no;\n"
            "};\n"
            "controls { };\n"
            f'key "{self.key_name}" {{\n  algorithm {self.algorithm};\n'
            f'  secret "{self.secret}";\n}};\n' + zones
        )

    def _write(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for zone in self.zones:
            (self.workdir / f"{zone}.zone").write_text(zone_text(zone), encoding="utf-8")
        conf = self.workdir / "named.conf"
        conf.write_text(self.config_text(), encoding="utf-8")
        return conf

    # -- lifecycle ---------------------------------------------------------------------------
    def _check(self, conf: Path) -> None:
        """``named-checkconf -z`` (when installed): a bad config fails with BIND's own words."""
        checker = optional_binary("named-checkconf", "bind9-utils")
        if checker is None:
            return
        proc = subprocess.run(
            [checker, "-z", str(conf)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"named-checkconf rejects {conf}:\n{proc.stdout}{proc.stderr}")

    def start(self) -> BindServer:
        binary = named_binary()
        last = ""
        for _ in range(3):  # the random port may be taken between the check and named's bind()
            self.port = free_port()
            conf = self._write()
            self._check(conf)
            with open(self.workdir / "named.log", "wb") as log:  # named keeps its own copy
                self.proc = subprocess.Popen(
                    [binary, "-g", "-4", "-n", "1", "-c", str(conf), "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            try:
                if self._wait_ready():
                    return self
            except BaseException:
                self.stop()
                raise
            last = self.log_tail()
            self.stop()
            if "address in use" not in last:
                break
        raise RuntimeError(f"named did not start on 127.0.0.1:\n{last}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        pending = list(self.zones) or ["."]
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                query = dns.message.make_query(pending[0], "SOA")
                resp = dns.query.tcp(query, HOST, timeout=1.0, port=self.port)
            except (dns.exception.Timeout, OSError):  # refused until named listens
                time.sleep(0.02)
                continue
            if not self.zones or (resp.rcode() == dns.rcode.NOERROR and resp.answer):
                pending.pop(0)
                if not pending:
                    return True
            else:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.workdir / "named.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> BindServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- helpers for tests -------------------------------------------------------------------
    def keyring(self) -> dns.tsig.Key:
        """The TSIG key as a dnspython ``dns.tsig.Key`` (pass as ``keyring=``)."""
        return dns.tsig.Key(self.key_name, self.secret, self.algorithm + ".")

    def spec_head(self, *, ip: str, hostname: str, ttl: int | None = None) -> str:
        """Spec documents for tests: tenant ``acme``, an external server ``mx1`` (``ip``,
        ``hostname``) and a DnsProvider ``bind`` sending TSIG-signed updates to this server, its
        secret read from ``file:tsig.secret`` next to the spec (write ``self.secret`` there)."""
        ttl_line = f"  ttl: {ttl}\n" if ttl is not None else ""
        return (
            "apiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n---\n"
            "apiVersion: penguinctl/v1\nkind: Server\nmetadata: {name: mx1, tenant: acme}\n"
            f"spec: {{provider: external, external: {{ips: [{ip}]}}, hostname: {hostname}}}\n"
            "---\napiVersion: penguinctl/v1\nkind: DnsProvider\n"
            "metadata: {name: bind, tenant: acme}\n"
            f"spec:\n  type: rfc2136\n  server: {HOST}\n  port: {self.port}\n{ttl_line}"
            f"  tsig: {{name: {self.key_name}, algorithm: {self.algorithm}, "
            'secret: "file:tsig.secret"}\n'
        )

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """A plain (unsigned, TCP) query to the server; returns the dnspython response."""
        return dns.query.tcp(dns.message.make_query(name, rdtype), HOST, timeout=5, port=self.port)
