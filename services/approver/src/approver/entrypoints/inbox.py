"""The approval inbox: a static page whose script calls the approvals API with the user's token.

The page carries no data of its own, so nothing is rendered on the server; the script writes
every value with ``textContent`` (never as HTML), and the Content-Security-Policy allows
scripts and styles from this origin only, so a summary or argument holding markup stays text.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

__all__ = ["inbox_router"]

_WEB = files("approver.entrypoints") / "web"
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_FILES = {
    "/inbox": ("inbox.html", "text/html; charset=utf-8"),
    "/inbox/inbox.js": ("inbox.js", "text/javascript; charset=utf-8"),
    "/inbox/inbox.css": ("inbox.css", "text/css; charset=utf-8"),
}


def inbox_router() -> APIRouter:
    router = APIRouter(tags=["inbox"], include_in_schema=False)
    for path, (name, media_type) in _FILES.items():
        body = (_WEB / name).read_bytes()

        def serve(body: bytes = body, media_type: str = media_type) -> Response:
            return Response(body, media_type=media_type, headers=_SECURITY_HEADERS)

        router.add_api_route(path, serve, methods=["GET"])
    return router
