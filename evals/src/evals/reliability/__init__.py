"""``make reliability``: sustained load and faults against a local stack (see ``__main__``)."""
