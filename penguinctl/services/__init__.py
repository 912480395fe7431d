"""The service layer: what the CLI's commands and the HTTP API's handlers both call, one module
per resource. A service takes a ``ServiceContext`` (state store, secrets, environment, actor,
clock, settings) and plain arguments, returns plain data or domain objects, raises the
``penguinctl.errors`` classes, and never prints."""
