"""Gateway: the HTTP entry to the saga (POST /v1/chat, request status, server-sent events)."""
