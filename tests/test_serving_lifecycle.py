"""The server's life under load (SPEC §5, §7): SIGTERM with a grace period, policy hot reload.

A client thread keeps sending reviews to the real ``python -m webhook serve``
process while it is told to stop, or while its policy file is replaced the
ways a ConfigMap mount and an editor replace it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import podkit
from tests.conftest import Server, start_server
from tests.serving_kit import (
    AtomicVolume,
    LoadClient,
    Outcome,
    check_review,
    log_records,
    patched_pod,
    readyz_status,
    review_body,
    running_load,
    scrape,
    series,
    value,
    wait_for,
)
from webhook.policy import default_policy, dump_policy, load_policy_text

pytestmark = pytest.mark.slow

GRACE = 2.0


@dataclass
class Termination:
    """What a SIGTERM under load looked like from the clients' side."""

    signalled: float  # time.monotonic() of the SIGTERM
    unready_after: float  # seconds until /readyz answered 503
    exit_code: int
    exited_after: float  # seconds until the process was gone
    in_flight_reply: tuple[int, Any]  # the request whose body straddled the grace's end
    outcomes: list[Outcome]


def test_sigterm_turns_unready_serves_through_the_grace_finishes_in_flight_and_exits_0(
    tmp_path: Path,
) -> None:
    server = start_server(tmp_path / "run", "--shutdown-grace", str(GRACE))
    try:
        run = terminate_under_load(server)
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)

    grace_end = run.signalled + GRACE
    # every request sent during the grace (less a margin for the listener's close) is served
    during = [o for o in run.outcomes if run.signalled <= o.started <= grace_end - 0.3]
    failed = [(o.channel, o.problem) for o in during if o.problem]
    refused_after = [
        o for o in run.outcomes if o.started > grace_end and "Refused" in (o.error or "")
    ]
    print(
        f"\nSIGTERM: /readyz 503 after {run.unready_after * 1000:.0f} ms; {len(during)} "
        f"requests sent during the {GRACE:g} s grace, {len(failed)} failed; exit "
        f"{run.exit_code} after {run.exited_after:.2f} s"
    )
    assert run.unready_after < 0.5
    assert failed == []
    assert len([o for o in during if o.channel == "new"]) >= 20
    assert len([o for o in during if o.channel == "kept"]) >= 20
    assert refused_after, "new connections should be refused once the grace is over"
    status, answer = run.in_flight_reply
    assert status == 200, answer
    assert check_review(answer, "in-flight") is None
    assert run.exit_code == 0
    assert GRACE <= run.exited_after < GRACE + 3.0
    messages = [r.get("msg", "") for r in log_records(server)]
    assert any(m.startswith("shutdown requested") for m in messages)
    assert messages[-1] == "stopped"


def terminate_under_load(server: Server) -> Termination:
    in_flight = review_body("in-flight")
    with running_load(LoadClient(server.port, server.context(), pause=0.002)) as load:
        load.wait_for_requests(10)
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: readyz_status(server) == 503, 2.0, "/readyz to answer 503", 0.01)
        unready_after = time.monotonic() - signalled

        # A request still arriving when the grace ends: headers and the start of its
        # body now, the rest once the listener has closed.
        time.sleep(max(0.0, signalled + GRACE - 0.4 - time.monotonic()))
        slow = server.context().wrap_socket(
            socket.create_connection(("127.0.0.1", server.port), timeout=10),
            server_hostname="127.0.0.1",
        )
        with slow:
            slow.sendall(
                b"POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(in_flight)}\r\n\r\n".encode()
                + in_flight[:20]
            )
            wait_for(
                lambda: any(
                    o.started > signalled + GRACE and "Refused" in (o.error or "")
                    for o in list(load.outcomes)
                ),
                3.0,
                "the listener to close after the grace",
            )
            slow.sendall(in_flight[20:])
            reply = read_http_response(slow)
        exit_code = server.process.wait(timeout=GRACE + 15)
        exited_after = time.monotonic() - signalled
    return Termination(signalled, unready_after, exit_code, exited_after, reply, load.outcomes)


def read_http_response(sock: Any) -> tuple[int, Any]:
    """Status and JSON body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, json.loads(body)


# --------------------------------------------------------------------------- policy reload

GENERATION = "task-pod-webhook/policy-generation"


def policy_yaml(generation: str) -> bytes:
    document = yaml.safe_load(dump_policy(default_policy()))
    document["labels"]["set"] = {"task-pod-webhook/enforced": "true", GENERATION: generation}
    text = yaml.safe_dump(document, sort_keys=False)
    load_policy_text(text)  # a valid policy, or this test is wrong
    return text.encode()


def generation_of(outcome: Outcome, pod: dict[str, Any]) -> str | None:
    labels = patched_pod(pod, outcome.answer)["metadata"]["labels"]
    value: str | None = labels.get(GENERATION)
    return value


def test_policy_swaps_under_load_apply_to_the_next_requests(tmp_path: Path) -> None:
    pod = podkit.pod()
    configmap = AtomicVolume(tmp_path / "configmap")
    configmap.publish({"policy.yaml": policy_yaml("1")})
    server = start_server(
        tmp_path / "run",
        "--policy",
        str(configmap.file("policy.yaml")),
        "--shutdown-grace",
        "0.2",
    )
    changes: list[tuple[str, float]] = []
    try:
        with running_load(LoadClient(server.port, server.context(), pod=pod)) as load:
            load.wait_for_requests(10)

            def first_with(generation: str, since: float) -> Outcome:
                def found() -> Outcome | None:
                    for outcome in list(load.outcomes):
                        if (
                            outcome.started >= since
                            and outcome.problem is None
                            and generation_of(outcome, pod) == generation
                        ):
                            return outcome
                    return None

                result: Outcome = wait_for(found, 5.0, f"policy generation {generation}")
                return result

            # an editor's save: write a temporary file, rename it over the policy
            target = configmap.file("policy.yaml").resolve()
            staged = target.with_name(".policy.yaml.tmp")
            staged.write_bytes(policy_yaml("2"))
            changes.append(("2", time.monotonic()))
            os.replace(staged, target)
            switched_2 = first_with("2", changes[-1][1])

            # a ConfigMap update: a new ..data directory swapped in by a symlink rename
            changes.append(("3", time.monotonic()))
            configmap.publish({"policy.yaml": policy_yaml("3")})
            switched_3 = first_with("3", changes[-1][1])
            load.wait_for_requests(20, since=switched_3.finished)

            # an invalid policy: logged, counted, and the policy in force stays
            before = value(
                scrape(server.metrics_port), "tpw_policy_reloads_total", result="failure"
            )
            broken = time.monotonic()
            configmap.publish({"policy.yaml": b"labels:\n  action: sometimes\n  sett: {}\n"})
            wait_for(
                lambda: (
                    value(scrape(server.metrics_port), "tpw_policy_reloads_total", result="failure")
                    == before + 1
                ),
                5.0,
                "the invalid policy to be refused",
            )
            load.wait_for_requests(20, since=time.monotonic())
            samples = scrape(server.metrics_port)
        outcomes = load.outcomes
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()

    failures = [(o.channel, o.problem) for o in outcomes if o.problem]
    generations = [(o.started, o.finished, generation_of(o, pod)) for o in outcomes]
    latency_2 = switched_2.started - changes[0][1]
    latency_3 = switched_3.started - changes[1][1]
    print(
        f"\npolicy: {len(outcomes)} requests, {len(failures)} failed; new label seen "
        f"{latency_2 * 1000:.0f} ms after the rename, {latency_3 * 1000:.0f} ms after the "
        "..data swap (reload interval 200 ms)"
    )
    assert failures == []
    assert before == 0
    assert latency_2 < 2.0
    assert latency_3 < 2.0
    # once a generation is seen, every request that starts later follows it (or a newer one)
    for generation, switched in (("2", switched_2), ("3", switched_3)):
        later = {g for started, _, g in generations if started >= switched.finished}
        assert later <= {generation, "3"}, (generation, later)
    before_any_change = {g for _, finished, g in generations if finished <= changes[0][1]}
    assert before_any_change == {"1"}
    after_invalid = [g for started, _, g in generations if started >= broken]
    assert len(after_invalid) >= 40
    assert set(after_invalid) == {"3"}

    assert value(samples, "tpw_policy_reloads_total", result="success") == 2
    assert value(samples, "tpw_policy_reloads_total", result="failure") == 1
    in_force = load_policy_text(policy_yaml("3").decode()).content_hash
    assert series(samples, "tpw_policy_info") == {frozenset({("hash", in_force)}): 1.0}
    assert {o.answer["response"]["auditAnnotations"]["policy-hash"] for o in outcomes} == {
        load_policy_text(policy_yaml(g).decode()).content_hash for g in "123"
    }
    failures_logged = [
        r for r in log_records(server) if r.get("msg", "").startswith("policy reload failed")
    ]
    assert len(failures_logged) == 1
    errors = " ".join(failures_logged[0]["errors"])
    assert "labels.action" in errors
    assert "labels.sett" in errors
    assert failures_logged[0]["policy_hash"] == in_force
