"""Remote execution over SSH: transport (``ssh``), host key pinning (``hostkeys``), parallel
fan-out (``fanout``). Imports paramiko, so the CLI imports this package only inside commands
that need it."""
