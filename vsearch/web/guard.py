"""What every request passes before a route sees it, as one ASGI middleware around the app:

- **Host check.** A page on ``attacker.example`` can re-point its name at 127.0.0.1 (DNS
  rebinding) and read a local server's answers; its requests still say ``Host:
  attacker.example``. Only the names in ``hosts`` (``server.allowed_hosts``) are answered.
- **Token.** With a token set, every request carries it: ``Authorization: Bearer T`` (any case
  of ``Bearer``), ``X-Vsearch-Token: T``, or the cookie that ``/?token=T`` sets. ``?token=`` is
  then dropped from the address bar with a 303 to the same URL without it, so it stays out of
  history and ``Referer``. Tokens are compared as UTF-8 bytes in constant time, so a non-ASCII
  token works and a non-ASCII guess is simply wrong.
- **Upload cap.** A body larger than ``caps[path]`` is refused with 413 on its
  ``Content-Length``, before a byte of it is read, or, without one, as soon as the cap is
  passed: nothing over the cap reaches the disk or the multipart parser.
- **Security headers** on every response, errors included (``SECURITY_HEADERS``).

Errors are JSON ``{"error": "..."}``, like the app's.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urlencode

#: The page loads only its own scripts, styles, thumbnails and media; nobody may frame it.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", CSP.encode()),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
COOKIE = "vsearch_token"
#: Host names a browser on this machine uses for a loopback server.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def allowed_hosts(host: str, extra: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The ``Host`` names a server bound to ``host`` answers to: loopback names, ``host`` itself,
    and ``extra`` (``--allow-host``; ``*`` for any). Anything else is a DNS-rebinding page
    talking to a local server under a name it controls, and is refused."""
    return frozenset(h.strip().strip("[]").lower() for h in (*LOOPBACK_NAMES, host, *extra) if h.strip())


def json_error(status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> tuple[int, list, bytes]:
    body = json.dumps({"error": message}).encode()
    return status, [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers], body


def host_name(value: bytes) -> str:
    """``Host`` header → lower-case name without port or IPv6 brackets (``[::1]:80`` → ``::1``)."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class Guard:
    """The middleware: ``Guard(app, hosts=allowed_hosts(...), token=..., caps={"/api/image": BYTES})``."""

    def __init__(self, app, *, hosts: frozenset[str], token: str | None, caps: dict[str, int]):
        self.app = app
        self.hosts = None if "*" in hosts else hosts
        self.token = token.encode("utf-8") if token else None
        self.caps = caps

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        headers = scope["headers"]
        refusal = self._check_host(headers) or self._check_token(scope, headers)
        if refusal is None and self.token and scope["method"] in ("GET", "HEAD") and _query_token(scope) is not None:
            refusal = self._drop_token_from_url(scope)
        if refusal is None and scope["method"] == "POST" and scope["path"] in self.caps:
            receive, refusal = await _bounded_body(receive, headers, self.caps[scope["path"]])
        if refusal is not None:
            return await _respond(send_secured, *refusal)
        await self.app(scope, receive, send_secured)

    def _check_host(self, headers):
        if self.hosts is None:
            return None
        given = [v for k, v in headers if k == b"host"]
        name = host_name(given[0]) if given else None  # no Host at all: HTTP/1.0, never a browser
        if name is not None and name not in self.hosts:
            return json_error(
                400, f"this server does not answer to the host name {name!r} (start it with --allow-host {name} to allow it)"
            )
        return None

    def _check_token(self, scope, headers):
        if self.token is None:
            return None
        for given in _presented_tokens(scope, headers):
            if hmac.compare_digest(given, self.token):
                return None
        return json_error(
            401,
            "this server needs a token: Authorization: Bearer TOKEN, or open /?token=TOKEN once",
            [(b"www-authenticate", b'Bearer realm="vsearch"')],
        )

    def _drop_token_from_url(self, scope):
        rest = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True) if k != "token"]
        location = quote(scope.get("root_path", "") + scope["path"]) + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{COOKIE}={quote(self.token.decode('utf-8'), safe='')}; Path=/; HttpOnly; SameSite=Strict"
        return 303, [(b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode()), (b"content-length", b"0")], b""


def _query_token(scope) -> bytes | None:
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        if key == "token":
            return value.encode("latin-1")  # %C3%A9 → the two bytes of "é": compared as bytes
    return None


def _presented_tokens(scope, headers) -> list[bytes]:
    found = []
    for key, value in headers:
        if key == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer":
                found.append(credentials.strip())
        elif key == b"x-vsearch-token":
            found.append(value.strip())
        elif key == b"cookie":
            for part in value.split(b";"):
                name, eq, cookie = part.strip().partition(b"=")
                if eq and name == COOKIE.encode():
                    found.append(unquote_to_bytes(cookie.strip(b'"')))
    query = _query_token(scope)
    if query is not None:
        found.append(query)
    return found


async def _bounded_body(receive, headers, cap: int):
    """``(receive, None)`` replaying a body of at most ``cap`` bytes, or ``(receive, refusal)``."""
    too_big = json_error(413, f"the upload is larger than {cap // (1024 * 1024)} MB", [(b"connection", b"close")])
    lengths = [v for k, v in headers if k == b"content-length"]
    if lengths:
        if not lengths[0].strip().isdigit():
            return receive, json_error(400, "Content-Length must be a number of bytes")
        if int(lengths[0]) > cap:
            return receive, too_big
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return receive, json_error(400, "the client went away before the upload ended")
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > cap:
            return receive, too_big
        more = message.get("more_body", False)
    body, replayed = b"".join(chunks), False

    async def replay():
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay, None


async def _respond(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
