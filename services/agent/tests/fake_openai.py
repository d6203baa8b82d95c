"""A local HTTP fake of the chat-completions API, for the real ``openai`` SDK to talk to.

Each model has a script: a list of behaviours consumed one request at a time (the last one
repeats): a text reply, tool calls, an HTTP error status, or a delay longer than the client's
timeout. Every request body is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class Reply:
    text: str = ""
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, JSON arguments)
    status: int = 200
    delay_s: float = 0.0


@dataclass
class FakeChatAPI:
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def script(self, model: str, *replies: Reply) -> None:
        self.scripts[model] = list(replies)

    def bodies(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["model"] == model]

    def _next(self, model: str) -> Reply:
        queue = self.scripts.get(model) or [Reply(text="No script for this model.")]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> JSONResponse:
            body = await request.json()
            self.requests.append(body)
            reply = self._next(body["model"])
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.status != 200:
                return JSONResponse(
                    {"error": {"message": f"scripted {reply.status}", "type": "scripted"}},
                    status_code=reply.status,
                    headers={"retry-after-ms": "10"} if reply.status == 429 else None,
                )
            calls = [
                {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
                for i, (n, a) in enumerate(reply.tool_calls)
            ]
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if calls:
                message["tool_calls"] = calls
            return JSONResponse(
                {
                    "id": f"chatcmpl-{len(self.requests)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": f"{body['model']}-2026-01-01",
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "finish_reason": "tool_calls" if calls else "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 120, "completion_tokens": 15, "total_tokens": 135},
                }
            )

        return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port for the duration of the block."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
