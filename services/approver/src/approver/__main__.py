"""``python -m approver``: serve the approver."""

from shared.runner import serve

from .app import build
from .settings import ApproverSettings

if __name__ == "__main__":
    settings = ApproverSettings()
    serve(lambda: build(settings), settings)
