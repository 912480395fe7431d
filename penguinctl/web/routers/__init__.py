"""One router per area. Order matters in ``app.create_app``: the unsubscribe fallback (any
path whose last segment is a token) is mounted last."""
