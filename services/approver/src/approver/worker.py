"""``python -m approver.worker``: the executor, outbox relay and sweeper, without HTTP or intake.

For deployments that scale execution apart from the API, and for the fault test, which
restarts it dozens of times: it starts in about a second and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

from shared.db import open_pool
from shared.guardrails import redact
from shared.telemetry import setup
from shared.tools import default_registry

from .entrypoints.background import Background
from .settings import ApproverSettings
from .testing.failpoints import Failpoints


async def run(settings: ApproverSettings) -> None:
    # Redacted like every service's logs: a failed execution's error may quote its arguments.
    telemetry = setup(settings.telemetry, "approver-worker", redact=redact)
    pool = await open_pool(settings.database, name="approver-worker")
    background = Background(settings, pool, default_registry(), Failpoints(settings.failpoints))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await background.start()
    try:
        await stop.wait()
    finally:
        await background.stop()
        await pool.close()
        telemetry.tracer_provider.force_flush(5_000)


if __name__ == "__main__":
    asyncio.run(run(ApproverSettings()))
