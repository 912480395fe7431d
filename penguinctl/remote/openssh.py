"""A private client config for the system ``ssh``, so ``server ssh`` takes the same route, keys
and pinned host keys as penguinctl's own connections.

``client_config(route, key_of, pinned_of)`` is a context manager: it makes a temporary 0700
directory holding one ``ssh_config`` with a ``Host penguinctl-hop-N`` block per hop (0 is the
target, 1 the jump host in front of it, ...), each with its address, port, user, identity and
``ProxyJump`` to the next, a ``known_hosts`` holding only the pinned keys (under
``HostKeyAlias``), and the identity files (0600) of the hops penguinctl holds a key for; it
yields ``(config_path, "penguinctl-hop-0")`` and removes the directory on exit, whatever happens.

Run ``ssh -F CONFIG penguinctl-hop-0``: ``-F`` makes ssh read only this file (not the operator's
config, already applied when the route was resolved), and ssh passes it on to the ``ssh -W`` it
starts for each ``ProxyJump``, so every hop is checked against its pin
(``StrictHostKeyChecking yes``). A jump host penguinctl holds no key for keeps the operator's
``IdentityFile`` (and the agent / default keys, as ``ssh`` would use them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from penguinctl.remote.hostkeys import PinnedKey
    from penguinctl.remote.ssh import SshConnection

ALIAS = "penguinctl-hop-{}"


def _value(text: str) -> str:
    """A config value: ``%`` escaped (ssh expands tokens in paths), quoted when it has spaces."""
    text = str(text).replace("%", "%%")
    if any(c in text for c in '"\n\r'):
        raise ValueError(f"cannot write {text!r} into an ssh config")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def algorithms(key_type: str) -> str:
    """``HostKeyAlgorithms`` accepting exactly the pinned key's type."""
    return "rsa-sha2-512,rsa-sha2-256" if key_type == "ssh-rsa" else key_type


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")


def blocks(
    route: list[SshConnection],
    pinned_of: Callable[[SshConnection], PinnedKey],
    identity_of: Callable[[int, SshConnection], str | None],
    known_hosts: Path,
) -> str:
    """The config text for ``route`` (target first, then each jump host nearest first)."""
    out: list[str] = []
    for i, hop in enumerate(route):
        key_type, _ = pinned_of(hop)
        opts: list[tuple[str, str]] = [
            ("HostName", hop.host),
            ("Port", str(hop.port)),
            ("User", hop.user),
            ("HostKeyAlias", ALIAS.format(i)),
            ("UserKnownHostsFile", str(known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"),
            ("StrictHostKeyChecking", "yes"),
            ("HostKeyAlgorithms", algorithms(key_type)),
            ("UpdateHostKeys", "no"),
            ("PasswordAuthentication", "no"),
            ("KbdInteractiveAuthentication", "no"),
            ("CheckHostIP", "no"),
        ]
        identity = identity_of(i, hop)
        if identity is not None:
            opts += [("IdentityFile", identity), ("IdentitiesOnly", "yes")]
            opts += [("IdentityAgent", "none")]
        else:
            opts += [("IdentityFile", f) for f in hop.identity_files()]
            if hop.identities_only:
                opts.append(("IdentitiesOnly", "yes"))
        if i + 1 < len(route):
            opts.append(("ProxyJump", ALIAS.format(i + 1)))
        out.append(f"Host {ALIAS.format(i)}\n" + "".join(f"  {k} {_value(v)}\n" for k, v in opts))
    return "\n".join(out)


@contextlib.contextmanager
def client_config(
    route: list[SshConnection],
    key_of: Callable[[SshConnection], str | None],
    pinned_of: Callable[[SshConnection], PinnedKey],
) -> Iterator[tuple[Path, str]]:
    """See the module docstring. ``key_of(hop)`` is the private key text of a hop penguinctl
    holds a key for (None: the operator's identity); ``pinned_of(hop)`` its pinned key."""
    directory = Path(tempfile.mkdtemp(prefix="penguinctl-ssh-"))
    try:
        known = directory / "known_hosts"
        known.write_text(
            "".join(f"{ALIAS.format(i)} {' '.join(pinned_of(h))}\n" for i, h in enumerate(route)),
            encoding="ascii",
        )

        def identity_of(i: int, hop: SshConnection) -> str | None:
            key = key_of(hop)
            if key is None:
                return None
            path = directory / f"identity-{i}"
            _write_private(path, key)
            return str(path)

        config = directory / "ssh_config"
        text = blocks(route, pinned_of, identity_of, known)
        _write_private(config, text)
        yield config, ALIAS.format(0)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
