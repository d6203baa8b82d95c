"""Auditor: the append-only, hash-chained record of every step of every saga.

Two guarantees, checked by ``auditor verify``:

- integrity (:mod:`auditor.chain`): a stored row cannot be altered or removed unnoticed;
- completeness (:mod:`auditor.completeness`, :mod:`auditor.expectations`): a step that never
  reached the log is found, by reconciling settled requests against the steps their path
  implies and by cross-checking the gateway's projection of the same topic.

The consumer (:mod:`auditor.app`) commits its offsets only after a batch is stored, so an
auditor crash delays records but does not lose them. See docs/failure-modes.md, "Audit
completeness".
"""
