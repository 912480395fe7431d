"""``campaign-settle``: the tenant's ambiguous sends settled by asking their MTAs, as
``penguinctl campaign resolve --auto`` does for one campaign (penguinctl.campaigns.settle).
A send the MTA cannot tell about stays ambiguous; the run is ``ok`` and lists it with why."""

from __future__ import annotations

from typing import Any

MAX_LISTED = 200


def run(ctx: Any) -> dict[str, Any]:
    from penguinctl.campaigns.settle import campaigns_with_ambiguous, settle_campaign

    summary: dict[str, Any] = {"campaigns": 0, "sent": 0, "unsent": 0, "ambiguous": 0}
    listed: list[dict[str, Any]] = []
    for campaign_id in campaigns_with_ambiguous(ctx.app.db, ctx.tenant):  # the tenant wall
        if ctx.cancelled:
            break
        report = settle_campaign(ctx.app, campaign_id, now=ctx.now(), actor=ctx.actor)
        summary["campaigns"] += 1
        summary["sent"] += len(report.sent)
        summary["unsent"] += len(report.unsent)
        summary["ambiguous"] += len(report.ambiguous)
        for item in report.ambiguous:
            if len(listed) < MAX_LISTED:
                listed.append({"campaign": report.campaign, **item})
    summary["still_ambiguous"] = listed
    return summary
