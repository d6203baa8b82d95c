"""What the saga carried for each request, read off its topics like an operator would.

``retrieved`` holds the chunks the retriever handed the agent (what a permission leak is
looked for in, and what each citation is checked against); ``draft`` holds the agent's draft,
including a proposed action, which the gateway's view does not show while the action waits
for approval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from devstack.pytest_plugin import TopicProbe
from shared.contracts import ContextRetrieved, DraftProduced
from shared.settings import KafkaSettings

__all__ = ["SagaRecord"]

log = logging.getLogger(__name__)


class SagaRecord:
    def __init__(self, bootstrap: str, *, topic_prefix: str = "") -> None:
        settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
        self._probe = TopicProbe(settings, ["retrieved", "draft"])
        self._retrieved: dict[str, ContextRetrieved] = {}
        self._drafts: dict[str, DraftProduced] = {}
        self._read = 0

    async def start(self) -> None:
        await self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()

    def retrieved(self, request_id: str) -> ContextRetrieved | None:
        self._parse()
        return self._retrieved.get(request_id)

    def draft(self, request_id: str) -> DraftProduced | None:
        self._parse()
        return self._drafts.get(request_id)

    async def wait_for(self, request_ids: Collection[str], *, timeout_s: float) -> list[str]:
        """Wait until both messages of every request were read; the ids still missing some."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            self._parse()
            missing = [r for r in request_ids if r not in self._retrieved or r not in self._drafts]
            if not missing or asyncio.get_running_loop().time() > deadline:
                return missing
            await asyncio.sleep(0.1)

    def _parse(self) -> None:
        # The probe appends as it reads; parse only what arrived since the last look.
        messages = self._probe.messages
        while self._read < len(messages):
            message = messages[self._read]
            self._read += 1
            self._keep(message)

    def _keep(self, message: dict[str, Any]) -> None:
        body = message.get("body")
        if not isinstance(body, dict):
            return
        topic = str(message["topic"])
        try:
            if topic.endswith("retrieved"):
                retrieved = ContextRetrieved.model_validate(body)
                self._retrieved[str(retrieved.request_id)] = retrieved
            elif topic.endswith("draft"):
                draft = DraftProduced.model_validate(body)
                self._drafts[str(draft.request_id)] = draft
        except ValidationError as exc:
            # Not ours to judge here: the platform dead-letters what it cannot read.
            log.warning("unreadable message on %s: %s", topic, exc.errors()[:1])
