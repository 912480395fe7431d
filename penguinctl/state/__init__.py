"""The state store: what penguinctl created, apply runs, locks and the audit log."""
