"""Demo records in the tools' system of record (orders, accounts) for `make up` and tests."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["seed_demo_data"]

ACCOUNTS = [
    (
        "harborpine",
        "casey.customer",
        "Casey Rivers",
        "casey@example.com",
        "+44 20 7946 0011",
        "trailhead",
    ),
    ("harborpine", "casey", "Casey Test", "casey.test@example.com", None, "standard"),
    ("harborpine", "sam.customer", "Sam Okafor", "sam@example.com", None, "standard"),
    ("tidewell", "tara.customer", "Tara Lind", "tara@example.net", "+31 20 555 0101", "standard"),
]

ORDERS = [
    (
        "harborpine",
        "HP-10023",
        "casey.customer",
        "delivered",
        "89.90",
        "EUR",
        [{"sku": "STOVE-2", "name": "Pinecone 2-burner stove"}],
    ),
    (
        "harborpine",
        "HP-10024",
        "casey.customer",
        "shipped",
        "649.00",
        "EUR",
        [{"sku": "RIDGE-3", "name": "Ridgeline 3 tent"}],
    ),
    (
        "harborpine",
        "HP-10031",
        "sam.customer",
        "processing",
        "2450.00",
        "EUR",
        [{"sku": "EXPED-KIT", "name": "Expedition kit"}],
    ),
    (
        "harborpine",
        "HP-10040",
        "casey",
        "delivered",
        "120.00",
        "EUR",
        [{"sku": "JKT-M", "name": "Drift jacket M"}],
    ),
    (
        "tidewell",
        "TW-20001",
        "tara.customer",
        "active",
        "39.00",
        "EUR",
        [{"sku": "FIBRE-500", "name": "Fibre 500 monthly"}],
    ),
]


def seed_demo_data(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        for tenant, user, name, email, phone, tier in ACCOUNTS:
            conn.execute(
                "INSERT INTO tools.accounts (tenant_id, user_id, display_name, email, phone, tier)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant, user, name, email, phone, tier),
            )
        for tenant, order, customer, status, total, currency, items in ORDERS:
            conn.execute(
                "INSERT INTO tools.orders"
                " (tenant_id, order_id, customer_id, status, total, currency, items)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (tenant, order, customer, status, total, currency, Jsonb(items)),
            )
