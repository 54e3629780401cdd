"""Profiles through the real server (SPEC §12): selection by the labels in the namespace
cache, a relabel switching the profile, the profile in metrics and the log line, and
the refusal to run profiles without API access (at start and on a hot reload).

The API is ``tests/fake_apiserver.py`` (the list/watch wire format only); the
``serve`` process, its kubernetes client and watch threads, TLS and HTTP are real.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, Server, run_cli, start_server
from tests.fake_apiserver import FakeApiServer, ThreadedApi, write_kubeconfig
from tests.podkit import container, decoded_patch, pod, review
from tests.serving_kit import log_records, scrape, series, wait_for

pytestmark = pytest.mark.slow

POLICY = FIXTURES / "profiles-policy.yaml"
SIZE = "tenants.example/size"


def _namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name, **labels}}}


@pytest.fixture(scope="module")
def api() -> Iterator[ThreadedApi]:
    fake = FakeApiServer()
    fake.put("namespaces", _namespace("team-a", **{SIZE: "large"}))
    fake.put("namespaces", _namespace("team-b", **{SIZE: "small"}))
    fake.put("namespaces", _namespace("team-c"))
    running = ThreadedApi(fake)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def profile_server(api: ThreadedApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("profile-server")
    kubeconfig = write_kubeconfig(workdir / "kubeconfig", api.url)
    server = start_server(
        workdir, "--kubeconfig", str(kubeconfig), "--policy", str(POLICY), kube=True
    )
    yield server
    server.stop()


def _big_pod(namespace: str, account: str = "default") -> dict[str, Any]:
    subject = pod(
        container(resources={"limits": {"cpu": "40"}, "requests": {"cpu": "40"}}),
        serviceAccountName=account,
    )
    subject["metadata"]["namespace"] = namespace
    return review(subject, namespace=namespace, uid=f"uid-{namespace}")


def _patched(response: dict[str, Any]) -> dict[str, Any]:
    return {op["path"]: op.get("value") for op in decoded_patch(response)}


def _cpu_limit(response: dict[str, Any]) -> str:
    return str(_patched(response)["/spec/containers/0/resources/limits/cpu"])


def test_the_same_pod_is_clamped_by_the_profile_of_its_namespace(profile_server: Server) -> None:
    answers = {ns: profile_server.review(_big_pod(ns))["response"] for ns in ("team-a", "team-c")}
    assert _cpu_limit(answers["team-a"]) == "16"  # profile large
    assert answers["team-a"]["auditAnnotations"]["profile"] == "large"
    assert "/spec/containers/0/resources/limits/cpu" not in _patched(answers["team-c"])
    assert answers["team-c"]["auditAnnotations"]["profile"] == "base"  # no profile: 43 allowed
    small = profile_server.review(_big_pod("team-b", "small-worker"))["response"]
    assert _cpu_limit(small) == "2"
    denied = profile_server.review(_big_pod("team-b", "default"))["response"]
    assert denied["allowed"] is False
    assert "(policy profile small)" in denied["status"]["message"]
    unknown = profile_server.review(_big_pod("not-in-cache"))["response"]
    assert unknown["allowed"] is False
    assert "could not be read" in unknown["status"]["message"]


def test_a_relabelled_namespace_gets_its_new_profile_within_seconds(
    api: ThreadedApi, profile_server: Server
) -> None:
    api.put("namespaces", _namespace("team-d", **{SIZE: "large"}))
    wait_for(
        lambda: profile_server.review(_big_pod("team-d"))["response"]["allowed"],
        5,
        "team-d in the namespace cache",
    )
    assert _cpu_limit(profile_server.review(_big_pod("team-d"))["response"]) == "16"
    relabelled = time.monotonic()
    api.put("namespaces", _namespace("team-d", **{SIZE: "dev"}))

    def small_applies() -> bool:
        response = profile_server.review(_big_pod("team-d", "small-worker"))["response"]
        return response["auditAnnotations"]["profile"] == "small"

    wait_for(small_applies, 5, "the small profile after the relabel")
    print(f"\nrelabel → new profile in {(time.monotonic() - relabelled) * 1000:.0f} ms")
    response = profile_server.review(_big_pod("team-d", "small-worker"))["response"]
    assert _cpu_limit(response) == "2"


def test_the_profile_is_a_metrics_label_and_in_the_log_line(profile_server: Server) -> None:
    profile_server.review(_big_pod("team-a"))
    profile_server.review(_big_pod("team-c"))
    samples = series(scrape(profile_server.metrics_port), "tpw_admission_requests_total")
    profiles = {dict(labels)["profile"] for labels in samples}
    assert profiles <= {"large", "small", "base"}  # names from the policy, never the request
    assert {"large", "base"} <= profiles
    large = {"webhook": "mutate", "operation": "CREATE", "decision": "patched", "profile": "large"}
    assert samples[frozenset(large.items())] >= 1
    decisions = [r["decision"] for r in log_records(profile_server) if "decision" in r]
    seen = {(d["namespace"], d["profile"]) for d in decisions}
    assert {("team-a", "large"), ("team-c", "base")} <= seen


def test_serve_without_api_access_refuses_profiles(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--policy", str(POLICY), wait_ready=False)
    assert server.process.wait(30) == 2
    log = server.log()
    assert "error: policy: profiles: the policy has profiles (large, small)" in log
    assert "no Kubernetes API access (--no-kube)" in log


def test_a_reload_that_adds_profiles_without_api_access_is_rejected(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("resources: {max: {cpu: '8'}}\n")
    server = start_server(tmp_path / "run", "--policy", str(policy))
    try:
        policy.write_text(POLICY.read_text())

        def failure_logged() -> list[dict[str, Any]]:
            return [
                r
                for r in log_records(server)
                if r.get("msg", "").startswith("policy reload failed")
            ]

        logged = wait_for(failure_logged, 10, "the rejected reload")
        assert "the policy has profiles" in " ".join(logged[0]["errors"])
        samples = series(scrape(server.metrics_port), "tpw_policy_reloads_total")
        assert samples == {frozenset({("result", "failure")}): 1.0}
        response = server.review(_big_pod("airflow"))["response"]  # the old policy: max 8
        assert _cpu_limit(response) == "8"
    finally:
        assert server.stop() == 0


# --- the command line ------------------------------------------------------------


def test_policy_check_prints_a_profiles_effective_policy() -> None:
    done = run_cli("policy", "check", str(POLICY), "--profile", "small")
    assert done.returncode == 0, done.stderr
    assert "profile small:" in done.stdout.splitlines()[0]
    assert "allowed:\n  - small-worker" in done.stdout
    assert "cpu: '2'" in done.stdout
    missing = run_cli("policy", "check", str(POLICY), "--profile", "huge")
    assert missing.returncode == 2
    assert "no profile named 'huge' (profiles: large, small)" in missing.stderr


def test_review_selects_the_profile_by_namespace_labels() -> None:
    pod_file = str(FIXTURES / "profile-large-clamped" / "pod.yaml")
    large = run_cli(
        "review", "--policy", str(POLICY), "--namespace-labels", f"{SIZE}=large", pod_file
    )
    assert large.returncode == 0, large.stderr
    assert "cpu: '16'" in large.stdout
    small = run_cli(
        "review", "--policy", str(POLICY), pod_file, env={"TPW_NAMESPACE_LABELS": f"{SIZE}=small"}
    )
    assert small.returncode == 1
    assert "(policy profile small)" in small.stdout
    unknown = run_cli("review", "--policy", str(POLICY), pod_file)
    assert unknown.returncode == 1
    assert "no --namespace-labels were given" in unknown.stderr
    bad = run_cli("review", "--policy", str(POLICY), "--namespace-labels", "a=b,=c", pod_file)
    assert bad.returncode == 2
    assert "--namespace-labels" in bad.stderr and "'=c'" in bad.stderr
