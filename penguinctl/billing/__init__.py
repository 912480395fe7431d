"""Monthly billing: the plan catalog, metering from the state store, idempotent invoices, Stripe
sync, dunning and budget alerts (issue 9).

Modules: ``catalog`` (plans.yaml), ``periods`` (UTC months), ``history`` (plan assignments),
``metering`` (usage of a period), ``invoices`` (one invoice per tenant and period), ``render``
(HTML/CSV/JSON), ``stripe_sync``, ``dunning``, ``budgets``, ``limits`` (plan limits in specs).
Nothing here is imported by the CLI before a billing command runs.
"""
