"""Plan limits in specs: a tenant's spec may not ask for more than its plan allows.

Run by ``spec/checks.py`` (so ``validate``, ``plan`` and ``apply`` all refuse it) as a spec
error, exit code 3: the spec, not the plan's safety, is what is wrong, and ``--force`` (the
override for unsafe plans, exit 4) must not let a tenant exceed what it pays for. The fix is in
the spec: remove domains or mailboxes, or move the tenant to a bigger plan.

Limits are a property of the plan, not of its price version (a grandfathered tenant keeps its
price, and the plan's limits still apply). Counted from the spec: domains (Domain documents of
the tenant) and mailboxes (their ``mailboxes`` entries). A plan name missing from the catalog
is an error too.
"""

from __future__ import annotations

import difflib

from penguinctl.errors import SpecIssue
from penguinctl.spec.documents import SpecSet


def plan_limit_issues(specs: SpecSet) -> list[SpecIssue]:
    if not specs.tenants:
        return []
    from penguinctl.billing.catalog import load_catalog

    catalog = load_catalog()
    issues: list[SpecIssue] = []
    for name, tenant in specs.tenants.items():
        plan_name = tenant.spec.plan
        where = tenant.location_of("spec", "plan")
        plan = catalog.plans.get(plan_name)
        if plan is None:
            close = difflib.get_close_matches(plan_name, list(catalog.plans), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "pick one of those"
            issues.append(SpecIssue(
                where,
                f"tenant {name}: plan '{plan_name}' is not in the plan catalog (plans: "
                f"{', '.join(sorted(catalog.plans))}); {hint}",
            ))  # fmt: skip
            continue
        domains = specs.domains_of(name)
        counts = {
            "domains": len(domains),
            "mailboxes": sum(len(d.spec.mailboxes) for d in domains),
        }
        for what, count in counts.items():
            allowed = getattr(plan.limits, what)
            if allowed is not None and count > allowed:
                issues.append(SpecIssue(
                    where,
                    f"tenant {name}: the spec has {count} {what}, but plan {plan_name} allows "
                    f"{allowed}; remove {count - allowed} or move the tenant to a bigger plan "
                    "(`penguinctl billing plans`)",
                ))  # fmt: skip
    return issues
