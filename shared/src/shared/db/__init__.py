"""PostgreSQL: connection pool and versioned migrations (Alembic)."""

from .pool import Pool, open_pool

__all__ = ["Pool", "open_pool"]
