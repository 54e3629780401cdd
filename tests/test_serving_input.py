"""Hostile input against the real server (SPEC §7): refusals, odd shapes, fuzzing, slow bodies.

Bad input never crashes the process and never yields a 5xx: a body that is not
an AdmissionReview is an HTTP 4xx with a JSON error body; a review of a pod of
unexpected shape is HTTP 200 with ``allowed: false`` naming the field. The
server is one process for the whole module; its memory is measured over a
couple of thousand hostile requests.
"""

from __future__ import annotations

import copy
import http.client
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import podkit
from tests.conftest import Server, start_server
from tests.serving_kit import (
    JSON_HEADERS,
    check_review,
    exchange,
    https_connection,
    log_records,
    rss_kib,
    scrape,
    value,
)
from webhook.serving.settings import MAX_BODY_BYTES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("hostile"), "--shutdown-grace", "0.2")
    yield server
    assert server.stop() == 0


class Client:
    """One kept-alive connection for many requests; re-opened only when the server says so.

    A dropped connection is a failure here (raised), never retried: a bug must not
    show as a hang-up."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection: http.client.HTTPSConnection | None = None
        self.reopened = 0

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.connection is None:
            self.connection = https_connection(self.server.port, self.server.context(), 10.0)
        try:
            status, response_headers, data = exchange(self.connection, method, path, body, headers)
        except BaseException:
            self.close()
            raise
        if response_headers.get("connection", "").lower() == "close":
            self.close()
            self.reopened += 1
        return status, response_headers, data

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def assert_json_error(status: int, data: bytes, expected: int) -> dict[str, Any]:
    body = json.loads(data)
    assert status == expected, body
    assert isinstance(body, dict)
    assert body.get("status") == expected
    assert isinstance(body.get("error"), str)
    assert body["error"]
    return body


def raw_exchange(server: Server, head: bytes, body_parts: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a hand-written request over TLS and read one response (status, body)."""
    sock = server.context().wrap_socket(
        socket.create_connection(("127.0.0.1", server.port), timeout=10),
        server_hostname="127.0.0.1",
    )
    with sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


# --------------------------------------------------------------------------- refusals

VALID = podkit.review(podkit.pod())


def without_uid() -> bytes:
    review = copy.deepcopy(VALID)
    del review["request"]["uid"]
    return json.dumps(review).encode()


def with_request(request: Any) -> bytes:
    return json.dumps({**VALID, "request": request}).encode()


class Refusal(NamedTuple):
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    expected: int


DEPTH = 100_000
REFUSALS = [
    Refusal("GET on /mutate", "GET", "/mutate", {}, None, 405),
    Refusal("PUT on /validate", "PUT", "/validate", JSON_HEADERS, b"{}", 405),
    Refusal("DELETE on /mutate", "DELETE", "/mutate", {}, None, 405),
    Refusal("POST on /healthz", "POST", "/healthz", JSON_HEADERS, b"{}", 405),
    Refusal("unknown path", "POST", "/admit", JSON_HEADERS, b"{}", 404),
    Refusal("text/plain", "POST", "/mutate", {"Content-Type": "text/plain"}, json.dumps(VALID).encode(), 415),
    Refusal("no content type", "POST", "/validate", {}, json.dumps(VALID).encode(), 415),
    Refusal("form content type", "POST", "/mutate", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=b", 415),
    Refusal("empty body", "POST", "/mutate", JSON_HEADERS, b"", 400),
    Refusal("invalid JSON", "POST", "/mutate", JSON_HEADERS, b'{"apiVersion": ', 400),
    Refusal("not UTF-8", "POST", "/mutate", JSON_HEADERS, b'{"a": "\xff\xfe"}', 400),
    Refusal("NaN", "POST", "/mutate", JSON_HEADERS, b'{"a": NaN}', 400),
    Refusal("JSON array", "POST", "/mutate", JSON_HEADERS, json.dumps([VALID]).encode(), 400),
    Refusal("JSON string", "POST", "/validate", JSON_HEADERS, b'"AdmissionReview"', 400),
    Refusal("JSON null", "POST", "/mutate", JSON_HEADERS, b"null", 400),
    Refusal("a Pod, not a review", "POST", "/mutate", JSON_HEADERS, json.dumps(podkit.pod()).encode(), 400),
    Refusal("unknown apiVersion", "POST", "/mutate", JSON_HEADERS, json.dumps({**VALID, "apiVersion": "admission.k8s.io/v2"}).encode(), 400),
    Refusal("no request", "POST", "/mutate", JSON_HEADERS, json.dumps({"apiVersion": VALID["apiVersion"], "kind": "AdmissionReview"}).encode(), 400),
    Refusal("request is a list", "POST", "/mutate", JSON_HEADERS, with_request([]), 400),
    Refusal("missing uid", "POST", "/mutate", JSON_HEADERS, without_uid(), 400),
    Refusal("uid is a number", "POST", "/validate", JSON_HEADERS, with_request({**VALID["request"], "uid": 7}), 400),
    Refusal("operation is a list", "POST", "/mutate", JSON_HEADERS, with_request({**VALID["request"], "operation": ["CREATE"]}), 400),
    Refusal("userInfo is a string", "POST", "/mutate", JSON_HEADERS, with_request({**VALID["request"], "userInfo": "admin"}), 400),
    Refusal("100000 nested arrays", "POST", "/mutate", JSON_HEADERS, b"[" * DEPTH + b"]" * DEPTH, 400),
    Refusal("100000 nested objects", "POST", "/mutate", JSON_HEADERS, b'{"a":' * DEPTH + b"1" + b"}" * DEPTH, 400),
    Refusal("nesting inside a review", "POST", "/mutate", JSON_HEADERS, json.dumps({**VALID, "x": 1})[:-1].encode() + b', "deep": ' + b"[" * DEPTH + b"]" * DEPTH + b"}", 400),
]  # fmt: skip


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
def test_refusals_are_4xx_with_a_json_error_body(hostile: Server, refusal: Refusal) -> None:
    connection = https_connection(hostile.port, hostile.context())
    try:
        status, headers, data = exchange(
            connection, refusal.method, refusal.path, refusal.body, refusal.headers
        )
    finally:
        connection.close()
    assert headers["content-type"].startswith("application/json")
    assert_json_error(status, data, refusal.expected)
    if refusal.expected == 405:
        assert headers["allow"] == ("GET" if refusal.path == "/healthz" else "POST")


def test_body_over_7_mib_is_413_from_its_content_length(hostile: Server) -> None:
    """Refused from the header alone: the server does not wait for 7 MiB it will not read."""
    head = (
        "POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    status, data = raw_exchange(hostile, head, iter([b" " * 4096]))
    body = assert_json_error(status, data, 413)
    assert str(MAX_BODY_BYTES) in body["error"]


def test_whole_body_over_7_mib_is_413(hostile: Server) -> None:
    connection = https_connection(hostile.port, hostile.context(), timeout=20)
    body = b" " * (MAX_BODY_BYTES + 1)
    try:
        status, _, data = exchange(connection, "POST", "/validate", body, JSON_HEADERS)
    finally:
        connection.close()
    assert_json_error(status, data, 413)


def test_chunked_body_over_7_mib_is_413(hostile: Server) -> None:
    """No Content-Length: the server counts while reading and stops at the limit."""
    head = (
        b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b" " * (256 * 1024)
    count = MAX_BODY_BYTES // len(chunk) + 1  # 7 MiB + 256 KiB
    parts = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(count))
    status, data = raw_exchange(hostile, head, parts)
    assert_json_error(status, data, 413)


def test_chunked_body_under_the_limit_is_served(hostile: Server) -> None:
    body = json.dumps(podkit.review(podkit.pod(), uid="chunked")).encode()
    connection = https_connection(hostile.port, hostile.context())
    try:
        status, _, data = exchange(
            connection, "POST", "/mutate", iter([body[:100], body[100:]]), JSON_HEADERS
        )
    finally:
        connection.close()
    assert status == 200
    assert check_review(json.loads(data), "chunked") is None


# --------------------------------------------------------------------------- odd shapes


def shaped(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    pod = podkit.pod(
        podkit.container(ports=[{"containerPort": 8080}], securityContext={"capabilities": {}}),
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    change(pod)
    return pod


def set_in(*path: Any) -> Callable[[Any], Callable[[dict[str, Any]], None]]:
    def with_value(value: Any) -> Callable[[dict[str, Any]], None]:
        def change(pod: dict[str, Any]) -> None:
            target: Any = pod
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value

        return change

    return with_value


def append_to(*path: Any) -> Callable[[Any], Callable[[dict[str, Any]], None]]:
    def with_value(value: Any) -> Callable[[dict[str, Any]], None]:
        def change(pod: dict[str, Any]) -> None:
            target: Any = pod
            for key in path:
                target = target[key]
            target.append(value)

        return change

    return with_value


SHAPES = [
    pytest.param(set_in("spec", "containers")("base"), "spec.containers", id="containers is a string"),
    pytest.param(set_in("spec", "containers")({"name": "base"}), "spec.containers", id="containers is an object"),
    pytest.param(set_in("spec", "containers", 0, "ports", 0, "hostPort")("80"), "spec.containers[0].ports[0].hostPort", id="hostPort is a string"),
    pytest.param(set_in("spec", "containers", 0, "resources")({"limits": ["cpu"]}), "spec.containers[0].resources.limits", id="limits is a list"),
    pytest.param(set_in("spec", "containers", 0, "resources")({"requests": {"cpu": [1]}}), "spec.containers[0].resources.requests", id="a quantity is a list"),
    pytest.param(set_in("spec", "containers", 0, "securityContext")("privileged"), "spec.containers[0].securityContext", id="securityContext is a string"),
    pytest.param(set_in("spec", "containers", 0, "securityContext", "privileged")("yes"), "spec.containers[0].securityContext.privileged", id="privileged is a string"),
    pytest.param(set_in("spec", "containers", 0, "securityContext", "capabilities", "add")("ALL"), "spec.containers[0].securityContext.capabilities.add", id="capabilities.add is a string"),
    pytest.param(set_in("spec", "volumes")({"scratch": {}}), "spec.volumes", id="volumes is an object"),
    pytest.param(set_in("spec", "volumes", 0)("scratch"), "spec.volumes[0]", id="a volume is a string"),
    pytest.param(set_in("spec", "securityContext")([]), "spec.securityContext", id="pod securityContext is a list"),
    pytest.param(set_in("spec", "serviceAccountName")(["default"]), "spec.serviceAccountName", id="serviceAccountName is a list"),
    pytest.param(set_in("spec")("a pod"), "spec", id="spec is a string"),
    pytest.param(set_in("metadata", "labels")(["kubernetes_executor"]), "metadata.labels", id="labels is a list"),
    pytest.param(set_in("metadata")("task-pod"), "metadata", id="metadata is a string"),
    pytest.param(append_to("spec", "containers")(None), "spec.containers[1]", id="a null container"),
    pytest.param(append_to("spec", "volumes")(None), "spec.volumes[1]", id="a null volume"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "field"), SHAPES)
def test_unexpected_shapes_are_denied_naming_the_field(
    hostile: Server, change: Callable[[dict[str, Any]], None], field: str
) -> None:
    uid = f"shape-{field}"
    pod = shaped(change)
    answer = hostile.review(podkit.review(pod, uid=uid))  # asserts HTTP 200
    assert check_review(answer, uid) is None
    response = answer["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403, response["status"]
    assert f"- {field}" in response["status"]["message"]


# --------------------------------------------------------------------------- fuzzing

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=25,
)


def rich_review() -> dict[str, Any]:
    pod = podkit.pod(
        podkit.container(
            ports=[{"containerPort": 8080, "hostPort": 8080}],
            env=[{"name": "A", "value": "b"}],
            resources={"limits": {"cpu": "2", "memory": "1Gi"}},
            securityContext={"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}},
        ),
        annotations={"dag_id": "example"},
        initContainers=[podkit.container("init")],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}],
        securityContext={"runAsUser": 0},
        serviceAccountName="airflow-worker",
    )
    return podkit.review(pod, uid="fuzz")


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, (*prefix, index))


RICH = rich_review()
RICH_PATHS = [path for path in paths_of(RICH) if path]


def check_answer(status: int, data: bytes, sent: Any) -> None:
    assert status < 500
    body = json.loads(data)  # always JSON
    if status == 200:
        request = sent.get("request") if isinstance(sent, dict) else None
        assert isinstance(request, dict)
        assert check_review(body, request["uid"]) is None
    else:
        assert body["status"] == status


@pytest.fixture(scope="module")
def fuzz_client(hostile: Server) -> Iterator[Client]:
    client = Client(hostile)
    yield client
    client.close()


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(body=json_values, path=st.sampled_from(["/mutate", "/validate"]))
def test_random_json_never_yields_5xx(fuzz_client: Client, body: Any, path: str) -> None:
    data = json.dumps(body).encode()
    status, _, answer = fuzz_client.send("POST", path, data, JSON_HEADERS)
    check_answer(status, answer, body)


@FUZZ
@given(
    path=st.sampled_from(RICH_PATHS),
    replacement=json_values,
    delete=st.booleans(),
    endpoint=st.sampled_from(["/mutate", "/validate"]),
    operation=st.sampled_from(["CREATE", "UPDATE"]),
)
def test_mutated_reviews_never_yield_5xx(
    fuzz_client: Client,
    *,
    path: tuple[Any, ...],
    replacement: Any,
    delete: bool,
    endpoint: str,
    operation: str,
) -> None:
    review = copy.deepcopy(RICH)
    review["request"]["operation"] = operation
    if operation == "UPDATE":
        review["request"]["oldObject"] = copy.deepcopy(RICH["request"]["object"])
    target: Any = review
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    data = json.dumps(review).encode()
    status, _, answer = fuzz_client.send("POST", endpoint, data, JSON_HEADERS)
    check_answer(status, answer, review)


# --------------------------------------------------------------------------- slow clients


def test_slow_partial_bodies_do_not_block_other_clients(hostile: Server) -> None:
    before = scrape(hostile.metrics_port)
    slow = []
    for _ in range(8):
        sock = hostile.context().wrap_socket(
            socket.create_connection(("127.0.0.1", hostile.port), timeout=10),
            server_hostname="127.0.0.1",
        )
        sock.sendall(
            b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"apiVersion": '
        )
        slow.append(sock)
    try:
        timings = []
        for index in range(20):
            started = time.monotonic()
            answer = hostile.review(podkit.review(podkit.pod(), uid=f"meanwhile-{index}"))
            timings.append(time.monotonic() - started)
            assert check_review(answer, f"meanwhile-{index}") is None
        print(f"\nslow bodies: 8 open; 20 other requests, slowest {max(timings) * 1000:.0f} ms")
        assert max(timings) < 1.0
    finally:
        for sock in slow:
            sock.close()
    time.sleep(0.3)  # the server notices the hang-ups
    after = scrape(hostile.metrics_port)
    assert hostile.process.poll() is None
    # a client that hangs up mid-body is not a bug of ours
    assert value(after, "tpw_internal_errors_total") == value(before, "tpw_internal_errors_total")
    assert "unexpected error" not in hostile.log()


# --------------------------------------------------------------------------- memory


def hostile_requests(count: int) -> Iterator[tuple[str, str, dict[str, str], bytes | None]]:
    """A cycle through the catalogue: refusals, odd shapes, big and valid reviews."""
    big_pod = podkit.pod(
        *(
            podkit.container(f"c{i}", env=[{"name": f"V{j}", "value": "x" * 50} for j in range(50)])
            for i in range(20)
        )
    )
    annotated = podkit.pod(annotations={"blob": "x" * 1_000_000})
    shapes = [shaped(param.values[0]) for param in SHAPES if not param.marks]  # type: ignore[arg-type]
    kinds: list[tuple[str, str, dict[str, str], bytes | None]] = [
        (r.method, r.path, r.headers, r.body) for r in REFUSALS
    ]
    kinds += [
        ("POST", "/mutate", JSON_HEADERS, json.dumps(podkit.review(pod)).encode()) for pod in shapes
    ]
    kinds += [
        ("POST", "/mutate", JSON_HEADERS, json.dumps(podkit.review(big_pod)).encode()),
        ("POST", "/validate", JSON_HEADERS, json.dumps(podkit.review(annotated)).encode()),
        ("POST", "/mutate", JSON_HEADERS, json.dumps(rich_review()).encode()),
    ]
    for index in range(count):
        yield kinds[index % len(kinds)]


def test_memory_stays_flat_over_2000_hostile_requests(hostile: Server) -> None:
    pid = hostile.process.pid
    client = Client(hostile)
    try:
        for method, path, headers, body in hostile_requests(300):  # warm up caches and pools
            status, _, _ = client.send(method, path, body, headers)
            assert status < 500
        baseline = rss_kib(pid)
        started = time.monotonic()
        statuses: dict[int, int] = {}
        for method, path, headers, body in hostile_requests(2000):
            status, _, data = client.send(method, path, body, headers)
            assert status < 500, data[:200]
            json.loads(data)
            statuses[status] = statuses.get(status, 0) + 1
        took = time.monotonic() - started
        grown = rss_kib(pid) - baseline
    finally:
        client.close()
    print(
        f"\nmemory: VmRSS {baseline / 1024:.1f} MiB before 2000 hostile requests, grew by "
        f"{grown / 1024:+.1f} MiB ({took:.1f} s; statuses {dict(sorted(statuses.items()))}; "
        f"{client.reopened} connections closed by the server)"
    )
    assert hostile.process.poll() is None
    assert hostile.request("GET", "/healthz")[0] == 200
    assert grown < 30 * 1024
    assert set(statuses) <= {200, 400, 404, 405, 415}


# --------------------------------------------------------------------------- logs

SECRET = "hunter2-secret-value"


def test_one_json_log_line_per_decision_without_env_values(hostile: Server) -> None:
    pod = podkit.pod(podkit.container(env=[{"name": "SECRET", "value": SECRET}]))
    denied = copy.deepcopy(pod)
    denied["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}]
    for uid, obj, path in (
        ("logged-patched", pod, "/mutate"),
        ("logged-denied", denied, "/validate"),
    ):
        review = podkit.review(obj, uid=uid, namespace="team-a")
        review["request"]["name"] = obj["metadata"]["name"] = "logged-pod"
        hostile.review(review, path)
    time.sleep(0.2)  # the log line is written after the response
    records = {
        r["decision"]["uid"]: r["decision"]
        for r in log_records(hostile)
        if isinstance(r.get("decision"), dict)
    }
    lines = [line for line in hostile.log().splitlines() if '"logged-patched"' in line]
    assert len(lines) == 1
    patched = records["logged-patched"]
    assert patched["namespace"] == "team-a"
    assert patched["pod"] == "logged-pod"
    assert patched["decision"] == "patched"
    assert patched["endpoint"] == "mutate"
    assert patched["operation"] == "CREATE"
    assert patched["rules"] == list(podkit.run(pod, namespace="team-a").rules)
    assert patched["rules"]
    assert isinstance(patched["durationMs"], (int, float))
    assert patched["durationMs"] >= 0
    assert records["logged-denied"]["decision"] == "denied"
    assert "volumes" in records["logged-denied"]["rules"]
    assert SECRET not in hostile.log()


def test_the_server_survived_the_module(hostile: Server) -> None:
    assert hostile.process.poll() is None
    assert hostile.request("GET", "/readyz")[0] == 200
    # no bug of the serving layer (the middleware's or past the decision) was hit
    assert "unexpected error" not in hostile.log()
    assert "answering the review failed" not in hostile.log()
