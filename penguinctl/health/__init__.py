"""Health and reputation checks (``penguinctl check``): DNS, FCrDNS, SMTP/TLS, certificates,
DNSBL listings, MailU containers and disk over SSH, backup freshness; history, campaign pausing
and webhook notification."""
