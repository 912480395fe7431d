"""Running one command on a channel of an SSH session: stdin sent then closed, stdout and stderr
collected, a deadline, the exit status.

``CommandRunner`` is a mixin for ``SshConnection``; it relies on ``_transport()`` (the open
paramiko transport), ``options`` (``SshOptions``: ``command_timeout``, ``connect_timeout``) and
``target`` (for messages). Commands are logged (DEBUG) by program name only.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Protocol

import paramiko

from penguinctl.remote.command import Command, Result, build_command, program_name
from penguinctl.remote.errors import CommandTimeout, RemoteCommandFailed, SshError
from penguinctl.remote.files import one_line

log = logging.getLogger("penguinctl.remote")


class Timeouts(Protocol):
    """What a runner reads of its options (``penguinctl.remote.ssh.SshOptions``)."""

    connect_timeout: float
    command_timeout: float


class CommandRunner:
    target: str
    options: Timeouts

    def _transport(self) -> paramiko.Transport:
        raise NotImplementedError

    def run(
        self,
        command: Command,
        *,
        sudo: bool = False,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        """Run ``command`` (a list is quoted argument by argument; a str is shell text, see
        ``penguinctl.remote.command``) and wait for it. ``stdin`` is sent then closed (empty
        input when None). Raises ``CommandTimeout`` past ``timeout`` (default
        ``options.command_timeout``), ``RemoteCommandFailed`` on a non-zero exit with
        ``check``, ``SshError`` if the connection drops."""
        wire = build_command(command, sudo=sudo)
        prog = program_name(command)
        limit = self.options.command_timeout if timeout is None else timeout
        transport = self._transport()
        start = time.monotonic()
        deadline = start + limit
        try:
            chan = transport.open_session(timeout=self.options.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"ssh {self.target}: cannot open a session: {one_line(exc)}") from None
        try:
            chan.exec_command(wire)
            if stdin is not None:
                chan.settimeout(max(0.001, deadline - time.monotonic()))
                chan.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            chan.shutdown_write()
            out, err = self._collect(chan, deadline)
            rc = chan.recv_exit_status()
        except TimeoutError:
            raise CommandTimeout(
                f"ssh {self.target}: `{prog}` did not finish within {limit:g}s",
                hint="raise the command timeout or check the server",
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise SshError(f"ssh {self.target}: `{prog}`: {one_line(exc)}") from None
        finally:
            chan.close()
        duration = time.monotonic() - start
        log.debug("ssh %s: %s%s -> %d (%.3fs)", self.target, "sudo " * sudo, prog, rc, duration)
        result = Result(
            rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), duration
        )
        if check and rc != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [""]
            raise RemoteCommandFailed(
                f"ssh {self.target}: `{prog}` exited {rc}: {detail[0][:200]}".rstrip(": ")
            )
        return result

    @staticmethod
    def _collect(chan: paramiko.Channel, deadline: float) -> tuple[bytes, bytes]:
        """Read stdout and stderr until the command exits; ``TimeoutError`` past ``deadline``.
        The channel's pipe wakes ``select`` on stdout data and on close; stderr-only output is
        picked up by the short poll."""
        out, err = bytearray(), bytearray()
        while True:
            busy = False
            if chan.recv_ready():
                out += chan.recv(65536)
                busy = True
            if chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
                busy = True
            if busy:
                continue
            ended = chan.closed or chan.eof_received  # everything sent is buffered by now
            if ended and chan.exit_status_ready():
                return bytes(out), bytes(err)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if ended:  # the pipe stays readable after EOF: wait for the exit status instead
                chan.status_event.wait(min(remaining, 0.05))
            else:
                select.select([chan], [], [], min(remaining, 0.05))
