"""The ceiling: the least an aiohttp admission webhook can do per review.

Reads the body, parses it with orjson, answers a fixed allowed AdmissionReview
with the request's uid. Same TLS context (``webhook.serving.tls.ServerCertificate``),
same event loop (uvloop), same runner settings as ``task-pod-webhook serve``:
whatever ours spends above this is the cost of its own work.

    python bench/ceiling_server.py --port P --tls-cert-file F --tls-private-key-file K
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

import orjson
import uvloop
from aiohttp import web

from webhook.serving.settings import MAX_BODY_BYTES
from webhook.serving.tls import ServerCertificate


async def mutate(request: web.Request) -> web.Response:
    review = orjson.loads(await request.read())
    answer = {
        "apiVersion": review["apiVersion"],
        "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": True},
    }
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def serve(host: str, port: int, cert: Path, key: Path) -> None:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.add_routes(
        [web.post("/mutate", mutate), web.post("/validate", mutate), web.get("/healthz", healthz)]
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    certificate = ServerCertificate(cert, key)
    site = web.TCPSite(runner, host, port, ssl_context=certificate.ssl_context, backlog=1024)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ceiling serving https://{host}:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert-file", type=Path, required=True)
    parser.add_argument("--tls-private-key-file", type=Path, required=True)
    args = parser.parse_args()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.host, args.port, args.tls_cert_file, args.tls_private_key_file))


if __name__ == "__main__":
    main()
