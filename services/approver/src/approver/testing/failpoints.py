"""Failpoints: named steps where a fault test makes the process kill itself.

``APPROVER_FAILPOINTS=execute.after_effect:3`` makes the process SIGKILL itself the third time
it reaches ``execute.after_effect``. SIGKILL, not an exception: nothing runs after it (no
``finally``, no rollback sent, no flush), exactly like a crash or an OOM kill. Without the
setting, :meth:`Failpoints.hit` is a dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["NAMES", "Failpoints"]

#: Every step that can be armed, in the order a draft meets them.
NAMES = (
    "intake.before_commit",  # draft stored and its events enqueued, not committed
    "intake.after_commit",  # committed, the draft's offset not yet committed
    "decide.before_commit",  # sign-off written, not committed
    "execute.after_effect",  # the tool wrote its effect, the status is not yet changed
    "execute.before_commit",  # effect, status and DraftDecided written, not committed
    "execute.after_commit",  # committed, nothing published yet
    "relay.before_publish",  # outbox rows read, not sent
    "relay.after_publish",  # sent and acknowledged by the broker, not marked published
    "relay.after_mark",  # marked published
    "sweep.before_commit",  # drafts expired and their events enqueued, not committed
)


class Failpoints:
    def __init__(self, spec: str = "") -> None:
        self._countdown: dict[str, int] = {}
        for item in filter(None, (p.strip() for p in spec.split(","))):
            name, _, count = item.partition(":")
            if name not in NAMES:
                raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(NAMES)}")
            self._countdown[name] = int(count or "1")
            if self._countdown[name] < 1:
                raise ValueError(f"failpoint {name}: the countdown must be at least 1")

    def hit(self, name: str) -> None:
        left = self._countdown.get(name)
        if left is None:
            return
        if left > 1:
            self._countdown[name] = left - 1
            return
        # The test reads this line to count which step each kill hit.
        sys.stderr.write(f"FAILPOINT {name}: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
