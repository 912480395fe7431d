"""Disaster recovery: the secrets escrow (``escrow``), the operator's recovery key (``keys``),
``recover`` on a fresh machine, and ``server rebuild`` (``rebuild``)."""
