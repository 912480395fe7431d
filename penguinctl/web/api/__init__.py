"""The REST API under ``/api/v1`` (a FastAPI sub-application of the control plane's app):
its own OpenAPI 3.1 document (``/api/v1/openapi.json``) and docs page (``/api/v1/docs``),
problem documents for every error, API-key authentication, per-key rate limits.

Handlers are thin: they authenticate (``penguinctl.identity.dependency``), check the permission
matrix, and call the service layer (``penguinctl.services``) that the CLI calls too."""
