"""An upstream system asks a question by publishing straight to the `request` topic.

It needs no code from this repository: only a Kafka client and the JSON contract of
`ChatRequested` (see docs/asyncapi.json). Key the message by request_id so the whole saga
stays on one partition, and put request_id / tenant_id / schema in the headers. The answer
arrives on the `approved` topic (keyed by the same request_id), which this script follows.

    uv run python docs/examples/publish_request.py --bootstrap 127.0.0.1:9092 \
        "How many days do I have to return an item?"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("question")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--tenant", default="harborpine")
    parser.add_argument("--user", default="crm-integration")
    args = parser.parse_args()

    request_id = str(uuid.uuid4())
    message = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "request_id": request_id,
        "tenant_id": args.tenant,
        "occurred_at": datetime.now(UTC).isoformat(),
        # The upstream system vouches for this identity; the platform enforces it everywhere.
        "principal": {
            "user_id": args.user,
            "tenant_id": args.tenant,
            "roles": ["customer"],
            "level": "none",
        },
        "message": args.question,
        "channel": "api",
    }
    answers = AIOKafkaConsumer(
        f"{args.topic_prefix}approved",
        bootstrap_servers=args.bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=20,
    )
    await answers.start()
    await answers.getmany(timeout_ms=500)  # join before publishing, so the answer is not missed
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{args.topic_prefix}request",
            json.dumps(message).encode(),
            key=request_id.encode(),
            headers=[
                ("request_id", request_id.encode()),
                ("tenant_id", args.tenant.encode()),
                ("schema", b"ChatRequested"),
            ],
        )
        print(f"published request {request_id}; waiting for the decision ...")
        async with asyncio.timeout(30):
            async for record in answers:
                if record.key == request_id.encode():
                    decided = json.loads(record.value)
                    draft = decided["draft"]
                    print(f"{decided['decision']} ({draft['kind']}): {draft['answer']}")
                    for citation in draft["citations"]:
                        print(
                            f"  [{citation['marker']}] {citation['title']} ({citation['doc_id']})"
                        )
                    return
    finally:
        await producer.stop()
        await answers.stop()


if __name__ == "__main__":
    asyncio.run(main())
