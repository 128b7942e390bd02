"""A limit on request bodies, enforced before the body is read.

A plain ASGI middleware (like `gridmap_api.security.SecurityHeaders`: no per-request task, no buffering):

* a `Content-Length` over the limit is answered 413 at once, without calling the app or reading a byte of the
  body;
* a body without a length (chunked) is counted as the app reads it; when it passes the limit the read fails and
  the answer is the same 413, whatever the app was about to say.

The 413 is problem+json with `code` payload_too_large and `field` body, naming the limit. Routes may keep a
smaller limit of their own (the hotline import: 20 MB).
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridmap_api import i18n

DEFAULT_MAX_BODY_BYTES = 25 * 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException so that the framework's body
    readers pass it on as it is (FastAPI turns other exceptions met while reading a body into a 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit, "en"))


def _megabytes(limit: int) -> str:
    mb = limit / 2**20
    return f"{mb:.0f}" if mb == int(mb) else f"{mb:.1f}"


def _detail(limit: int, lang: str) -> str:
    mb = _megabytes(limit)
    return f"请求体超过 {mb} MB 上限。" if lang == i18n.ZH else f"request body over the {mb} MB limit"


def too_large_body(limit: int, lang: str = i18n.DEFAULT) -> bytes:
    return json.dumps(
        {
            "type": "about:blank",
            "title": i18n.title(413, lang),
            "status": 413,
            "detail": _detail(limit, lang),
            "code": "payload_too_large",
            "field": "body",
            "limit_bytes": limit,
        },
        ensure_ascii=False,
    ).encode("utf-8")


class BodyLimit:
    """Refuse request bodies over `max_body_bytes` (see the module doc)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.app = app
        self.limit = int(max_body_bytes)

    async def _refuse(self, send: Send, status: int = 413, body: bytes | None = None, lang: str = i18n.DEFAULT) -> None:
        body = body if body is not None else too_large_body(self.limit, lang)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"vary", b"Accept-Language"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        lang = i18n.of_request(scope)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
                break
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                detail = (
                    "Content-Length：应为字节数（非负整数）。"
                    if lang == i18n.ZH
                    else "Content-Length: not a number of bytes"
                )
                body = json.dumps(
                    {
                        "type": "about:blank",
                        "title": i18n.title(400, lang),
                        "status": 400,
                        "detail": detail,
                        "code": "bad_content_length",
                        "field": "Content-Length",
                    },
                    ensure_ascii=False,
                ).encode("utf-8")
                await self._refuse(send, 400, body)
                return
            if declared > self.limit:
                await self._refuse(send, lang=lang)  # the body is never read
                return

        limit = self.limit
        state = {"received": 0, "over": False, "started": False, "refused": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["over"] = True
                    raise BodyTooLarge(limit)
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"] and not state["started"]:
                # whatever the app answers to the failed read, the client is told the body was too large
                if not state["refused"]:
                    state["refused"] = True
                    await self._refuse(send, lang=lang)
                return
            if state["refused"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if state["started"]:
                raise
            if not state["refused"]:
                state["refused"] = True
                await self._refuse(send, lang=lang)
