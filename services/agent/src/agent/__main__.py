"""``python -m agent``: serve the agent."""

from shared.runner import serve

from .app import build
from .settings import AgentSettings

if __name__ == "__main__":
    settings = AgentSettings()
    serve(lambda: build(settings), settings)
