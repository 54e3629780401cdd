"""A stand-in for the Kubernetes API server, kept only for the faults a real one
will not produce on demand.

Everything the webhook does against Kubernetes is proven against a real
kube-apiserver in ``tests/envtest/`` (caches and lookups, register /
unregister, the webhook as the apiserver calls it, RBAC, an apiserver
restart). What remains here drives ``webhook.kube``'s list/watch loop through
the real ``kubernetes`` client into faults that a real server shows only by
chance or after long waits: watch bookmarks at will, an ERROR 410 event or a
410 on the watch request at will, a compacted history, slow or silent answers,
failing lists, connections dropped mid-stream. It speaks the wire protocol
``webhook.kube`` uses, as documented in "API Concepts":

- ``GET /api/v1/namespaces`` and ``GET /api/v1/serviceaccounts``: a list with
  ``metadata.resourceVersion`` (``limit``/``continue`` paging), or with
  ``watch=true&resourceVersion=N[&allowWatchBookmarks=true][&timeoutSeconds=S]``
  a chunked stream of newline-delimited JSON events (ADDED, MODIFIED,
  DELETED, BOOKMARK, and ERROR carrying a 410 Status when N is older than the
  compacted history);
- ``GET /api/v1/namespaces/{name}`` and
  ``GET /api/v1/namespaces/{ns}/serviceaccounts/{name}``: the object, or a
  404 Status;
- ``/apis/admissionregistration.k8s.io/v1/{mutating,validating}webhookconfigurations``:
  get / create / replace / delete (no test uses them any more: a real
  apiserver does).

It holds no semantics beyond that: no auth, no validation, no field or label
selectors. One revision counter is shared by all kinds, as etcd's is.

``write_kubeconfig`` points a client at it (plain HTTP, a token nobody checks).

Test controls: ``put`` / ``delete`` (``notify=False`` changes the state
without an event, like an event the client missed), ``bookmark``,
``drop_watches`` (the connection is cut mid-stream), ``send_gone`` (an
ERROR 410 event on open watches), ``compact`` (watches from an older
resourceVersion get 410), ``fail_next`` (answer the next requests with an
error Status), ``read_delay`` (a slow server), and ``requests`` (what was
asked, for assertions).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import threading
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

Obj = dict[str, Any]

_KINDS = {"namespaces": "Namespace", "serviceaccounts": "ServiceAccount"}
_CONFIG_KINDS = {
    "mutatingwebhookconfigurations": "MutatingWebhookConfiguration",
    "validatingwebhookconfigurations": "ValidatingWebhookConfiguration",
}
_DROP = object()
_GONE = object()


def status(code: int, reason: str, message: str) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _status_response(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(status(code, reason, message), status=code)


@dataclass
class _Watcher:
    queue: asyncio.Queue[Any]
    bookmarks: bool


@dataclass
class _Collection:
    kind: str
    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    history: list[tuple[int, str, Obj]] = field(default_factory=list)
    compacted: int = 0  # watches from an older resourceVersion get 410
    watchers: list[_Watcher] = field(default_factory=list)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]


class FakeApiServer:
    def __init__(self, revision: int = 100) -> None:
        self.revision = revision
        self.collections = {name: _Collection(kind) for name, kind in _KINDS.items()}
        self.configurations: dict[str, dict[str, Obj]] = {name: {} for name in _CONFIG_KINDS}
        self.requests: list[Seen] = []
        self.read_delay = 0.0
        self._failures: dict[str, list[int]] = defaultdict(list)
        self.app = web.Application()
        self.app.add_routes(
            [
                web.get("/api/v1/namespaces", self._list_or_watch("namespaces")),
                web.get("/api/v1/serviceaccounts", self._list_or_watch("serviceaccounts")),
                web.get("/api/v1/namespaces/{name}", self._read("namespaces")),
                web.get(
                    "/api/v1/namespaces/{namespace}/serviceaccounts/{name}",
                    self._read("serviceaccounts"),
                ),
                web.route("*", "/apis/admissionregistration.k8s.io/v1/{plural}", self._configs),
                web.route(
                    "*", "/apis/admissionregistration.k8s.io/v1/{plural}/{name}", self._configs
                ),
            ]
        )

    # --- test controls --------------------------------------------------------

    def put(self, plural: str, obj: Obj, *, notify: bool = True) -> str:
        """Create or update ``obj``; emits ADDED or MODIFIED unless ``notify`` is False."""
        collection = self.collections[plural]
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        key = (metadata.get("namespace", ""), metadata["name"])
        self.revision += 1
        metadata["resourceVersion"] = str(self.revision)
        obj.setdefault("apiVersion", "v1")
        obj.setdefault("kind", collection.kind)
        event = "MODIFIED" if key in collection.objects else "ADDED"
        collection.objects[key] = obj
        if notify:
            self._emit(collection, event, obj)
        return str(self.revision)

    def delete(self, plural: str, name: str, namespace: str = "", *, notify: bool = True) -> None:
        collection = self.collections[plural]
        obj = collection.objects.pop((namespace, name))
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        if notify:
            self._emit(collection, "DELETED", obj)

    def bookmark(self, plural: str) -> str:
        """A BOOKMARK at the current revision on every watch that asked for them."""
        collection = self.collections[plural]
        event = {
            "type": "BOOKMARK",
            "object": {
                "kind": collection.kind,
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.revision)},
            },
        }
        for watcher in collection.watchers:
            if watcher.bookmarks:
                watcher.queue.put_nowait(event)
        return str(self.revision)

    def drop_watches(self, plural: str) -> int:
        """Cut every open watch of ``plural`` mid-stream; returns how many."""
        watchers = self.collections[plural].watchers
        for watcher in watchers:
            watcher.queue.put_nowait(_DROP)
        return len(watchers)

    def send_gone(self, plural: str) -> None:
        """End open watches with an ERROR event carrying a 410 Status."""
        for watcher in self.collections[plural].watchers:
            watcher.queue.put_nowait(_GONE)

    def compact(self, plural: str) -> None:
        """Forget history: a watch from any resourceVersion before now gets 410."""
        collection = self.collections[plural]
        collection.compacted = self.revision
        collection.history.clear()

    def fail_next(self, plural: str, *codes: int) -> None:
        """Answer the next list/watch requests of ``plural`` with these HTTP codes."""
        self._failures[plural].extend(codes)

    def watching(self, plural: str) -> int:
        return len(self.collections[plural].watchers)

    def seen(self, plural: str, *, watch: bool) -> list[Seen]:
        return [
            r
            for r in self.requests
            if r.path == f"/api/v1/{plural}" and (r.query.get("watch") == "true") == watch
        ]

    # --- wire protocol ----------------------------------------------------------

    def _emit(self, collection: _Collection, event: str, obj: Obj) -> None:
        snapshot = copy.deepcopy(obj)
        collection.history.append((self.revision, event, snapshot))
        for watcher in collection.watchers:
            watcher.queue.put_nowait({"type": event, "object": snapshot})

    def _record(self, request: web.Request) -> None:
        self.requests.append(Seen(request.method, request.path, dict(request.query)))

    def _list_or_watch(self, plural: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            self._record(request)
            if self._failures[plural]:
                code = self._failures[plural].pop(0)
                return _status_response(code, "InternalError" if code >= 500 else "Expired", "")
            if request.query.get("watch") in ("true", "1"):
                return await self._watch(request, self.collections[plural])
            return self._list(request, self.collections[plural])

        return handle

    def _list(self, request: web.Request, collection: _Collection) -> web.Response:
        items = [collection.objects[key] for key in sorted(collection.objects)]
        start = 0
        revision = self.revision
        if token := request.query.get("continue"):
            state = json.loads(base64.b64decode(token))
            start, revision = state["start"], state["rv"]
        limit = int(request.query.get("limit", "0")) or len(items) or 1
        page = items[start : start + limit]
        metadata: Obj = {"resourceVersion": str(revision)}
        if start + limit < len(items):
            state = {"start": start + limit, "rv": revision}
            metadata["continue"] = base64.b64encode(json.dumps(state).encode()).decode()
        body = {
            "kind": f"{collection.kind}List",
            "apiVersion": "v1",
            "metadata": metadata,
            "items": [
                {k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in page
            ],
        }
        return web.json_response(body)

    async def _watch(self, request: web.Request, collection: _Collection) -> web.StreamResponse:
        since = int(request.query.get("resourceVersion") or self.revision)
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        watcher = _Watcher(asyncio.Queue(), request.query.get("allowWatchBookmarks") == "true")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(event: Obj) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        if since < collection.compacted:
            message = f"too old resource version: {since} ({collection.compacted})"
            await send({"type": "ERROR", "object": status(410, "Expired", message)})
            await response.write_eof()
            return response
        for revision, event, obj in collection.history:
            if revision > since:
                await send({"type": event, "object": obj})
        collection.watchers.append(watcher)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                if item is _DROP:
                    assert request.transport is not None
                    request.transport.abort()  # no terminating chunk: a broken stream
                    return response
                if item is _GONE:
                    await send({"type": "ERROR", "object": status(410, "Expired", "gone")})
                    break
                await send(item)
        finally:
            collection.watchers.remove(watcher)
        await response.write_eof()
        return response

    def _read(self, plural: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def read(request: web.Request) -> web.Response:
            self._record(request)
            if self.read_delay:
                await asyncio.sleep(self.read_delay)
            name = request.match_info["name"]
            key = (request.match_info.get("namespace", ""), name)
            obj = self.collections[plural].objects.get(key)
            if obj is None:
                return _status_response(404, "NotFound", f'{plural} "{name}" not found')
            return web.json_response(obj)

        return read

    async def _configs(self, request: web.Request) -> web.Response:
        self._record(request)
        plural = request.match_info["plural"]
        if plural not in self.configurations:
            return _status_response(404, "NotFound", "the server could not find the resource")
        store = self.configurations[plural]
        name = request.match_info.get("name")
        if request.method == "GET" and name:
            if name not in store:
                return _status_response(404, "NotFound", f'{plural} "{name}" not found')
            return web.json_response(store[name])
        if request.method == "POST" and not name:
            obj = await request.json()
            name = obj["metadata"]["name"]
            if name in store:
                return _status_response(409, "AlreadyExists", f'{plural} "{name}" already exists')
            return web.json_response(self._store(store, obj), status=201)
        if request.method == "PUT" and name:
            obj = await request.json()
            current = store.get(name)
            if current is None:
                return _status_response(404, "NotFound", f'{plural} "{name}" not found')
            if obj["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return _status_response(409, "Conflict", "the object has been modified")
            return web.json_response(self._store(store, obj))
        if request.method == "DELETE" and name:
            if store.pop(name, None) is None:
                return _status_response(404, "NotFound", f'{plural} "{name}" not found')
            return web.json_response({**status(200, "", ""), "status": "Success"})
        return _status_response(405, "MethodNotAllowed", "not supported by this stand-in")

    def _store(self, store: dict[str, Obj], obj: Obj) -> Obj:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        store[obj["metadata"]["name"]] = obj
        return obj


class ThreadedApi:
    """The stand-in API on its own loop, so the tests can block on HTTPS calls."""

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        # Open watch streams would hold a graceful shutdown for a minute.
        self.runner = web.AppRunner(fake.app, shutdown_timeout=0.5)
        self.stopped = False
        self._call(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._call(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def put(self, plural: str, obj: Obj) -> None:
        """``fake.put`` on the API's own loop (its watch queues are not thread-safe)."""

        async def put() -> None:
            self.fake.put(plural, obj)

        self._call(put())

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._call(self.runner.cleanup())
        self._call(_cancel_the_rest())  # watch handlers still waiting on their queues
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _cancel_the_rest() -> None:
    rest = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "fake", "user": {"token": "not-checked"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    return path
