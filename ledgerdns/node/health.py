"""The ``--metrics`` listener: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz``.

Unauthenticated, like every Prometheus exporter: bind it to an address only
the monitoring system reaches. It runs on the node's event loop through
Hypercorn, as the RPC does; a scrape reads counters (`NodeCollector`) and
never waits for consensus or the store's writer.

- ``/healthz``: 200 while the node's event loop answers (alive).
- ``/readyz``: 200 when `readiness` says synced and serving, else 503; the body
  is one line saying why.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

Readiness = Callable[[], tuple[bool, str]]


def make_health_app(registry: CollectorRegistry, readiness: Readiness) -> Starlette:
    """The ASGI application serving `registry` and the two probes."""

    async def metrics(request: Request) -> Response:
        # The text format Prometheus 2 and 3 both read, or OpenMetrics when the scraper asks.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), headers={"Content-Type": content_type})

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, why = readiness()
        return PlainTextResponse(
            f"{'ready' if ready else 'not ready'}: {why}\n", status_code=200 if ready else 503
        )

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
