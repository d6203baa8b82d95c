"""Approver: the policy gate between a draft and its effect."""
