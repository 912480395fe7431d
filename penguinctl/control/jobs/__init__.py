"""One module per scheduled job (see ``penguinctl.control.registry`` for the contract)."""
