"""Remote files over an SSH connection: state (mode + sha256), atomic writes, sudo installs.

``FileOps`` is a mixin for ``SshConnection``; it relies on three methods of the class it is
mixed into: ``run(command, sudo=, check=)``, ``_sftp()`` (the session's SFTP client, opened on
first use) and ``_open_sftp()`` (that client when it is already open, else None), and on the
``target`` attribute for messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import posixpath
import secrets
import stat
from typing import TYPE_CHECKING, Any

from penguinctl.remote.errors import SshError

if TYPE_CHECKING:
    import paramiko

    from penguinctl.remote.command import Command, Result

log = logging.getLogger("penguinctl.remote")

# Prints the octal mode then the sha256 of regular file $1, or "absent".
STATE_SCRIPT = 'if [ -f "$1" ]; then stat -c %a -- "$1" && sha256sum -- "$1"; else echo absent; fi'
# Copies $1 over $2 atomically (temp file in the target directory, then rename) with mode $3.
INSTALL_SCRIPT = (
    'set -e; t=$(mktemp "$(dirname -- "$2")/.penguinctl.XXXXXX"); '
    "trap 'rm -f -- \"$t\"' EXIT; "
    'cat -- "$1" > "$t"; chmod -- "$3" "$t"; mv -f -- "$t" "$2"'
)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class FileOps:
    target: str

    def run(
        self, command: Command, *, sudo: bool = False, check: bool = False, **kw: Any
    ) -> Result:
        raise NotImplementedError

    def _sftp(self) -> paramiko.SFTPClient:
        raise NotImplementedError

    def _open_sftp(self) -> paramiko.SFTPClient | None:
        raise NotImplementedError

    def file_state(self, path: str, *, sudo: bool = False) -> tuple[int, str] | None:
        """``(mode, sha256 hex)`` of the regular file at ``path``, None when there is none."""
        res = self.run(["sh", "-c", STATE_SCRIPT, "sh", path], sudo=sudo, check=True)
        lines = res.stdout.split("\n")
        if lines[0].strip() == "absent":
            return None
        try:
            return int(lines[0].strip(), 8), lines[1].split()[0]
        except (ValueError, IndexError):
            raise SshError(f"ssh {self.target}: unexpected output from stat on {path}") from None

    def checksum(self, path: str, *, sudo: bool = False) -> str | None:
        """The sha256 (hex) of the remote file, or None when it does not exist."""
        state = self.file_state(path, sudo=sudo)
        return None if state is None else state[1]

    def put_file(self, path: str, data: bytes, mode: int = 0o644, *, sudo: bool = False) -> bool:
        """Make ``path`` hold exactly ``data`` with ``mode``; returns False (and writes nothing)
        when it already does. The write is atomic: readers see the old file or the new one,
        never a partial one (temp file in the same directory, then rename). With ``sudo`` the
        data goes to a private temp file first and is installed by root (ownership root)."""
        want = (mode & 0o7777, hashlib.sha256(data).hexdigest())
        if self.file_state(path, sudo=sudo) == want:
            return False
        self.write_file(path, data, mode, sudo=sudo)
        return True

    def write_file(self, path: str, data: bytes, mode: int = 0o644, *, sudo: bool = False) -> None:
        """``put_file`` without the comparison: always writes (atomically, as ``put_file``).
        For callers that already know the remote state (the playbook engine reads it in a
        batch), saving a round trip."""
        try:
            if sudo:
                self._put_sudo(path, data, mode & 0o7777)
            else:
                self._put_sftp(path, data, mode & 0o7777)
        except OSError as exc:
            raise SshError(f"ssh {self.target}: cannot write {path}: {one_line(exc)}") from None
        log.debug("ssh %s: wrote %s (%d bytes)", self.target, path, len(data))

    def make_directory(self, path: str, mode: int | None = None) -> None:
        """``mkdir -p PATH`` then, with ``mode``, ``chmod MODE PATH``, over SFTP: no process is
        started on the server (a shell session forks two or three). Raises ``SshError``."""
        sftp = self._sftp()
        try:
            self._mkdirs(sftp, path.rstrip("/") or "/", 0)
            if mode is not None:
                sftp.chmod(path, mode)
        except OSError as exc:
            raise SshError(
                f"ssh {self.target}: cannot create directory {path}: {one_line(exc)}"
            ) from None
        log.debug("ssh %s: directory %s", self.target, path)

    def _mkdirs(self, sftp: paramiko.SFTPClient, path: str, depth: int) -> None:
        try:
            sftp.mkdir(path)
            return
        except FileNotFoundError:  # a parent is missing: make it, then this one
            parent = posixpath.dirname(path)
            if depth >= 64 or parent in ("", path):
                raise
            self._mkdirs(sftp, parent, depth + 1)
            try:
                sftp.mkdir(path)
                return
            except OSError:
                pass  # made meanwhile? checked below
        except PermissionError:
            raise
        except OSError:  # SFTP says only "failure" when it exists: checked below
            pass
        if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):
            raise NotADirectoryError(f"{path} exists and is not a directory")

    def _upload(self, tmp: str, data: bytes, mode: int = 0o600) -> None:
        """Write ``data`` to a new file ``tmp`` whose mode is set (``fsetstat``, no umask)
        before any byte lands: 0600 by default (the content may be secret), or the final
        mode when the file is renamed into place as it is (one round trip fewer)."""
        sftp = self._sftp()
        with sftp.open(tmp, "wb") as fh:
            fh.chmod(mode)
            fh.set_pipelined(True)
            fh.write(data)

    def _put_sftp(self, path: str, data: bytes, mode: int) -> None:
        directory, name = posixpath.split(path)
        tmp = posixpath.join(directory or ".", f".{name}.penguinctl-{secrets.token_hex(6)}")
        sftp = self._sftp()
        try:
            if mode & 0o7000:  # a write clears set-id bits: set the mode after the data
                self._upload(tmp, data)
                sftp.chmod(tmp, mode)
            else:  # the final mode at once: who may read the temp file may read the final one
                self._upload(tmp, data, mode)
            sftp.posix_rename(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                sftp.remove(tmp)
            raise

    def _put_sudo(self, path: str, data: bytes, mode: int) -> None:
        import paramiko

        tmp = f"/tmp/.penguinctl-upload-{secrets.token_hex(8)}"
        try:
            self._upload(tmp, data)
            script = ["sh", "-c", INSTALL_SCRIPT, "sh", tmp, path, format(mode, "o")]
            self.run(script, sudo=True, check=True)
        finally:
            sftp = self._open_sftp()
            if sftp is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    sftp.remove(tmp)
