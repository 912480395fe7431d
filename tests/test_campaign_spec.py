"""Campaign spec: the product example loads; every mistake is one located issue."""

from __future__ import annotations

import textwrap

import pytest

from penguinctl.campaigns.spec import (
    CampaignSpec,
    load_campaign_documents,
    load_campaign_file,
    spec_hash,
    spec_of,
)
from penguinctl.errors import SpecError

EXAMPLE = """\
apiVersion: penguinctl/v1
kind: Campaign
metadata: {name: q4-outreach, tenant: acme}
spec:
  senders: [john@acme-mail.example]
  schedule:
    {timezone: lead, fallback_timezone: America/New_York, days: [mon, tue, wed, thu, fri],
     hours: "09:00-17:00"}
  limits: {per_mailbox_daily: 40, min_gap: 120s}
  stop_on: [reply, bounce, unsubscribe]
  unsubscribe: {url: "https://track.acme-mail.example/u/{token}"}
  steps:
    - subject: "{Quick|Short} question, {{ first_name | default('there') }}"
      body: |
        Hi {{ first_name | default("there") }}, ...
      variants: [{name: B, weight: 50, subject: "Idea for {{ company }}"}]
    - delay: 3d
      body: |
        Just bumping this up, {{ first_name | default("there") }}.
"""


def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors(tmp_path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_campaign_file(path)
    return [str(i) for i in info.value.issues]


def test_product_example_loads(tmp_path):
    doc = load_campaign_file(write(tmp_path, EXAMPLE))
    assert (doc.tenant, doc.name) == ("acme", "q4-outreach")
    spec = doc.spec
    assert spec.schedule.days == ["mon", "tue", "wed", "thu", "fri"]
    assert spec.limits.min_gap.total_seconds() == 120
    assert spec.steps[0].weighted() == [("A", 50), ("B", 50)]
    assert spec.steps[1].delay.total_seconds() == 3 * 86400
    assert spec.tracking.opens is False and spec.tracking.clicks is False
    assert spec.bounce_pause_fraction == 0.05
    assert spec.required_variables() == {"company"}
    # stored form round-trips and hashes stably
    again = CampaignSpec.model_validate(doc.stored)
    assert again == spec
    assert spec_hash(doc.stored) == doc.spec_hash

    class Row:
        spec = doc.stored
        spec_hash = doc.spec_hash

    assert spec_of(Row()) == spec


def replace(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "where", "needle"),
    [
        ("min_gap: 120s", "min_gap: 2 minutes", ":9:", "duration"),
        ("per_mailbox_daily: 40", "per_mailbox_daily: 0", ":9:", "greater than or equal to 1"),
        ('hours: "09:00-17:00"', 'hours: "17:00-09:00"', ":6:", "end must be after"),
        ("fallback_timezone: America/New_York", "fallback_timezone: Mars/Base", ":7:", "Mars/Base"),
        ("days: [mon, tue", "days: [mon, mon", ":7:", "twice"),
        (
            "https://track.acme-mail.example/u/{token}",
            "http://x.example/u/{token}",
            ":11:",
            "https",
        ),
        ("/u/{token}", "/u/", ":11:", "{token}"),
        ("stop_on: [reply, bounce, unsubscribe]", "stop_on: [reply]", ":10:", "unsubscribe"),
        ("senders: [john@acme-mail.example]", "senders: [john]", ":5:", "e-mail address"),
        ("limits:", "limitz:", ":9:", "did you mean 'limits'"),
        ("weight: 50", "weight: 70, wieght: 1", ":16:", "unknown field 'wieght'"),
        ("{name: B, weight: 50,", "{name: A, weight: 50,", ":16:", "'A' is the step itself"),
        ("weight: 50", "weight: 101", ":16:", "less than or equal to 100"),
        ("    - delay: 3d\n", "    - \n", ":18:", "needs a delay"),
        ("{Quick|Short}", "{Quick", ":13:", "unclosed '{'"),
        ("{Quick|Short}", "{Quick}", ":13:", "not spintax"),
        ("Idea for {{ company }}", "Idea for {{ company.__class__ }}", ":16:", "'__class__'"),
        ("Idea for {{ company }}", "Idea for {{ industry }}", ":16:", "'industry' has no default"),
        ("Idea for {{ company }}", "Idea {% if %}", ":16:", "syntax error"),
    ],
)
def test_mistakes_are_located(tmp_path, old, new, where, needle):
    found = errors(tmp_path, replace(old, new))
    assert any(where in e and needle in e for e in found), found
    assert all(e.startswith(str(tmp_path)) for e in found)


def test_declared_field_may_be_used_without_default(tmp_path):
    text = replace("Idea for {{ company }}", "Idea for {{ industry }}").replace(
        "  steps:", "  fields: [industry]\n  steps:"
    )
    doc = load_campaign_file(write(tmp_path, text))
    assert doc.spec.required_variables() == {"industry"}


def test_first_step_needs_subject_and_no_delay(tmp_path):
    text = replace(
        "    - subject: \"{Quick|Short} question, {{ first_name | default('there') }}\"\n",
        "    - delay: 1d\n",
    ).replace('variants: [{name: B, weight: 50, subject: "Idea for {{ company }}"}]', "")
    found = errors(tmp_path, text)
    assert any("needs a subject" in e for e in found)
    assert any("steps[0].delay" in e for e in found)


def test_tracking_refused_and_warmup_checked(tmp_path):
    found = errors(tmp_path, EXAMPLE + "  tracking: {opens: true}\n  warmup: {preset: custom}\n")
    assert any("tracking" in e and "not supported" in e for e in found)
    assert any("needs a schedule" in e for e in found)
    ok = load_campaign_file(
        write(
            tmp_path,
            EXAMPLE + "  warmup: {preset: custom, schedule: [{days: 7, start: 5, end: 20}]}\n"
            "  bounce_pause_threshold: 2.5%\n",
        )
    )
    assert ok.spec.warmup.schedule[0].end == 20
    assert ok.spec.bounce_pause_threshold == 2.5


def test_other_kinds_and_duplicates(tmp_path):
    text = (
        EXAMPLE
        + "---\n"
        + EXAMPLE
        + "---\napiVersion: penguinctl/v1\nkind: Tenant\nmetadata: {name: acme}\n"
    )
    found = errors(tmp_path, text)
    assert any("defined twice" in e for e in found)
    assert any("a Tenant document" in e and "penguinctl apply" in e for e in found)


def test_several_campaigns_in_one_file(tmp_path):
    text = EXAMPLE + "---\n" + EXAMPLE.replace("q4-outreach", "q1-outreach")
    docs = load_campaign_documents(write(tmp_path, text))
    assert [d.name for d in docs] == ["q4-outreach", "q1-outreach"]
    with pytest.raises(SpecError, match="expected one Campaign"):
        load_campaign_file(tmp_path / "c.yaml")


def test_hostile_yaml_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_campaign_file(tmp_path / "missing.yaml")
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
    )
    with pytest.raises(SpecError):
        load_campaign_file(write(tmp_path, bomb, "bomb.yaml"))


def test_indented_body_error_names_template_line(tmp_path):
    body = textwrap.indent("Hi\n{{ x.__init__ }}\n", "        ")
    text = replace('        Just bumping this up, {{ first_name | default("there") }}.\n', body)
    found = errors(tmp_path, text)
    assert any("template line 2" in e and "'__init__'" in e for e in found), found
