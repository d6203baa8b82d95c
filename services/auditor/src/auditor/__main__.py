"""``python -m auditor``: serve the auditor (consumer + /healthz + /metrics)."""

from shared.runner import serve

from .app import build
from .settings import AuditorSettings

if __name__ == "__main__":
    settings = AuditorSettings()
    serve(lambda: build(settings), settings)
