"""Indexes for ``auditor verify``: completeness checks that stay fast on a big log.

``auditor verify --since`` reconciles requests settled in a window against the audit log and
cross-checks the gateway's timeline against it (``auditor.completeness``), and walks the hash
chain from the first row recorded in that window. Without these indexes each of those would
scan a whole table; the per-request lookups use the existing ``records_request_idx`` and
``timeline_request_idx``.

- ``audit.records (recorded_at)``: where a partial chain walk starts (one index probe).
- ``gateway.requests (updated_at)``: the requests settled in the window. The verifier only
  reads the gateway's tables; the index is the gateway's cost (status updates already change an
  indexed column since 0005, so it costs one more index entry per update, not HOT updates).
- ``gateway.timeline (at)``: the steps projected in the window. (A BRIN index would cost less
  to maintain, but measured on 1.6 M rows the planner never chose it over a full scan of
  ``timeline_request_idx``; this one keeps the cross-check proportional to the window.)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE INDEX records_recorded_idx ON audit.records (recorded_at);
    CREATE INDEX requests_updated_idx ON gateway.requests (updated_at);
    CREATE INDEX timeline_at_idx ON gateway.timeline (at);
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX gateway.timeline_at_idx;
    DROP INDEX gateway.requests_updated_idx;
    DROP INDEX audit.records_recorded_idx;
    """)
