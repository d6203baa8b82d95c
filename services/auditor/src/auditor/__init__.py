"""Auditor: the append-only, hash-chained record of every step of every saga."""
