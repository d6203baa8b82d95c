"""``python -m gateway``: serve the gateway."""

from shared.runner import serve

from .app import build
from .settings import GatewaySettings

if __name__ == "__main__":
    settings = GatewaySettings()
    serve(lambda: build(settings), settings)
