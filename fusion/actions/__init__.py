"""What a person does through the API or the console, audited in the same transaction.

Each module wraps one domain's unaudited primitives (``fusion.jobs.service``,
``fusion.stores.service``) with the caller's own role check and the audit entry, and
orchestrates what the change brings along in other domains (a store's webhook subscription,
its stock rules pushed, the listings a disconnect leaves). It sits above every domain it
orchestrates (the layers contract in pyproject.toml), so the API and the console call one
function and the domains below never import it.
"""
