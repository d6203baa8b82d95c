"""Topic administration: the five topics and their dead-letter topics."""

from __future__ import annotations

import asyncio

import typer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.contracts import Topic, dead_letter_topic
from shared.settings import KafkaSettings

__all__ = ["app", "create_topics", "topic_names"]


def topic_names(prefix: str = "") -> list[str]:
    names = [f"{prefix}{t.value}" for t in Topic]
    return names + [dead_letter_topic(n) for n in names]


async def create_topics(
    bootstrap: str,
    *,
    prefix: str = "",
    partitions: int = 6,
    replication: int = 1,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Create missing topics; existing ones are left as they are. Returns those created.

    Every topic, dead-letter ones included, gets the same partitions: a saga's messages are
    keyed by ``request_id``, so its steps stay in order on one partition of each topic, and a
    consumer group can use at most that many consumers. Partitions are not added later:
    that would move keys to other partitions while sagas are in flight.
    """
    configs = (
        {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas is not None else {}
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in topic_names(prefix) if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        n,
                        num_partitions=partitions,
                        replication_factor=replication,
                        topic_configs=configs,
                    )
                    for n in missing
                ]
            )
        return missing
    finally:
        await admin.close()


app = typer.Typer(help="Kafka topics of the platform.", no_args_is_help=True)


@app.callback()
def _main() -> None:
    """Reads KAFKA_* settings."""


@app.command()
def create() -> None:
    """Create the five topics and their .dlq topics (KAFKA_PARTITIONS, KAFKA_REPLICATION_FACTOR,
    KAFKA_MIN_INSYNC_REPLICAS)."""
    s = KafkaSettings()
    created = asyncio.run(
        create_topics(
            s.bootstrap_servers,
            prefix=s.topic_prefix,
            partitions=s.partitions,
            replication=s.replication_factor,
            min_insync_replicas=s.min_insync_replicas,
        )
    )
    typer.echo(f"created {len(created)} topics: {', '.join(created) or '-'}")


if __name__ == "__main__":
    app()
