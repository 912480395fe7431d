"""``check``: the tenant's servers and domains checked as ``check`` checks them (DNS, FCrDNS,
TLS, block lists, MailU over SSH, backup freshness by the policy's schedule); a critical
failure pauses the tenant's campaigns sending through it."""

from __future__ import annotations

from typing import Any

from penguinctl.control.registry import JobFailed

STATUSES = ("ok", "warn", "fail", "error")


def run(ctx: Any) -> dict[str, Any]:
    from penguinctl.control.jobs import options
    from penguinctl.health import dnsbl
    from penguinctl.health.runner import Config, Targets, load_targets
    from penguinctl.health.service import backup_on_server, backup_schedules, check_and_record

    app, env, tenant = ctx.app, ctx.app.env, ctx.tenant
    every = load_targets(app, None)
    targets = Targets(  # the tenant wall: only its own servers and domains
        servers=[t for t in every.servers if t.tenant == tenant],
        domains=[d for d in every.domains if d[0] == tenant],
        rows=[r for r in every.rows if r.tenant in (tenant, "")],
    )
    if not targets.servers and not targets.domains:
        return {"targets": 0}
    res = options.resolver(env, app.settings.dns_resolvers)
    bl = options.servers(env, "PENGUINCTL_DNSBL_RESOLVER")
    from penguinctl.dns.query import Resolver

    ip_lists = options.words(env, "PENGUINCTL_DNSBL_IP_LISTS") or list(dnsbl.ip_lists(env))
    domain_lists = options.words(env, "PENGUINCTL_DNSBL_DOMAIN_LISTS") or list(
        dnsbl.domain_lists(env)
    )
    config = Config(
        resolver=res,
        dnsbl_resolver=Resolver(bl) if bl else res,
        nameservers=options.servers(env, "PENGUINCTL_NAMESERVER"),
        ip_lists=tuple(x for x in ip_lists if x != "none"),
        domain_lists=tuple(x for x in domain_lists if x != "none"),
        root=env.get("PENGUINCTL_MAILU_ROOT") or "/mailu",
        skip=frozenset(options.words(env, "PENGUINCTL_CHECK_SKIP")),
        now=ctx.clock.now,
        backup_schedules=backup_schedules(app, targets.servers),
        backup_on_server=backup_on_server(app, targets.servers),
        backup_grace=ctx.config.backup_freshness_grace,
    )
    done = check_and_record(app, targets, config, actor=ctx.actor, started=ctx.now(), tenant=tenant)
    summary = {
        "check_run": done.run_id,
        "targets": len(done.target_names),
        "counts": {s: sum(r.status == s for r in done.results) for s in STATUSES},
        "failures": [r.to_json() for r in done.failures][:50],
        "paused_campaigns": done.paused,
    }
    if done.failures:
        first = done.failures[0]
        raise JobFailed(
            f"{len(done.failures)} check(s) failed; first: {first.target} {first.check} "
            f"{first.subject}: {first.detail}",
            summary=summary,
        )
    return summary
