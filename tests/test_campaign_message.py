"""Composed messages, parsed back with the email package."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest

from penguinctl.campaigns.message import (
    InvalidToken,
    choose_variant,
    compose,
    message_id_for,
    unsubscribe_secret,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from penguinctl.campaigns.models import Campaign, Lead
from penguinctl.campaigns.spec import CampaignSpec
from penguinctl.campaigns.templates import TemplateError

SECRET = b"k" * 32
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def make(steps=None, **extra):
    spec = CampaignSpec.model_validate(
        {
            "senders": ["john@acme-mail.example"],
            "unsubscribe": {"url": "https://track.acme-mail.example/u/{token}"},
            "steps": steps
            or [
                {
                    "subject": "{Quick|Short} question, {{ first_name | default('there') }}",
                    "body": "Hi {{ first_name | default('there') }},\n" + "long " * 400 + "\n",
                    "html": "<p>Hi {{ company }}</p>",
                    "variants": [{"name": "B", "weight": 50, "subject": "Idea for {{ company }}"}],
                },
                {"delay": "3d", "body": "Bump, {{ first_name }}."},
                {"delay": "3d", "subject": "Last one", "body": "Bye."},
            ],
            **extra,
        }
    )
    campaign = Campaign(
        id=3, tenant="acme", name="q4", spec=spec.model_dump(mode="json"), spec_hash="h"
    )
    return campaign, spec


def lead(i=7, **kw):
    base = {"first_name": "Ann", "last_name": "Lee", "company": "Zoë & <Co>"}
    base.update(kw)
    return Lead(id=i, campaign_id=3, email=f"ann{i}@example.com", fields={}, **base)


def parse(composed):
    return email.message_from_bytes(composed.message.as_bytes(), policy=email.policy.default)


def test_first_step_headers_and_mime():
    campaign, spec = make()
    c = compose(
        campaign,
        spec,
        lead(),
        0,
        "john@acme-mail.example",
        "John Smïth",
        unsubscribe_secret=SECRET,
        previous_message_ids=[],
        now=NOW,
    )
    msg = parse(c)
    assert msg["From"].addresses[0].display_name == "John Smïth"
    assert msg["From"].addresses[0].addr_spec == "john@acme-mail.example"
    assert "=?utf-8?" in c.message.as_bytes().decode().split("\r\n")[0]  # encoded display name
    assert msg["To"].addresses[0].addr_spec == "ann7@example.com"
    assert msg["Message-ID"] == c.message_id
    assert c.message_id.startswith("<pc.") and c.message_id.endswith("@acme-mail.example>")
    assert msg["Date"].datetime == NOW
    assert "In-Reply-To" not in msg and "References" not in msg
    url = str(msg["List-Unsubscribe"]).strip()  # folded: the URL is longer than 78 chars
    assert url.startswith("<https://track.acme-mail.example/u/1.3.7.") and url.endswith(">")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert verify_unsubscribe_token(url[1:-1].rsplit("/", 1)[1], SECRET) == (3, 7)
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text.get_content().startswith("Hi Ann,")
    assert html.get_content().strip() == "<p>Hi Zoë &amp; &lt;Co&gt;</p>"
    raw = c.message.as_bytes()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert c.variant in ("A", "B")
    assert c.subject == str(msg["Subject"])
    if c.variant == "B":
        assert c.subject == "Idea for Zoë & <Co>"
    else:
        assert c.subject in ("Quick question, Ann", "Short question, Ann")
    # no tracking
    assert "<img" not in html.get_content()


def test_follow_ups_thread_and_reuse_subject():
    campaign, spec = make()
    first = compose(
        campaign,
        spec,
        lead(),
        0,
        "john@acme-mail.example",
        None,
        unsubscribe_secret=SECRET,
        previous_message_ids=[],
        now=NOW,
    )
    second = compose(
        campaign,
        spec,
        lead(),
        1,
        "sara@other.example",
        None,
        unsubscribe_secret=SECRET,
        previous_message_ids=[first.message_id],
        now=NOW,
    )
    third = compose(
        campaign,
        spec,
        lead(),
        2,
        "john@acme-mail.example",
        None,
        unsubscribe_secret=SECRET,
        previous_message_ids=[first.message_id, second.message_id],
        now=NOW,
    )
    m2, m3 = parse(second), parse(third)
    assert m2["In-Reply-To"] == first.message_id
    assert m2["References"] == first.message_id
    assert m2["Subject"] == "Re: " + first.subject
    assert second.message_id.endswith("@other.example>")
    assert m3["In-Reply-To"] == second.message_id
    assert m3["References"].split() == [first.message_id, second.message_id]
    assert m3["Subject"] == "Last one"
    assert m2.get_content_type() == "text/plain"
    assert m2["From"].addresses[0].display_name == ""


def test_deterministic_ids_and_variants():
    campaign, spec = make()
    ids = {message_id_for(campaign, lead(i), s, "a.example") for i in range(50) for s in range(3)}
    assert len(ids) == 150
    assert message_id_for(campaign, lead(1), 0, "A.Example") == message_id_for(
        campaign, lead(1), 0, "a.example"
    )
    a = compose(
        campaign,
        spec,
        lead(),
        0,
        "john@acme-mail.example",
        "J",
        unsubscribe_secret=SECRET,
        previous_message_ids=[],
        now=NOW,
    )
    b = compose(
        campaign,
        spec,
        lead(),
        0,
        "john@acme-mail.example",
        "J",
        unsubscribe_secret=SECRET,
        previous_message_ids=[],
        now=NOW,
    )
    assert a.message.as_bytes() == b.message.as_bytes()
    variants = [choose_variant(campaign, lead(i), 0, spec.steps[0]) for i in range(2000)]
    share = variants.count("B") / len(variants)
    assert 0.44 < share < 0.56


def test_weights_zero_and_full():
    steps = [{"subject": "s", "body": "b", "variants": [{"name": "B", "weight": 100, "body": "x"}]}]
    campaign, spec = make(steps=steps)
    assert {choose_variant(campaign, lead(i), 0, spec.steps[0]) for i in range(50)} == {"B"}


def test_missing_variable_names_lead_and_step():
    campaign, spec = make()
    with pytest.raises(TemplateError) as info:
        compose(
            campaign,
            spec,
            lead(first_name=None),
            1,
            "john@acme-mail.example",
            None,
            unsubscribe_secret=SECRET,
            previous_message_ids=["<x@y>"],
            now=NOW,
        )
    message = str(info.value)
    assert "lead 7" in message and "step 2" in message and "'first_name'" in message
    assert info.value.variable == "first_name"


def test_tokens_are_signed():
    token = unsubscribe_token(SECRET, 3, 7)
    assert verify_unsubscribe_token(token, SECRET) == (3, 7)
    forged = token.replace("1.3.7.", "1.3.8.")
    for bad in (forged, token[:-1] + ("A" if token[-1] != "A" else "B"), "", "1.3.7", "x" * 40):
        with pytest.raises(InvalidToken):
            verify_unsubscribe_token(bad, SECRET)
    with pytest.raises(InvalidToken):
        verify_unsubscribe_token(token, b"other" * 8)


def test_unsubscribe_secret_created_once(tmp_path):
    from tests.campaignkit import keystore

    backend = keystore(tmp_path)
    first = unsubscribe_secret(backend)
    assert len(first) >= 32
    assert unsubscribe_secret(backend) == first
