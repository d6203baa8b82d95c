"""Agent runtime state: per-tenant token buckets for tool-call rate limits.

One row per (tenant, bucket). Every agent replica takes tokens with a single
``INSERT ... ON CONFLICT DO UPDATE`` on the same row, so the row lock serialises replicas and
the limit holds across all of them without a coordinator.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA IF NOT EXISTS agent;

    CREATE TABLE agent.rate_buckets (
        tenant_id  text NOT NULL,
        bucket     text NOT NULL,
        tokens     double precision NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (tenant_id, bucket)
    );
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA agent CASCADE;")
