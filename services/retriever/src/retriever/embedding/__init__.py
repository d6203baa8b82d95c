"""Text embedding behind a small port; the offline ONNX MiniLM is the default adapter."""

from .onnx_minilm import OnnxMiniLM
from .port import Embedder

__all__ = ["Embedder", "OnnxMiniLM"]
