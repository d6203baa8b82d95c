"""Pytest plugin shared by every package's tests (loaded with ``-p shared.testing``).

Loading it by import name also makes sure the real ``shared`` package is imported before
pytest walks ``shared/tests``: otherwise pytest's importlib mode would register the repo's
``shared/`` folder as a namespace package under the same name.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import io
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from starlette.types import ASGIApp

from shared.contracts import ChatRequested
from shared.log_context import ContextFilter
from shared.principal import Principal, StaffLevel


@pytest.fixture
def principal() -> Principal:
    return Principal(user_id="u-1", tenant_id="harborpine", roles=("support",), level=StaffLevel.L1)


@pytest.fixture
def chat(principal: Principal) -> ChatRequested:
    return ChatRequested(
        request_id=uuid.uuid4(), tenant_id=principal.tenant_id, principal=principal, message="hi"
    )


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, every: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with a clear message at the deadline.

    Cross-service tests wait for effects this way instead of sleeping a fixed time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {probe!r}")
        await asyncio.sleep(every)


@contextlib.contextmanager
def serve_in_thread(app: ASGIApp, port: int = 0, *, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1:``port`` (0: any free port) in a thread with
    its own event loop; yields the base URL.

    For synchronous clients (schemathesis, requests) that would block the test's own loop:
    the app's lifespan (pools, broker) runs on the server's loop, not the caller's.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on port {port} stopped while starting")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server on port {port} did not start in {timeout}s")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def schemathesis_run(
    url: str, *, token: str, max_examples: int = 50, seed: int = 20261129, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the schemathesis CLI against the OpenAPI document served at ``url``.

    Every check (server errors, status codes, content types, headers and bodies conforming to
    the document, negative data rejected, ...), valid and invalid generated requests,
    ``max_examples`` per operation and phase, one worker, a fixed seed: the same run every
    time, bounded in time. The CLI is the tool's maintained interface (its pytest plugin
    does not load under pytest 9); its report is what the assertion prints.
    """
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            str(max_examples),
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            str(seed),
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_conforms(app: ASGIApp, *, token: str, max_examples: int = 40) -> None:
    """Serve ``app`` and fail unless schemathesis finds nothing against its OpenAPI document.

    Also fails when the run generated fewer than 100 requests: a run that tested nothing
    must not pass.
    """
    with serve_in_thread(app) as url:
        run = schemathesis_run(url, token=token, max_examples=max_examples)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated, run.stdout[-3000:]
    assert int(generated.group(1)) >= 100, run.stdout[-3000:]


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The machine's Redis at 6379, or a private ``redis-server`` on a free port."""
    if _redis_answers(6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis answers at 127.0.0.1:6379 and redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - the machine's redis-server, fixed arguments
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within 10 s")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class LogLines:
    """What the log handler of ``shared.telemetry.setup`` writes, parsed (JSON format).

    Points that handler at a buffer of its own: the stream it was built with may be one of
    pytest's capture files, which an async fixture and its test do not share.
    """

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        handlers = [
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler)
            and any(isinstance(f, ContextFilter) for f in h.filters)
        ]
        assert handlers, "shared.telemetry.setup has not configured logging"
        for handler in handlers:
            handler.setStream(self._buffer)

    def all(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in self._buffer.getvalue().splitlines() if line[:1] == "{"
        ]

    def saying(self, words: str) -> list[dict[str, Any]]:
        """The lines whose message contains ``words``."""
        return [line for line in self.all() if words in line["message"]]


#: What a :class:`JsonStub` handler returns: the status and the JSON body.
StubReply = tuple[int, Any]


class JsonStub:
    """A JSON-over-HTTP server on a free loopback port, for tests of HTTP clients.

    ``respond(request)`` gets each request (method, path, headers, parsed JSON body) and
    returns ``(status, payload)``; every request is kept in ``requests``. One stub for the
    fake model APIs of the tests instead of a hand-written ``BaseHTTPRequestHandler`` each.
    Use it as a context manager: the server stops on exit.
    """

    @dataclasses.dataclass(frozen=True)
    class Request:
        method: str
        path: str
        headers: dict[str, str]
        body: Any

    def __init__(self, respond: Callable[[JsonStub.Request], StubReply]) -> None:
        self.requests: list[JsonStub.Request] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = JsonStub.Request(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
                stub.requests.append(request)
                status, payload = respond(request)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass  # keep pytest's output for the test's own

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> JsonStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scrape(text: str) -> dict[str, list[dict[str, str]]]:
    """Prometheus exposition text as ``sample name -> [labels of each sample]``.

    Sample names keep their suffixes (``_total``, ``_bucket``, ``_count``), so a test asserts
    the exact name a dashboard or an alert rule queries.
    """
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    return samples


def sample_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
