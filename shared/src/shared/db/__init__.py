"""PostgreSQL: connection pool and versioned migrations (Alembic)."""

from .pool import open_pool

__all__ = ["open_pool"]
