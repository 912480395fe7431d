"""`campaign resolve --auto`: settle ambiguous sends by asking the sending MTA
(penguinctl.campaigns.settle)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def resolve_auto(app: Any, find: Any, name: str, tenant: str | None, grace: float) -> None:
    from penguinctl.campaigns.settle import settle_campaign
    from penguinctl.errors import PartialApply
    from penguinctl.state.db import session_scope
    from penguinctl.state.models import utcnow

    with session_scope(app.db) as session:
        campaign = find(session, name, tenant)
        campaign_id = campaign.id
    report = settle_campaign(
        app, campaign_id, now=utcnow(), actor=app.actor(), grace=timedelta(seconds=grace)
    )
    data = report.to_json()

    def text(console: Any) -> None:
        if not (report.sent or report.unsent or report.ambiguous):
            console.print(f"campaign {report.campaign}: no ambiguous sends")
            return
        console.print(
            f"campaign {report.campaign}: {len(report.sent)} settled as sent (the leads move "
            f"on), {len(report.unsent)} as unsent (sent again by the next worker run), "
            f"{len(report.ambiguous)} still ambiguous"
        )
        for item in report.ambiguous[:50]:
            console.print(f"  send {item['send_id']} ({item['mailbox']}): {item['reason']}")

    app.emit(data, text)
    if report.ambiguous:
        raise PartialApply(
            f"{len(report.ambiguous)} send(s) of {report.campaign} still ambiguous",
            hint="see the reasons above; run again later or settle them by hand "
            "(`campaign resolve CAMPAIGN SEND_ID --as sent|unsent`)",
        )
