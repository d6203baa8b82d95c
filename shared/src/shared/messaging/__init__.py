"""Broker factory, event bus (publish, consume, dead-letter) and header conventions."""

from .broker import consumer_options, make_broker
from .bus import NIL_REQUEST_ID, EventBus, is_transient
from .ports import EventPublisher

__all__ = [
    "NIL_REQUEST_ID",
    "EventBus",
    "EventPublisher",
    "consumer_options",
    "is_transient",
    "make_broker",
]
