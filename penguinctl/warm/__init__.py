"""Warm start: read-only commands run in a process forked from one that has already imported
penguinctl, so they do not pay for the imports again.

A command such as `penguinctl get domains` does about 10 ms of real work (one query, one table)
after ~350 ms of imports: typer with pydantic, SQLAlchemy and the SQLModel tables, rich. The
design is Mercurial's `chg`, without a C client:

- ``client`` (the console script's first step, standard library only): for a read-only command
  (``READ_ONLY``) it connects to the warm server's socket and passes the command line, the
  environment, the working directory, the umask and its own standard input, output and error
  (as file descriptors, ``SCM_RIGHTS``). The server forks; the child runs the command exactly
  as the console script would, writing straight to the caller's terminal or pipe; the client
  forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to it and exits with its exit code.
- When no server answers, the client runs the command the ordinary way and starts a server
  in the background for the next one (detached: its own session, standard streams on
  /dev/null, a minimal environment).
- ``server``: imports the modules the read-only commands use (``PRELOAD``), then accepts
  connections on a Unix socket. It never opens the state store, a secret backend or a thread:
  the child forks from a process that has only imported code. It exits after
  ``PENGUINCTL_WARM_IDLE`` seconds without a request (900 by default), and when any file it
  imported from penguinctl, or any directory of its import path, changed since it started
  (an upgrade): it answers that request "stale" (the client runs the command itself) and
  leaves the socket to a fresh server.

Safety: the socket lives in a directory only its user can enter (``$XDG_RUNTIME_DIR/penguinctl``
or ``$TMPDIR/penguinctl-UID``, checked: owned by the user, mode 0700, not a symlink), and the
server serves a peer of its own user only (``SO_PEERCRED``). The socket's name is a digest of
the interpreter, its import path, penguinctl's version and the locale settings: another
installation or virtualenv gets its own server. Requests are bounded (1 MiB, 5 s to arrive).

``PENGUINCTL_WARM=0`` (or ``off``) turns it off; it is off by default when ``CI`` is set (a CI
job should not leave a process behind); ``PENGUINCTL_WARM=1`` turns it on there too.
"""
