"""Cost per request, read from the audit log (``cost report``).

The agent records each request's cost on its ``draft.produced`` audit step (``details.cost``:
one item per model and operation, with tokens and USD). A view flattens those items so a
report is one GROUP BY; a partial index keeps the scan to the drafts of the period asked for.
The audit log stays the one record: nothing is written twice, and a redelivered draft (recorded
once by the auditor) is counted once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX records_drafts_at_idx ON audit.records (occurred_at)
        WHERE action = 'draft.produced';
    -- One row per cost item; a draft with no item (a blocked request) keeps one row of NULLs,
    -- so request counts include requests that cost nothing.
    CREATE VIEW audit.request_costs AS
    SELECT r.request_id,
           r.tenant_id,
           r.occurred_at,
           COALESCE((r.details->>'served_from_cache')::boolean, false) AS served_from_cache,
           item->>'model'                       AS model,
           item->>'operation'                   AS operation,
           (item->>'input_tokens')::bigint      AS input_tokens,
           (item->>'output_tokens')::bigint     AS output_tokens,
           (item->>'usd')::numeric              AS usd
      FROM audit.records r
      LEFT JOIN LATERAL jsonb_array_elements(
               CASE WHEN jsonb_typeof(r.details->'cost') = 'array'
                    THEN r.details->'cost' ELSE '[]'::jsonb END) AS item ON true
     WHERE r.action = 'draft.produced';
    """)


def downgrade() -> None:
    op.execute("""
    DROP VIEW audit.request_costs;
    DROP INDEX audit.records_drafts_at_idx;
    """)
