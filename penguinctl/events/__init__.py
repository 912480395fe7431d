"""Events: the transactional outbox, the catalogue of event types and reading them back."""
