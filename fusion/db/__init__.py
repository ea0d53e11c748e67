"""Database plumbing: the declarative base, engines and org-scoped sessions."""
