"""Backups: MailU servers with restic over SSH (``service``), the state store (``statestore``)."""
