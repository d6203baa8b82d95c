"""Test support that ships with the package: the in-memory store (:mod:`.fakes`) and the
failpoints (:mod:`.failpoints`) a fault test arms through ``APPROVER_FAILPOINTS``, which the
production code paths call and which do nothing unless armed (refused in production).
"""
