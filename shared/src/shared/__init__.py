"""Common building blocks of the support platform.

Nothing here is specific to one service: message contracts, the broker factory with trace
propagation and the dead-letter route, settings, telemetry, the database pool and
migrations, and token authentication. Services import this package, never each other.
"""

__all__: list[str] = []
