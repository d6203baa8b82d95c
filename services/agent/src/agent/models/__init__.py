"""Models that turn a request and its context into a draft."""

from .extractive import ExtractiveModel

__all__ = ["ExtractiveModel"]
