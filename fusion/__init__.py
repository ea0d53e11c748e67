"""Fusion Stage Hub: the domain. Imports neither Flask nor Celery's app, nor `api`/`workers`."""
