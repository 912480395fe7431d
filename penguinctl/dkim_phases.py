"""The phases of a DKIM key (product contract, section 4) and what each one publishes.

``generated -> published -> active -> retiring -> revoked -> removed``

- generated: the key pair is in the secrets backend; its TXT record is being published.
- published: the zone's authoritative servers answer the new record (checked, not assumed).
- active: the mail server signs with this key. Exactly one key of a domain is active.
- retiring: no longer signing, still published so mail in flight still verifies.
- revoked: published with an empty ``p=`` (RFC 6376 3.6.1): verifiers treat the key as revoked.
- removed: the record is deleted and the private key destroyed (the resource is gone).

A domain's first key starts active (nothing signs before it). Phase and the time it was entered
(``phase_since``, ISO 8601 UTC) are outputs of the ``dkim`` resource: plans never change them,
only ``dkim rotate`` does.
"""

from __future__ import annotations

GENERATED = "generated"
PUBLISHED = "published"
ACTIVE = "active"
RETIRING = "retiring"
REVOKED = "revoked"
REMOVED = "removed"
PHASES = (GENERATED, PUBLISHED, ACTIVE, RETIRING, REVOKED, REMOVED)
# phases whose key is published in DNS (a revoked one is published with an empty p=)
PUBLISHED_PHASES = frozenset({GENERATED, PUBLISHED, ACTIVE, RETIRING})
DKIM_OUTPUTS = frozenset({"public_key", "phase", "phase_since"})
