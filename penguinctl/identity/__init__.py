"""Who calls the HTTP API: API keys (``tables``, ``keys``), roles and the permission matrix
(``permissions``), the authenticated ``Principal`` (``principal``) and the FastAPI dependency
(``dependency``). The CLI (``penguinctl apikeys``) and the API manage keys through ``keys``."""
