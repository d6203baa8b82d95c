"""Text embedding behind a small port: the offline int8 ONNX MiniLM by default, any
OpenAI-compatible API when configured, a model-free hashing embedder for tests, and a
persistent cache in front of any of them."""

from .cache import CachedEmbedder
from .hashing import HashingEmbedder
from .onnx_minilm import OnnxMiniLM
from .openai_api import OpenAIEmbedder
from .port import Embedder, EmbeddingUnavailable, Vectors

__all__ = [
    "CachedEmbedder",
    "Embedder",
    "EmbeddingUnavailable",
    "HashingEmbedder",
    "OnnxMiniLM",
    "OpenAIEmbedder",
    "Vectors",
]
