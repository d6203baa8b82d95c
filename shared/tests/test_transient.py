"""Which errors are the infrastructure's (retry, answer 503) rather than the message's."""

from __future__ import annotations

import psycopg
import pytest
from aiokafka import errors as kafka
from psycopg_pool import PoolTimeout

from shared.messaging import is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "exc",
    [
        kafka.NodeNotReadyError("node 1"),
        kafka.KafkaConnectionError("refused"),
        kafka.KafkaTimeoutError(),
        kafka.RequestTimedOutError(),
        kafka.NotLeaderForPartitionError(),
        kafka.LeaderNotAvailableError(),
        kafka.NotEnoughReplicasError(),
        psycopg.OperationalError("server closed the connection"),
        PoolTimeout("no connection"),
        TimeoutError(),
        ConnectionResetError(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_infrastructure_errors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        kafka.MessageSizeTooLargeError(),
        kafka.TopicAuthorizationFailedError(),
        kafka.UnsupportedVersionError(),
        psycopg.errors.UniqueViolation(),
        psycopg.DataError("NUL character"),
        ValueError("bad"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_of_the_message_or_the_code_are_not(exc: BaseException) -> None:
    assert not is_transient(exc)
