"""``python -m retriever``: serve the retriever."""

from shared.runner import serve

from .app import build
from .settings import RetrieverSettings

if __name__ == "__main__":
    settings = RetrieverSettings()
    serve(lambda: build(settings), settings)
