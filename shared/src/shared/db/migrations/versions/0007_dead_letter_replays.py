"""Operations: which dead-lettered messages were replayed (``platform-dlq replay``).

A replay republishes a message from ``<topic>.dlq`` to its source topic once: the row, keyed
by where the message sits on the dead-letter topic, is written in the transaction that
commits after the publish is acknowledged, so replaying the same selection twice publishes
nothing the second time.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA IF NOT EXISTS ops;
    CREATE TABLE ops.dlq_replays (
        dlq_topic    text        NOT NULL,
        partition    integer     NOT NULL,
        "offset"     bigint      NOT NULL,
        -- With the offset: a topic recreated empty (a local broker restart) starts its
        -- offsets at 0 again, and its messages must not read as already replayed.
        timestamp_ms bigint      NOT NULL,
        source_topic text        NOT NULL,
        event_id     text,
        replayed_by  text        NOT NULL,
        replayed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (dlq_topic, partition, "offset", timestamp_ms)
    );
    """)


def downgrade() -> None:
    op.execute("DROP SCHEMA ops CASCADE;")
