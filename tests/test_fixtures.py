"""Every manifest fixture through every path that decides (SPEC §9).

For each case in tests/fixtures: the fixture runner's expectations (outcome,
message parts, warnings, golden mutated pod, idempotence, /validate accepting
our own output); the same review through the real HTTPS server and through the
``review`` command run as a subprocess, which must agree; the mutated pod
against the Kubernetes schema (kubernetes-validate, strict) and the suite's
Pod Security Standards restricted checker; and Airflow's labels untouched.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, Server, start_server
from tests.fake_apiserver import FakeApiServer, ThreadedApi, write_kubeconfig
from tests.pss_restricted import check_restricted
from webhook import offline
from webhook.policy import load_policy
from webhook.policy.airflow import AIRFLOW_LABEL_KEYS

CASES = sorted(path.parent for path in FIXTURES.glob("*/case.yaml"))
SCHEMA_VERSION = kubernetes_validate.latest_version()


def _case(case_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((case_dir / "case.yaml").read_text())


def _input(case_dir: Path) -> tuple[str, Any]:
    case = _case(case_dir)
    name = case.get("input") or (
        "review.yaml" if (case_dir / "review.yaml").exists() else "pod.yaml"
    )
    return name, yaml.safe_load((case_dir / name).read_text())


def _review_body(case_dir: Path) -> dict[str, Any]:
    """The AdmissionReview the apiserver would send for the case's input."""
    _, document = _input(case_dir)
    if document.get("kind") == "AdmissionReview":
        return document
    request = offline.pod_request(
        document, _case(case_dir).get("namespace"), f"fixture-{case_dir.name}"
    )
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": request.uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": request.namespace,
            "name": request.name,
            "userInfo": {"username": offline.REVIEW_USER},
            "object": document,
            "oldObject": None,
            "dryRun": True,
        },
    }


def test_there_are_enough_cases_of_each_kind():
    names = [c.name for c in CASES]
    assert len(names) >= 40
    outcomes = [_case(c)["expect"]["allowed"] for c in CASES]
    assert outcomes.count(True) >= 15 and outcomes.count(False) >= 15
    assert "kex-dags-in-volume" in names
    assert sum(n.startswith("kex-") for n in names) >= 15
    assert sum(n.startswith("kpo-") for n in names) >= 5


@pytest.mark.parametrize("case_dir", CASES, ids=[c.name for c in CASES])
def test_fixture_expectations(case_dir: Path):
    result = offline.run_case(case_dir)
    assert result.passed, "\n".join(result.problems)


def _policy_path(case_dir: Path) -> Path | None:
    policy = _case(case_dir).get("policy")
    return (case_dir / policy).resolve() if policy else None


def _namespace_labels(case_dir: Path) -> dict[str, str] | None:
    labels = _case(case_dir).get("namespaceLabels")
    return labels if isinstance(labels, dict) else None


@pytest.fixture(scope="module")
def fixture_api() -> Iterator[ThreadedApi]:
    """The stand-in API holding the namespace (and labels) of every case that sets them,
    for the servers of policies with profiles (they select by namespace labels)."""
    fake = FakeApiServer()
    seen: dict[str, dict[str, str]] = {}
    for case_dir in CASES:
        labels = _namespace_labels(case_dir)
        if labels is None:
            continue
        namespace = _case(case_dir)["namespace"]
        assert seen.setdefault(namespace, labels) == labels, f"{namespace}: two label sets"
        fake.put("namespaces", {"metadata": {"name": namespace, "labels": labels}})
    running = ThreadedApi(fake)
    yield running
    running.stop()


def _server_for(
    case_dir: Path,
    server: Server,
    policy_servers: dict[Path, Server],
    tmp: Path,
    api: ThreadedApi,
) -> Server:
    path = _policy_path(case_dir)
    if path is None:
        return server
    if path not in policy_servers:
        workdir = tmp / f"{path.parent.name}-{path.stem}"
        if load_policy(path).profiles:
            kubeconfig = write_kubeconfig(tmp / f"{path.stem}.kubeconfig", api.url)
            policy_servers[path] = start_server(
                workdir, "--policy", str(path), "--kubeconfig", str(kubeconfig), kube=True
            )
        else:
            policy_servers[path] = start_server(workdir, "--policy", str(path))
    return policy_servers[path]


def _without_uid(response: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(response)
    copied["response"].pop("uid")
    return copied


def test_server_and_review_command_agree_on_every_fixture(
    server: Server, policy_servers: dict[Path, Server], tmp_path: Path, fixture_api: ThreadedApi
):
    # One `review` subprocess per (policy, namespace, labels) group, every input at once.
    groups: dict[tuple[str, str, str | None], list[Path]] = defaultdict(list)
    for case_dir in CASES:
        labels = _namespace_labels(case_dir)
        groups[
            (
                str(_policy_path(case_dir) or ""),
                _case(case_dir).get("namespace") or "",
                None if labels is None else ",".join(f"{k}={v}" for k, v in labels.items()),
            )
        ].append(case_dir)
    checked = 0
    for (policy, namespace, labels), case_dirs in groups.items():
        files = [str(case_dir / _input(case_dir)[0]) for case_dir in case_dirs]
        command = [sys.executable, "-m", "webhook", "review", "--output", "review", *files]
        if policy:
            command += ["--policy", policy]
        if namespace:
            command += ["--namespace", namespace]
        if labels is not None:
            command += ["--namespace-labels", labels]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode in (0, 1), done.stderr
        decoder, text, answers = json.JSONDecoder(), done.stdout, []
        index = 0
        while index < len(text):
            if text[index].isspace():
                index += 1
                continue
            answer, index = decoder.raw_decode(text, index)
            answers.append(answer)
        assert len(answers) == len(case_dirs)
        for case_dir, from_cli in zip(case_dirs, answers, strict=True):
            body = _review_body(case_dir)
            from_server = _server_for(
                case_dir, server, policy_servers, tmp_path, fixture_api
            ).review(body)
            assert from_server["response"]["uid"] == body["request"]["uid"]
            assert _without_uid(from_server) == _without_uid(from_cli), case_dir.name
            assert from_server["apiVersion"] == body["apiVersion"]
            expected = _case(case_dir)["expect"]["allowed"]
            assert from_server["response"]["allowed"] is expected, case_dir.name
            checked += 1
    assert checked == len(CASES)


def _mutated(case_dir: Path) -> tuple[Any, Any, offline.Decision, Any]:
    case = _case(case_dir)
    policy = load_policy(case_dir / case["policy"] if case.get("policy") else None)
    _, document = _input(case_dir)
    request = offline.request_for(document, case.get("namespace"), "u", case_dir.name)
    decision = offline.decide(request, policy, offline.case_facts(case, request.namespace))
    original = copy.deepcopy(request.object)
    mutated = jsonpatch.JsonPatch(decision.patch).apply(request.object, in_place=False)
    return original, mutated, decision, request


# Allowed cases with a pod to look at (a DELETE review carries none).
PATCHED = [c for c in CASES if _case(c)["expect"]["allowed"] and isinstance(_mutated(c)[1], dict)]


@pytest.mark.parametrize("case_dir", PATCHED, ids=[c.name for c in PATCHED])
def test_mutated_pods_are_valid_and_restricted(case_dir: Path):
    _, mutated, decision, request = _mutated(case_dir)
    kubernetes_validate.validate(mutated, SCHEMA_VERSION, strict=True)
    if decision.verdict == "patched" and request.operation == "CREATE":
        assert check_restricted(mutated) == []


@pytest.mark.parametrize("case_dir", CASES, ids=[c.name for c in CASES])
def test_airflow_labels_and_annotations_are_never_touched(case_dir: Path):
    original, mutated, _, _ = _mutated(case_dir)
    if not isinstance(original, dict):
        return
    for section in ("labels", "annotations"):
        before = (original.get("metadata") or {}).get(section) or {}
        after = (mutated.get("metadata") or {}).get(section) or {}
        for key in AIRFLOW_LABEL_KEYS:
            assert before.get(key) == after.get(key), (section, key)
