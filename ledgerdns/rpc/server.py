"""The RPC server: the Starlette application and serving it with Hypercorn on trio.

`make_app` wires the endpoints (`ledgerdns.rpc.routes`) behind a bearer-token
check and turns every error into a JSON body; `serve_rpc` binds it (port 0
works) and runs until cancelled. No HTTP is parsed here: Hypercorn does that.
"""

from __future__ import annotations

import hmac
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, cast

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import ASGIFramework
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from chain.errors import InvalidUpdate, NotFound
from ledgerdns.rpc.errors import INTERNAL, METHOD_NOT_ALLOWED, UNAUTHORIZED, ApiError
from ledgerdns.rpc.model import RpcModel
from ledgerdns.rpc.routes import Endpoints

if TYPE_CHECKING:
    from trio_typing import TaskStatus

log = logging.getLogger(__name__)
http_log = logging.getLogger("ledgerdns.rpc.hypercorn")
KEEP_ALIVE_S = 5.0  # an idle client connection is closed after this (the client keeps one 2 s)


class _DropBanner(logging.Filter):
    """Hides Hypercorn's "Running on ... (CTRL + C to quit)": we log our own line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Running on ")


def error_response(error: ApiError) -> JSONResponse:
    """The JSON response for `error`."""
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if error.status == 413:
        headers["Connection"] = "close"  # the rest of the body was not read
    return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


class BearerAuth:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = b"Bearer " + token.encode("ascii")

    def _allowed(self, scope: Scope) -> bool:
        given = Headers(scope=scope).get("authorization", "").encode("latin-1")
        # The scheme is case-insensitive (RFC 7235); the token is compared in constant time.
        if given[:7].lower() == b"bearer ":
            given = b"Bearer " + given[7:].strip()
        return hmac.compare_digest(given, self._expected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            message = "missing or wrong bearer token (see <data-dir>/rpc.token)"
            await error_response(ApiError(401, UNAUTHORIZED, message))(scope, receive, send)
            return
        await self.app(scope, receive, send)


# -- turning exceptions into JSON --


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _invalid_update(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidUpdate)
    return error_response(ApiError.rejected(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(ApiError.not_found(str(exc)))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        error = ApiError.not_found(f"no such endpoint: {request.url.path} (see /v1/openapi.json)")
    elif exc.status_code == 405:
        error = ApiError(405, METHOD_NOT_ALLOWED, f"{request.method} is not allowed here")
    else:
        error = ApiError(exc.status_code, "http-error", str(exc.detail))
    return error_response(error)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this, so Hypercorn logs the traceback as an error.
    return error_response(ApiError(500, INTERNAL, "internal error; see the node's log"))


def make_app(model: RpcModel, token: str) -> Starlette:
    """The RPC as an ASGI application over `model`, guarded by `token`."""
    return Starlette(
        routes=Endpoints(model).routes(),
        middleware=[Middleware(BearerAuth, token=token)],
        exception_handlers={
            ApiError: _api_error,
            InvalidUpdate: _invalid_update,
            NotFound: _not_found,
            HTTPException: _http_exception,
            Exception: _internal_error,
        },
    )


def _bind_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _port_of(url: str) -> int:
    """The port of a Hypercorn bind report such as ``http://127.0.0.1:40123``."""
    return int(url.rpartition(":")[2])


def _bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening).

    Binding here, before Hypercorn starts, makes a busy port a plain OSError
    from `serve_rpc` rather than one buried in nested exception groups.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_rpc(
    model: RpcModel,
    token: str,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the RPC on ``host:port`` until cancelled.

    Args:
        model: what the endpoints read and write (`RpcModel`).
        token: the bearer token every request must carry.
        host: the address to bind (loopback unless the operator says otherwise).
        port: the port; 0 lets the OS choose.
        access_log: log one line per request to ``ledgerdns.rpc.access``.
        task_status: receives ``(host, bound_port)`` once the socket listens.

    Raises:
        OSError: the address cannot be bound.
    """
    await serve_asgi(
        make_app(model, token), host, port, name="rpc", access_log=access_log,
        task_status=task_status,
    )  # fmt: skip


async def serve_asgi(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    name: str,
    access_log: bool = False,
    task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve an ASGI `app` with Hypercorn on ``host:port`` until cancelled.

    Args:
        app: the application (a Starlette one, say).
        host: the address to bind; port: the port (0 lets the OS choose).
        name: what is served, for the log (``"rpc listening url=..."``).
        access_log: log one line per request to ``ledgerdns.<name>.access``.
        task_status: receives ``(host, bound_port)`` once the socket listens.

    Raises:
        OSError: the address cannot be bound.
    """
    config = Config()
    config.keep_alive_timeout = KEEP_ALIVE_S  # clients keep idle connections for less
    if not any(isinstance(f, _DropBanner) for f in http_log.filters):
        http_log.addFilter(_DropBanner())
    config.errorlog = http_log
    config.accesslog = logging.getLogger(f"ledgerdns.{name}.access") if access_log else None
    config.include_server_header = False
    # Hypercorn adopts the descriptor (fd://) and closes it when it stops. (Only a
    # cancellation during its instant lifespan start-up could leave it open.)
    config.bind = [f"fd://{_bound_socket(host, port).detach()}"]
    # Starlette's ASGI types are looser than Hypercorn's; they describe the same protocol.
    framework = cast(ASGIFramework, app)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(partial(serve, framework, config, mode="asgi"))
        bound_port = _port_of(binds[0])
        log.info("%s listening url=http://%s", name, _bind_text(host, bound_port))
        task_status.started((host, bound_port))
