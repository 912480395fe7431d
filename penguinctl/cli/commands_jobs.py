"""`jobs list / history / run / pause / resume`: the scheduled jobs and their recorded runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from penguinctl.cli.conventions import examples

jobs_app = typer.Typer(
    help="Scheduled jobs (run by `penguinctl serve`) and their recorded runs.",
    no_args_is_help=True,
    rich_markup_mode=None,
    epilog=examples(
        "penguinctl jobs list",
        "penguinctl jobs history check --tenant acme",
        "penguinctl jobs run drift --tenant acme",
        "penguinctl jobs pause billing-sync",
    ),
)

JobArg = Annotated[str, typer.Argument(metavar="JOB", help="A job name (`jobs list` shows them).")]
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", metavar="TENANT", help="Only this tenant.")
]


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


def _iso(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


def _emit_jobs(app, data: dict) -> None:
    leader = data["leader"]

    def text(console) -> None:
        from penguinctl.cli.render import table

        table(
            console,
            ["job", "tenant", "schedule", "last run", "status", "next run"],
            [
                [
                    r["job"] + (f" ({r['target']})" if r["target"] else ""),
                    r["tenant"] or "(platform)",
                    f"{r['schedule']} [{r['source']}]",
                    _iso((r["last_run"] or {}).get("started")),
                    (r["last_run"] or {}).get("status", "-"),
                    "paused"
                    if r["paused"]
                    else ("off" if not r["active"] else _iso(r["next_run"])),
                ]
                for r in data["jobs"]
            ],
        )
        if leader:
            console.print(f"scheduler leader: {leader['holder']} (token {leader['token']})")
        else:
            console.print("no scheduler has run yet (`penguinctl serve`)")

    app.emit(data, text)


@jobs_app.command("list")
def list_jobs(ctx: typer.Context) -> None:
    """Every job series: schedule (and where it comes from), last run and its status, next run.
    Series appear once `serve` has scheduled them; until then the defaults are shown."""
    from penguinctl.control import series
    from penguinctl.control.config import load_schedules
    from penguinctl.control.leader import current
    from penguinctl.spec.cron import next_after

    app = ctx.obj
    from penguinctl.cli import client_mode

    api = client_mode.client(app)
    if api is not None:
        return _emit_jobs(app, {"leader": None, "jobs": list(api.items("/jobs"))})
    config = load_schedules(app.env)
    rows = series.listing(app.read_db)
    known = {(r["job"], r["tenant"], r["target"]) for r in rows}
    now = app.now()
    for w in series.wanted_series(app.read_db, config):
        if (w.job, w.tenant, w.target) not in known:
            rows.append(
                {
                    "job": w.job,
                    "tenant": w.tenant,
                    "target": w.target,
                    "schedule": w.schedule,
                    "source": w.source,
                    "active": w.enabled,
                    "paused": False,
                    "next_run": next_after(w.schedule, now).isoformat() if w.enabled else None,
                    "failures": 0,
                    "last_run": None,
                    "scheduled": False,
                }
            )
    rows.sort(key=lambda r: (r["job"], r["tenant"], r["target"]))
    leader = current(app.read_db)
    data = {
        "leader": leader,
        "jobs": [
            {**r, "about": config.job(r["job"]).about} for r in rows if config.known(r["job"])
        ],
    }

    _emit_jobs(app, data)


@jobs_app.command("history")
def history(
    ctx: typer.Context,
    job: Annotated[str | None, typer.Argument(metavar="JOB", help="Only this job.")] = None,
    tenant: TenantOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="N", min=1, max=10000, help="Newest N runs.")
    ] = 50,
) -> None:
    """Recorded runs, newest first: when scheduled, started and finished, status, error."""
    from penguinctl.control import runs
    from penguinctl.control.config import load_schedules

    app = ctx.obj
    from penguinctl.cli import client_mode

    api = client_mode.client(app)
    if api is not None:
        items = []
        for run in api.items("/jobs/runs", job=job, tenant=tenant, limit=min(limit, 500)):
            items.append(run)
            if len(items) >= limit:
                break
    else:
        if job is not None:
            load_schedules(app.env).job(job)
        items = runs.history(app.read_db, job=job, tenant=tenant, limit=limit)

    def text(console) -> None:
        from rich.markup import escape

        from penguinctl.cli.render import table

        if not items:
            console.print("No runs recorded.")
            return
        table(
            console,
            ["id", "job", "tenant", "trigger", "scheduled for", "status", "took", "error"],
            [
                [
                    str(r["id"]),
                    r["job"] + (f" ({r['target']})" if r["target"] else ""),
                    r["tenant"] or "-",
                    r["trigger"],
                    _iso(r["scheduled_for"]),
                    r["status"],
                    f"{r['duration_seconds']:.1f}s" if r["duration_seconds"] is not None else "-",
                    escape((r["error"] or "")[:80]),
                ]
                for r in items
            ],
        )

    app.emit({"runs": items}, text)


def _targets(app: Any, job: Any, tenant: str | None) -> list[tuple[str, str]]:
    """(tenant, target) pairs a manual run covers."""
    from penguinctl.control import series, specs
    from penguinctl.control.config import load_schedules
    from penguinctl.errors import UsageError

    if job.scope == "platform":
        if tenant is not None:
            raise UsageError(f"job {job.name} runs for the whole platform: drop --tenant")
        return [("", "")]
    tenants = [tenant] if tenant is not None else specs.recorded_tenants(app.db)
    if not job.per_policy:
        return [(t, "") for t in tenants]
    wanted = series.wanted_series(app.db, load_schedules(app.env))
    return [(w.tenant, w.target) for w in wanted if w.job == job.name and w.tenant in tenants]


@jobs_app.command("run")
def run(ctx: typer.Context, job: JobArg, tenant: TenantOpt = None) -> None:
    """Run a job now, through the same path as the scheduler (recorded as a `manual` run; a
    series already running elsewhere is not started twice). Without --tenant a per-tenant job
    runs for every tenant with a recorded spec, one after the other."""
    from penguinctl.control import runs
    from penguinctl.control.config import load_schedules
    from penguinctl.errors import PartialApply, ProviderError

    app = ctx.obj
    config = load_schedules(app.env)
    the_job = config.job(job)
    owner = runs.process_id()
    beats = runs.Heartbeats(app.db).start()
    outcomes: list[dict[str, Any]] = []
    busy: list[str] = []
    try:
        for t, target in _targets(app, the_job, tenant):
            cfg = config.jobs.get(job)
            import time

            deadline = time.monotonic() + cfg.timeout.total_seconds() if cfg else None
            done = runs.execute(
                app,
                the_job,
                tenant=t,
                target=target,
                trigger="manual",
                scheduled_for=app.now(),
                clock=app.clock,
                config=config,
                owner=owner,
                deadline=deadline,
                heartbeats=beats,
            )
            if done is None:
                busy.append(t or "(platform)")
                continue
            outcomes.append(
                {
                    "tenant": t,
                    "target": target,
                    "run_id": done.run_id,
                    "status": done.status,
                    "error": done.error,
                    "summary": done.summary,
                }
            )
    finally:
        beats.stop()

    def text(console) -> None:
        from rich.markup import escape

        if not outcomes and not busy:
            console.print(f"Nothing to run: no tenant has a recorded spec for {job}.")
        style = {"ok": "green", "skipped": "yellow"}
        for o in outcomes:
            who = o["tenant"] or "(platform)"
            colour = style.get(o["status"], "red")
            line = f"[{colour}]{o['status']}[/] {job} {escape(who)} (run {o['run_id']})"
            console.print(line + (f": {escape(o['error'])}" if o["error"] else ""))
        for b in busy:
            console.print(f"[yellow]busy[/] {job} {escape(b)}: already running elsewhere")

    app.emit({"runs": outcomes, "busy": busy}, text)
    failed = [o for o in outcomes if o["status"] in ("failed", "timeout")]
    if busy and not outcomes:
        raise runs.busy_error(job, tenant or "")
    if failed:
        msg = f"{len(failed)} run(s) of {job} failed; first: {failed[0]['error']}"
        hint = "see `penguinctl jobs history`"
        if any(o["status"] == "ok" for o in outcomes):
            raise PartialApply(msg, hint=hint)
        raise ProviderError(msg, hint=hint)


def _pause(ctx: typer.Context, job: str, tenant: str | None, paused: bool) -> None:
    from penguinctl.control import series
    from penguinctl.control.config import load_schedules

    app = ctx.obj
    load_schedules(app.env).job(job)
    series.set_pause(app.db, job, tenant, paused_=paused, actor=app.actor(), now=app.now())
    verb = "paused" if paused else "resumed"
    scope = f"tenant {tenant}" if tenant else "every tenant"
    app.emit(
        {"job": job, "tenant": tenant, "paused": paused},
        lambda c: c.print(f"{verb} {job} for {scope}"),
    )


@jobs_app.command("pause")
def pause(ctx: typer.Context, job: JobArg, tenant: TenantOpt = None) -> None:
    """Stop scheduling JOB (for one tenant with --tenant). `jobs run` still runs it."""
    _pause(ctx, job, tenant, True)


@jobs_app.command("resume")
def resume(ctx: typer.Context, job: JobArg, tenant: TenantOpt = None) -> None:
    """Schedule JOB again (a job paused for every tenant is resumed for every tenant)."""
    _pause(ctx, job, tenant, False)
