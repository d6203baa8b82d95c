"""Approval workflow: policy requirement, sign-offs, execution, transactional outbox.

- ``approvals.drafts`` gains the requirement the policy set at intake (how many approvals at
  which staff level), the decision, the idempotency key its action executes under, and the
  execution result.
- ``approvals.signoffs``: one row per person and draft (a person counts once).
- ``approvals.outbox``: events committed with the state change they announce; the relay
  publishes them and records where each landed.
- ``approvals.relay_checkpoints``: per topic partition, the offset below which every outbox
  event is known to be either marked published or absent; a relay that restarts reads the
  topic from there to find events it published but could not mark.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    ALTER TABLE approvals.drafts
        ADD COLUMN required_level     text NOT NULL DEFAULT 'L1'
            CHECK (required_level IN ('L1', 'L2', 'manager')),
        ADD COLUMN required_count     integer NOT NULL DEFAULT 1 CHECK (required_count >= 1),
        ADD COLUMN policy_amount_eur  numeric(14, 2),
        ADD COLUMN idempotency_key    text,
        ADD COLUMN decided_at         timestamptz,
        ADD COLUMN decision_reason    text NOT NULL DEFAULT '',
        ADD COLUMN execution          jsonb,
        ADD COLUMN execution_attempts integer NOT NULL DEFAULT 0,
        -- The intake's trace context: decisions and execution continue the saga's trace.
        ADD COLUMN trace_headers      jsonb NOT NULL DEFAULT '{}'::jsonb;
    UPDATE approvals.drafts SET idempotency_key = 'approval:' || draft_event_id::text;
    ALTER TABLE approvals.drafts
        ALTER COLUMN idempotency_key SET NOT NULL,
        ADD CONSTRAINT drafts_idempotency_key_key UNIQUE (idempotency_key);
    -- The executor's queue and the sweeper's scan.
    CREATE INDEX drafts_approved_idx ON approvals.drafts (decided_at) WHERE status = 'approved';
    CREATE INDEX drafts_expiry_idx ON approvals.drafts (expires_at) WHERE status = 'pending';
    -- Cumulative refunds per order (the refund runbook's limit applies to the total).
    CREATE INDEX drafts_order_idx
        ON approvals.drafts (tenant_id, tool, upper(arguments ->> 'order_id'));

    CREATE TABLE approvals.signoffs (
        draft_event_id uuid        NOT NULL REFERENCES approvals.drafts ON DELETE CASCADE,
        approver_id    text        NOT NULL,
        level          text        NOT NULL,
        decision       text        NOT NULL CHECK (decision IN ('approve', 'reject')),
        reason         text        NOT NULL DEFAULT '',
        at             timestamptz NOT NULL,
        PRIMARY KEY (draft_event_id, approver_id)
    );

    CREATE TABLE approvals.outbox (
        seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id     uuid        NOT NULL UNIQUE,
        topic        text        NOT NULL,
        key          bytea       NOT NULL,
        headers      jsonb       NOT NULL,
        payload      bytea       NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        partition    integer,
        "offset"     bigint
    );
    CREATE INDEX outbox_unpublished_idx ON approvals.outbox (seq) WHERE published_at IS NULL;
    CREATE INDEX outbox_published_idx ON approvals.outbox (published_at)
        WHERE published_at IS NOT NULL;

    CREATE TABLE approvals.relay_checkpoints (
        topic       text    NOT NULL,
        partition   integer NOT NULL,
        next_offset bigint  NOT NULL CHECK (next_offset >= 0),
        PRIMARY KEY (topic, partition)
    );
    """)


def downgrade() -> None:
    op.execute("""
    DROP TABLE approvals.relay_checkpoints;
    DROP TABLE approvals.outbox;
    DROP TABLE approvals.signoffs;
    DROP INDEX approvals.drafts_order_idx;
    DROP INDEX approvals.drafts_expiry_idx;
    DROP INDEX approvals.drafts_approved_idx;
    ALTER TABLE approvals.drafts
        DROP CONSTRAINT drafts_idempotency_key_key,
        DROP COLUMN trace_headers,
        DROP COLUMN execution_attempts,
        DROP COLUMN execution,
        DROP COLUMN decision_reason,
        DROP COLUMN decided_at,
        DROP COLUMN idempotency_key,
        DROP COLUMN policy_amount_eur,
        DROP COLUMN required_count,
        DROP COLUMN required_level;
    """)
