"""The AsyncAPI document of the platform's topics (``make asyncapi`` → docs/asyncapi.json).

Services publish through ``EventBus`` and decode bytes themselves (to dead-letter what does
not validate), so FastStream cannot infer payload types from their handlers; this module
declares each topic's publisher with its event model for the specification only.
"""

from __future__ import annotations

import json

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from .codec import EVENT_OF_TOPIC
from .topics import Topic

__all__ = ["specification"]

_PRODUCERS = {
    Topic.REQUEST: "gateway and upstream systems",
    Topic.RETRIEVED: "retriever",
    Topic.DRAFT: "agent",
    Topic.APPROVED: "approver",
    Topic.AUDIT: "every service",
}


def specification() -> dict[str, object]:
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (Tansu locally)")
    for topic, event in EVENT_OF_TOPIC.items():
        broker.publisher(
            topic.value,
            schema=event,
            title=f"{topic.value}:{event.schema_name()}",
            description=(
                f"{(event.__doc__ or '').strip()} Produced by {_PRODUCERS[topic]}. Key: request_id."
                " Headers: request_id, tenant_id, schema, traceparent."
            ),
        )
    spec = AsyncAPI(
        broker,
        title="Support platform topics",
        version="1",
        description="Events of the request → retrieved → draft → approved saga, and audit.",
    )
    return spec.to_specification().to_jsonable()  # type: ignore[no-any-return]


if __name__ == "__main__":
    print(json.dumps(specification(), indent=2))
