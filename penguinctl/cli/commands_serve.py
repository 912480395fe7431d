"""`serve`: the control plane in one foreground process (scheduler + HTTP app)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

Listen = Annotated[
    str,
    typer.Option(
        "--listen",
        metavar="HOST:PORT",
        help="Address of the HTTP app (REST API, dashboard, health, metrics, unsubscribe links, "
        "Stripe webhook); "
        "put it behind your HTTPS reverse proxy.",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    listen: Listen = "127.0.0.1:8080",
    with_worker: Annotated[
        bool,
        typer.Option("--with-worker", help="Also run the campaign sending worker in this process."),
    ] = False,
    no_scheduler: Annotated[
        bool,
        typer.Option("--no-scheduler", help="Serve HTTP only; never schedule jobs."),
    ] = False,
    wake: Annotated[
        float,
        typer.Option(
            "--wake",
            metavar="SECONDS",
            min=0.05,
            max=60,
            help="How often the scheduler looks at the clock (real seconds).",
        ),
    ] = 1.0,
) -> int:
    """Run the control plane in the foreground until SIGTERM / Ctrl-C: the job scheduler
    (leader-elected on PostgreSQL; one serve per SQLite state store), run heartbeats, the HTTP
    app and, with --with-worker, the campaign worker.

    Examples:
      penguinctl serve
      penguinctl serve --listen 0.0.0.0:8080 --with-worker
      PENGUINCTL_STATE=postgresql+psycopg://penguinctl@db/penguinctl penguinctl serve
    """
    return run_serve(
        ctx.obj, listen, with_worker=with_worker, scheduler=not no_scheduler, wake=wake
    )


def run_serve(app: Any, listen: str, *, with_worker: bool, scheduler: bool, wake: float) -> int:
    import logging
    import signal

    from penguinctl.control.config import load_schedules
    from penguinctl.control.plane import ControlPlane
    from penguinctl.web.app import create_app
    from penguinctl.web.dashboard.runner import ManualRuns
    from penguinctl.web.metrics import Metrics
    from penguinctl.web.server import listen_socket, make_server, parse_listen
    from penguinctl.web.state import WebState

    host, port = parse_listen(listen)
    config = load_schedules(app.env)
    clock = app.clock
    metrics = Metrics(app.db)
    plane = ControlPlane(
        app, clock=clock, config=config, metrics=metrics, with_worker=with_worker, wake=wake
    )
    if scheduler:
        plane.claim()  # a second serve on one SQLite file stops here (exit 7)
    sock = listen_socket(host, port, listen)
    bound = sock.getsockname()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    manual = ManualRuns(
        app, config=config, clock=clock, heartbeats=plane.heartbeats, owner=plane.owner
    )
    state = WebState(
        db=app.db,
        secrets=app.secrets,
        env=app.env,
        metrics=metrics,
        role=plane.role if scheduler else (lambda: "standby"),
        clock=clock,
        run_now=manual,
    )
    server = make_server(create_app(state), host, bound[1])
    # uvicorn re-raises the signal that stopped it once it has shut down: our handler makes
    # that a no-op, so the process exits 0 after a clean stop.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    logging.getLogger("penguinctl.serve").info(
        "serving on http://%s:%s/ (scheduler %s, worker %s)",
        bound[0],
        bound[1],
        "on" if scheduler else "off",
        "on" if with_worker else "off",
    )
    shown = "127.0.0.1" if bound[0] in ("0.0.0.0", "::") else bound[0]
    shown = f"[{shown}]" if ":" in shown else shown
    logging.getLogger("penguinctl.serve").info(
        "dashboard: http://%s:%s/dashboard/ (sign in with an API key: `penguinctl apikeys create`)",
        shown,
        bound[1],
    )
    from penguinctl.services.plans import Reaper

    reaper = Reaper(app.db, clock)  # apply jobs of a serve that died: failed, locks released
    reaper.start()
    plane.start(scheduler=scheduler)
    try:
        server.run(sockets=[sock])
    finally:
        _finish_applies(state)
        manual.stop()  # the dashboard's "run now" runs: asked to stop, 30 s to end
        reaper.stop()
        plane.stop()  # its scheduled runs likewise; what still runs is marked interrupted
        if state.read_pool is not None:
            state.read_pool.close()
        sock.close()
    return 0


APPLY_GRACE = 120.0  # seconds a clean stop waits for the API's apply jobs


class _StopWaiting(Exception):
    """A second SIGTERM or Ctrl-C while a clean stop waits for apply jobs."""


def _finish_applies(state: Any) -> None:
    """Let the API's apply jobs end before the process does (their heartbeats go on
    meanwhile, so no other serve reaps them); one still running after ``APPLY_GRACE``, or
    when a second signal says stop now, ends with the process, as after a crash."""
    import logging
    import signal
    import time

    log = logging.getLogger("penguinctl.serve")
    running = len(state.running_applies())
    if not running:
        return
    log.info(
        "waiting up to %.0f s for %d apply job(s) to finish (signal again to stop waiting)",
        APPLY_GRACE,
        running,
    )

    def stop_waiting(*_: Any) -> None:
        raise _StopWaiting

    previous = {sig: signal.signal(sig, stop_waiting) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        left = state.finish_applies(APPLY_GRACE, time.monotonic)
    except _StopWaiting:
        left = len(state.running_applies())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if left:
        log.warning(
            "%d apply job(s) still running at exit: their plans are failed and their locks "
            "released by the next serve's reaper; applying the spec again converges",
            left,
        )
