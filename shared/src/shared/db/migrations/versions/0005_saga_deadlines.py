"""Saga deadlines and idempotent attempts for gateway requests.

Every accepted request must reach an end: the gateway's deadline sweeper marks a request that
stalled ``timed_out`` and records where (``stalled_at``). The audit record of that timeout is
published after the status change commits; ``timeout_audited_at`` stays NULL until the broker
took it, so a sweep retries it after a broker outage instead of losing it.

An ``Idempotency-Key`` now names a series of attempts: ``attempt`` counts them (a retry after a
timeout starts the next one), ``message_sha256`` refuses the same key with another message, and
``published_at`` tells a request the broker accepted from one whose publish failed (a retry with
the key re-publishes that same attempt). ``publish_claimed_until`` is a short lease: the one
caller that holds it publishes, concurrent identical POSTs wait for it instead of publishing
twice, and a crash mid-publish only blocks a retry until the lease runs out.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE gateway.requests
        ADD COLUMN idempotency_key       text,
        ADD COLUMN message_sha256        text,
        ADD COLUMN attempt               integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
        ADD COLUMN published_at          timestamptz,
        ADD COLUMN publish_claimed_until timestamptz,
        ADD COLUMN stalled_at            text,
        ADD COLUMN timed_out_at          timestamptz,
        ADD COLUMN timeout_audited_at    timestamptz;

    -- Requests accepted before this revision were published right after their row was
    -- written (or the POST failed, which cannot be told apart now): count them as published so
    -- a retry does not publish them again. Only open rows matter, terminal ones are left alone.
    UPDATE gateway.requests SET published_at = created_at WHERE status = 'accepted';

    -- One row per attempt of a key; with the deterministic request id this makes concurrent
    -- identical POSTs create a single request.
    CREATE UNIQUE INDEX requests_idempotency_idx
        ON gateway.requests (tenant_id, user_id, idempotency_key, attempt)
        WHERE idempotency_key IS NOT NULL;
    -- What the deadline sweep scans: open requests only, oldest first.
    CREATE INDEX requests_open_idx ON gateway.requests (created_at)
        WHERE status IN ('accepted', 'retrieved', 'drafted', 'pending_approval', 'approved');
    -- Timeouts whose audit record the broker has not taken yet.
    CREATE INDEX requests_timeout_unaudited_idx ON gateway.requests (timed_out_at)
        WHERE status = 'timed_out' AND timeout_audited_at IS NULL;
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX gateway.requests_timeout_unaudited_idx;
    DROP INDEX gateway.requests_open_idx;
    DROP INDEX gateway.requests_idempotency_idx;
    ALTER TABLE gateway.requests
        DROP COLUMN timeout_audited_at,
        DROP COLUMN timed_out_at,
        DROP COLUMN stalled_at,
        DROP COLUMN publish_claimed_until,
        DROP COLUMN published_at,
        DROP COLUMN attempt,
        DROP COLUMN message_sha256,
        DROP COLUMN idempotency_key;
    """)
