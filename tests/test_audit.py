"""Audit (SPEC §13), its pure parts: a stored pod as its CREATE, verdicts, the
PolicyReport built from them, and every output format."""

from __future__ import annotations

import copy
import io
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import yaml

from tests.conftest import FIXTURES
from webhook import offline
from webhook.admission.decide import decide
from webhook.admission.verdicts import PodAudit, as_created, audit_of
from webhook.audit import Sink, summary_line
from webhook.kube.reports import RULE_IDS, build_report
from webhook.policy import load_policy
from webhook.rules.base import Facts

POLICY = load_policy(None)


def fixture_pod(case: str) -> dict[str, Any]:
    pod = yaml.safe_load((FIXTURES / case / "pod.yaml").read_text())
    assert isinstance(pod, dict)
    return pod


def stored(pod: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    """``pod`` as the apiserver stores it once scheduled and running."""
    result = copy.deepcopy(pod)
    result.setdefault("metadata", {}).update(
        {
            "uid": "0b7e5c2a-1111-2222-3333-444455556666",
            "resourceVersion": "4711",
            "creationTimestamp": "2025-06-01T02:00:00Z",
            "managedFields": [
                {
                    "manager": "airflow",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {"f:containers": {}}},
                },
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "subresource": "status",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:phase": {}}},
                },
            ],
            **metadata,
        }
    )
    result["spec"]["nodeName"] = "node-1"
    result["status"] = {"phase": "Running", "hostIP": "10.0.0.5"}
    return result


def judge(pod: dict[str, Any]) -> PodAudit | None:
    namespace = pod["metadata"].get("namespace", "default")
    request = offline.pod_request(as_created(pod), namespace, "audit-test")
    decision = decide(request, POLICY, Facts(namespace=namespace, namespace_labels={}))
    return audit_of(pod, namespace, decision)


# --- a stored pod as its CREATE ------------------------------------------------


def test_as_created_drops_what_the_apiserver_scheduler_and_kubelet_set():
    pod = stored(fixture_pod("kex-dags-in-image"))
    before = copy.deepcopy(pod)
    created = as_created(pod)
    assert pod == before, "as_created must not change the stored pod"
    assert "status" not in created
    assert "nodeName" not in created["spec"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
        assert key not in created["metadata"]
    assert created["metadata"]["labels"] == pod["metadata"]["labels"]
    assert created["spec"]["containers"] == pod["spec"]["containers"]


def test_as_created_keeps_a_node_name_the_author_set():
    pod = stored(fixture_pod("kex-dags-in-image"))
    pod["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:nodeName"] = {}
    assert as_created(pod)["spec"]["nodeName"] == "node-1"


def test_as_created_of_a_pod_the_webhook_admitted_is_compliant():
    pod = fixture_pod("kex-dags-in-image")
    mutated = offline.apply_patch(pod, decide(offline.pod_request(pod, None, "x"), POLICY, Facts()))
    audit = judge(stored(mutated))
    assert audit is not None
    assert audit.verdict == "compliant"
    assert audit.patch == [] and audit.violations == ()


# --- verdicts ------------------------------------------------------------------


def test_verdicts_and_task_identity():
    mutate = judge(stored(fixture_pod("kex-dags-in-image")))
    assert mutate is not None and mutate.verdict == "would-mutate"
    assert mutate.patch and mutate.violations == ()
    assert (mutate.dag, mutate.task, mutate.try_number) == ("orders_etl", "extract_orders", "1")
    assert mutate.uid == "0b7e5c2a-1111-2222-3333-444455556666"

    deny = judge(stored(fixture_pod("kex-dags-in-volume")))
    assert deny is not None and deny.verdict == "would-deny"
    assert [(v.rule, v.field) for v in deny.violations] == [
        ("volumes", "spec.volumes[0] (name=airflow-dags)")
    ]
    assert "persistentVolumeClaim" in deny.violations[0].message
    assert deny.patch == []


@pytest.mark.parametrize(
    "case", ["edge-kube-system-exempt", "edge-mirror-pod", "edge-not-a-task-pod"]
)
def test_what_the_webhook_never_judges_is_skipped(case: str):
    assert judge(stored(fixture_pod(case))) is None


def test_as_dict_has_the_fields_of_the_spec():
    deny = judge(stored(fixture_pod("kex-dags-in-volume")))
    assert deny is not None
    assert list(deny.as_dict()) == [
        "namespace", "name", "uid", "dag", "task", "run", "try", "profile",
        "verdict", "violations", "patch", "warnings",
    ]  # fmt: skip
    assert deny.as_dict()["violations"][0]["rule"] == "volumes"


# --- PolicyReports -------------------------------------------------------------


def audits() -> list[PodAudit]:
    found = [
        judge(stored(fixture_pod(case)))
        for case in ("kex-dags-in-image", "kex-dags-in-volume", "kex-hostpath-volume")
    ]
    compliant = PodAudit(namespace="airflow", name="zz-ok", uid="u-ok", verdict="compliant")
    return [a for a in found if a is not None] + [compliant]


def test_report_has_one_result_per_rule_per_pod_and_right_counts():
    report = build_report("airflow", audits(), 1_750_000_000)
    assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
    assert report["kind"] == "PolicyReport"
    assert report["metadata"]["name"] == "task-pod-webhook"
    assert report["metadata"]["namespace"] == "airflow"
    results = report["results"]
    assert len(results) == 4 * len(RULE_IDS)
    for result in results:
        assert result["policy"] == "task-pod-webhook"
        assert result["source"] == "task-pod-webhook"
        assert result["timestamp"] == {"seconds": 1_750_000_000, "nanos": 0}
        assert result["resources"][0]["kind"] == "Pod"
    by_pod: dict[str, dict[str, str]] = {}
    for result in results:
        by_pod.setdefault(result["resources"][0]["name"], {})[result["rule"]] = result["result"]
    assert set(by_pod["zz-ok"].values()) == {"pass"}
    volume_pod = next(a.name for a in audits() if a.dag and a.verdict == "would-deny")
    assert by_pod[volume_pod]["volumes"] == "fail"
    assert "warn" in by_pod[next(a.name for a in audits() if a.verdict == "would-mutate")].values()
    counted = {k: sum(r["result"] == k for r in results) for k in report["summary"]}
    assert report["summary"] == counted
    assert report["summary"]["fail"] >= 2 and report["summary"]["pass"] >= len(RULE_IDS)


def test_an_empty_report_drops_every_result():
    report = build_report("airflow", [], 1)
    assert report["results"] == []
    assert report["summary"] == {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0}


# --- outputs -------------------------------------------------------------------


def render(output: str, pages: list[list[PodAudit]]) -> str:
    buffer = io.StringIO()
    sink = Sink(output, buffer)  # type: ignore[arg-type]
    for page in pages:
        sink.page(page)
    sink.close("SUMMARY")
    return buffer.getvalue()


def test_table_output_columns_rows_and_summary():
    text = render("table", [audits()[:2], audits()[2:]])
    lines = text.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POD", "DAG", "TASK", "VERDICT", "RULES"]
    assert len(lines) == 1 + 4 + 1
    assert lines[-1] == "SUMMARY"
    assert lines[-2].split()[:2] == ["airflow", "zz-ok"]
    assert lines[-2].split()[2:] == ["<none>", "<none>", "compliant", "<none>"]
    for nothing in ([], [[]], [[], []]):
        assert render("table", nothing).splitlines() == ["No task pods found.", "SUMMARY"]


def test_json_and_yaml_outputs_are_one_list_across_pages():
    expected = [a.as_dict() for a in audits()]
    assert json.loads(render("json", [audits()[:1], [], audits()[1:]])) == expected
    assert yaml.safe_load(render("yaml", [audits()[:1], audits()[1:]])) == expected
    assert json.loads(render("json", [])) == []
    assert yaml.safe_load(render("yaml", [])) == []


def test_junit_output_fails_exactly_the_would_deny_pods():
    root = ET.fromstring(render("junit", [audits()[:2], audits()[2:]]))
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 4
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {a.name for a in audits() if a.verdict == "would-deny"}
    suites = root.findall("./testsuite")
    assert sum(int(s.get("failures", "0")) for s in suites) == len(failed)
    assert sum(int(s.get("tests", "0")) for s in suites) == 4


def test_summary_line_counts_each_verdict():
    counts = {"compliant": 3, "would-mutate": 2, "would-deny": 1}
    assert summary_line(counts, 7) == (
        "6 task pods judged: 3 compliant, 2 would-mutate, 1 would-deny (7 pods not judged)"
    )
