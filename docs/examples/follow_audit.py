"""A compliance system follows every step of every saga on the `audit` topic.

Use a consumer group of its own (it gets every record, independently of the platform's
auditor), read from the beginning, and commit after storing each record. Records are
`AuditRecorded` events: who (actor), what (action, outcome), which saga (request_id), when,
the trace id, and small non-personal details. Redeliveries carry the same event_id.

    uv run python docs/examples/follow_audit.py --bootstrap 127.0.0.1:9092 --limit 20
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiokafka import AIOKafkaConsumer


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--group", default="compliance-archive")
    parser.add_argument("--limit", type=int, default=0, help="stop after N records (0: follow)")
    args = parser.parse_args()

    consumer = AIOKafkaConsumer(
        f"{args.topic_prefix}audit",
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    seen = 0
    try:
        async for record in consumer:
            event = json.loads(record.value)
            print(
                f"{event['occurred_at']}  {event['request_id'][:8]}  {event['service']:<9}"
                f" {event['action']:<22} {event['outcome']:<7} actor={event['actor']}"
            )
            await consumer.commit()  # after storing it: at-least-once, dedupe by event_id
            seen += 1
            if args.limit and seen >= args.limit:
                return
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main())
