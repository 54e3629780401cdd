"""The metrics port (SPEC §7): exact counts for a known set of requests to a fresh server."""

from __future__ import annotations

import copy
import signal
from pathlib import Path

import jsonpatch
import pytest

from tests import podkit
from tests.conftest import ROOT, start_server
from tests.serving_kit import (
    JSON_HEADERS,
    AtomicVolume,
    certificate_of,
    exchange,
    https_connection,
    scrape,
    series,
    try_scrape,
    value,
    wait_for,
)

pytestmark = pytest.mark.slow


def test_metrics_count_exactly_what_was_answered(tmp_path: Path) -> None:
    server = start_server(tmp_path / "run", "--shutdown-grace", "0.2")
    try:
        fresh = scrape(server.metrics_port)
        pod = podkit.pod()
        hash_in_force = ""
        for index in range(3):
            answer = server.review(podkit.review(pod, uid=f"patched-{index}"))
            assert answer["response"]["allowed"] is True
            assert "patch" in answer["response"]
            hash_in_force = answer["response"]["auditAnnotations"]["policy-hash"]
        with_pvc = copy.deepcopy(pod)
        with_pvc["spec"]["volumes"] = [
            {"name": "data", "persistentVolumeClaim": {"claimName": "x"}}
        ]
        for index in range(2):
            answer = server.review(podkit.review(with_pvc, uid=f"denied-{index}"))
            assert answer["response"]["allowed"] is False
        conforming = jsonpatch.apply_patch(pod, podkit.run(pod).patch)  # as admitted
        answer = server.review(podkit.review(conforming, uid="validated"), "/validate")
        assert answer["response"]["allowed"] is True
        connection = https_connection(server.port, server.context())
        try:
            status = exchange(connection, "POST", "/mutate", b"[]", JSON_HEADERS)[0]
        finally:
            connection.close()
        assert status == 400
        samples = scrape(server.metrics_port)
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()

    assert series(fresh, "tpw_admission_requests_total") == {}
    base = ("profile", "base")  # the policy has no profiles (tests/test_serving_profiles.py)
    assert series(samples, "tpw_admission_requests_total") == {
        frozenset(
            {("webhook", "mutate"), ("operation", "CREATE"), ("decision", "patched"), base}
        ): 3.0,
        frozenset(
            {("webhook", "mutate"), ("operation", "CREATE"), ("decision", "denied"), base}
        ): 2.0,
        frozenset(
            {("webhook", "validate"), ("operation", "CREATE"), ("decision", "allowed"), base}
        ): 1.0,
    }
    assert series(samples, "tpw_violations_total") == {frozenset({("rule", "volumes")}): 2.0}
    assert series(samples, "tpw_mutations_total") == {
        frozenset({("rule", "labels")}): 3.0,
        frozenset({("rule", "resources")}): 3.0,
        frozenset({("rule", "security-context")}): 3.0,
    }
    assert series(samples, "tpw_http_errors_total") == {frozenset({("status", "400")}): 1.0}
    assert value(samples, "tpw_internal_errors_total") == 0
    assert value(samples, "tpw_admission_duration_seconds_count", webhook="mutate") == 5
    assert value(samples, "tpw_admission_duration_seconds_count", webhook="validate") == 1
    assert value(samples, "tpw_admission_duration_seconds_bucket", webhook="mutate", le="+Inf") == 5
    assert 0 < value(samples, "tpw_admission_duration_seconds_sum", webhook="mutate") < 5
    assert value(samples, "tpw_admission_in_flight") == 0
    assert value(samples, "tpw_ready") == 1
    assert value(samples, "tpw_policy_last_reload_successful") == 1
    not_after = certificate_of(server.workdir / "certs" / "tls.crt").not_valid_after_utc
    assert value(samples, "tpw_certificate_expiry_timestamp_seconds") == not_after.timestamp()
    assert series(samples, "tpw_policy_info") == {frozenset({("hash", hash_in_force)}): 1.0}
    assert f"(hash {hash_in_force})" in server.log()  # the banner names the same policy
    assert series(samples, "tpw_policy_reloads_total") == {}
    assert series(samples, "tpw_certificate_reloads_total") == {}
    counted = {
        f"{name}{{{','.join(f'{k}={v}' for k, v in sorted(labels))}}}": v
        for (name, labels), v in sorted(samples.items(), key=str)
        if name.endswith("_total") or name.endswith("_count")
    }
    print(f"\nmetrics: {counted}")


def test_readiness_and_policy_reload_gauges_follow_the_server(tmp_path: Path) -> None:
    """``tpw_ready`` mirrors /readyz (down at SIGTERM); ``tpw_policy_last_reload_successful``
    turns 0 on a refused policy and back to 1 on the next good one (what the alerts read)."""
    configmap = AtomicVolume(tmp_path / "policy")
    good = (ROOT / "manifests" / "base" / "policy.yaml").read_bytes()
    configmap.publish({"policy.yaml": good})
    policy = str(configmap.file("policy.yaml"))
    server = start_server(tmp_path / "run", "--policy", policy, "--shutdown-grace", "3")

    def gauges() -> tuple[float, float] | None:
        samples = try_scrape(server.metrics_port)
        if samples is None:
            return None
        return value(samples, "tpw_ready"), value(samples, "tpw_policy_last_reload_successful")

    try:
        assert gauges() == (1, 1)
        configmap.publish({"policy.yaml": b"labels:\n  action: sometimes\n"})
        wait_for(lambda: gauges() == (1, 0), 5.0, "the refused policy to show")
        configmap.publish({"policy.yaml": good + b"# touched\n"})
        wait_for(lambda: gauges() == (1, 1), 5.0, "the good policy to show")
        server.process.send_signal(signal.SIGTERM)
        # the metrics port keeps serving through the grace period, reporting not ready
        wait_for(lambda: gauges() == (0, 1), 2.5, "not ready after SIGTERM")
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()
