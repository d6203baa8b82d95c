"""System of record behind the default tools: accounts, orders, tickets, refunds, resets.

Every effect table has a unique idempotency key, so an approved action executed twice has one
effect.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA IF NOT EXISTS tools;

    CREATE TABLE tools.accounts (
        tenant_id    text NOT NULL,
        user_id      text NOT NULL,
        display_name text NOT NULL,
        email        text,
        phone        text,
        status       text NOT NULL DEFAULT 'active',
        tier         text NOT NULL DEFAULT 'standard',
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, user_id)
    );
    CREATE TABLE tools.orders (
        tenant_id   text NOT NULL,
        order_id    text NOT NULL,
        customer_id text NOT NULL,
        status      text NOT NULL,
        total       numeric(12, 2) NOT NULL CHECK (total >= 0),
        currency    text NOT NULL,
        items       jsonb NOT NULL DEFAULT '[]'::jsonb,
        placed_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, order_id)
    );
    CREATE TABLE tools.tickets (
        ticket_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id       text NOT NULL,
        effect_id       text NOT NULL UNIQUE,
        idempotency_key text NOT NULL UNIQUE,
        request_id      text,
        customer_id     text NOT NULL,
        subject         text NOT NULL,
        description     text NOT NULL,
        order_id        text,
        priority        text NOT NULL,
        status          text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tools.refunds (
        refund_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id       text NOT NULL,
        effect_id       text NOT NULL UNIQUE,
        idempotency_key text NOT NULL UNIQUE,
        request_id      text,
        order_id        text NOT NULL,
        amount          numeric(12, 2) NOT NULL CHECK (amount > 0),
        currency        text NOT NULL,
        reason          text NOT NULL,
        status          text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tools.password_resets (
        reset_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id       text NOT NULL,
        effect_id       text NOT NULL UNIQUE,
        idempotency_key text NOT NULL UNIQUE,
        request_id      text,
        user_id         text NOT NULL,
        reason          text NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE tools.escalations (
        escalation_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant_id       text NOT NULL,
        effect_id       text NOT NULL UNIQUE,
        idempotency_key text NOT NULL UNIQUE,
        request_id      text,
        reason          text NOT NULL,
        order_id        text,
        created_at      timestamptz NOT NULL DEFAULT now()
    );
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA tools CASCADE;")
