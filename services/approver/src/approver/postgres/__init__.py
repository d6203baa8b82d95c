"""Everything that speaks SQL to the approver's schema (``approvals``).

The store behind :class:`~approver.service_layer.ports.ApprovalStore`, the transactional
outbox and its relay to Kafka, the LISTEN/NOTIFY wake-ups, the object inspector, the
reconciliation queries, and the two loops whose every step is one row-locked transaction
(the executor, which runs the tool on that same connection, and the sweeper).
"""
