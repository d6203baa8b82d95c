"""Initial schema: audit log, pending approvals, gateway request status.

Each service owns one schema and nothing else writes to it.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE SCHEMA IF NOT EXISTS audit;
    CREATE SCHEMA IF NOT EXISTS approvals;
    CREATE SCHEMA IF NOT EXISTS gateway;

    -- Append-only, hash-chained audit log (auditor). `record` is the canonical JSON of the
    -- step and hash = sha256(prev_hash || record); the other columns mirror it for queries.
    CREATE TABLE audit.records (
        seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id         uuid        NOT NULL UNIQUE,
        request_id       uuid        NOT NULL,
        tenant_id        text        NOT NULL,
        service          text        NOT NULL,
        action           text        NOT NULL,
        outcome          text        NOT NULL,
        actor            text        NOT NULL,
        subject_event_id uuid,
        trace_id         text,
        occurred_at      timestamptz NOT NULL,
        recorded_at      timestamptz NOT NULL DEFAULT now(),
        details          jsonb       NOT NULL DEFAULT '{}'::jsonb,
        record           text        NOT NULL,
        prev_hash        text        NOT NULL,
        hash             text        NOT NULL
    );
    CREATE INDEX records_request_idx ON audit.records (request_id, seq);
    -- The chain head names the last row, so deleting rows at the end is detected too.
    CREATE TABLE audit.chain_head (
        id        smallint PRIMARY KEY CHECK (id = 1),
        last_seq  bigint NOT NULL,
        last_hash text   NOT NULL
    );
    INSERT INTO audit.chain_head VALUES (1, 0, repeat('0', 64));
    -- Rows are never updated or deleted by the application.
    CREATE FUNCTION audit.forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit.records is append-only';
    END $$;
    CREATE TRIGGER records_append_only BEFORE UPDATE OR DELETE ON audit.records
        FOR EACH ROW EXECUTE FUNCTION audit.forbid_change();

    -- Drafts proposing a write action, waiting for a human decision (approver).
    CREATE TABLE approvals.drafts (
        draft_event_id uuid PRIMARY KEY,
        request_id     uuid        NOT NULL,
        tenant_id      text        NOT NULL,
        requester_id   text        NOT NULL,
        tool           text        NOT NULL,
        arguments      jsonb       NOT NULL,
        risk           text        NOT NULL,
        summary        text        NOT NULL,
        status         text        NOT NULL CHECK (status IN
                           ('pending', 'approved', 'rejected', 'expired', 'executed', 'failed')),
        policy         text        NOT NULL,
        draft          jsonb       NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        updated_at     timestamptz NOT NULL DEFAULT now(),
        expires_at     timestamptz NOT NULL
    );
    CREATE INDEX drafts_pending_idx ON approvals.drafts (tenant_id, status, created_at);
    CREATE INDEX drafts_request_idx ON approvals.drafts (request_id);

    -- Status and timeline of each request, projected from the audit and approved topics (gateway).
    CREATE TABLE gateway.requests (
        request_id  uuid PRIMARY KEY,
        tenant_id   text        NOT NULL,
        user_id     text,
        status      text        NOT NULL,
        trace_id    text,
        result      jsonb,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE gateway.timeline (
        event_id    uuid PRIMARY KEY,
        request_id  uuid        NOT NULL,
        at          timestamptz NOT NULL,
        service     text        NOT NULL,
        action      text        NOT NULL,
        outcome     text        NOT NULL,
        details     jsonb       NOT NULL DEFAULT '{}'::jsonb
    );
    CREATE INDEX timeline_request_idx ON gateway.timeline (request_id, at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP SCHEMA gateway CASCADE;
    DROP SCHEMA approvals CASCADE;
    DROP SCHEMA audit CASCADE;
    """)
