"""The control plane's HTTP app (FastAPI on uvicorn): ``create_app`` builds it, ``server``
hosts it with timeouts and limits. Routers: health, metrics, unsubscribe, hooks; the REST API
(``/api/v1``) and the dashboard get their own routers here later."""
