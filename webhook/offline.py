"""Offline use of the exact decision code: ``review`` and the fixture runner ``test``.

A pod manifest is reviewed as the apiserver would send its CREATE; a whole
AdmissionReview is answered as the server would answer it. The fixture runner
(SPEC §9) reads ``tests/fixtures/<case>/case.yaml`` beside its input, runs the
case, and checks the expected outcome, the expected mutated pod (when given)
and that reviewing the mutated pod yields no patch (idempotence).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonpatch
import yaml

from webhook import jsonio
from webhook.admission.decide import Decision, decide
from webhook.admission.protocol import AdmissionRequest, ProtocolError, parse_review
from webhook.policy import Policy, load_policy
from webhook.rules.base import Facts, ServiceAccountFact

REVIEW_USER = "task-pod-webhook:review"


class InputError(ValueError):
    """An input that can't be reviewed at all (exit code 2)."""


def load_documents(text: str, source: str) -> list[Any]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML or JSON: {exc}") from None


def pod_request(pod: dict[str, Any], namespace: str | None, uid: str) -> AdmissionRequest:
    """The CREATE review the apiserver would send for ``pod``."""
    found = pod.get("metadata")
    metadata: dict[str, Any] = found if isinstance(found, dict) else {}
    ns = namespace or metadata.get("namespace") or "default"
    name = metadata.get("name")
    return AdmissionRequest(
        api_version="admission.k8s.io/v1",
        uid=uid,
        operation="CREATE",
        kind="Pod",
        resource="pods",
        sub_resource="",
        namespace=ns if isinstance(ns, str) else "default",
        name=name if isinstance(name, str) else "",
        object=pod,
        old_object=None,
        dry_run=True,
        username=REVIEW_USER,
        groups=(),
    )


def request_for(document: Any, namespace: str | None, uid: str, source: str) -> AdmissionRequest:
    if not isinstance(document, dict):
        raise InputError(f"{source}: expected a Pod or an AdmissionReview object")
    kind = document.get("kind")
    if kind == "AdmissionReview":
        try:
            return parse_review(jsonio.dumps(document))
        except ProtocolError as exc:
            raise InputError(f"{source}: {exc}") from None
    if kind == "Pod":
        return pod_request(document, namespace, uid)
    raise InputError(f"{source}: kind {kind!r} is not a Pod or an AdmissionReview")


def apply_patch(obj: Any, decision: Decision) -> Any:
    if not decision.patch:
        return obj
    return jsonpatch.apply_patch(obj, decision.patch, in_place=False)


# --- the fixture runner ----------------------------------------------------


@dataclass
class CaseResult:
    name: str
    passed: bool
    summary: str
    problems: list[str] = field(default_factory=list)


def case_facts(case: dict[str, Any], namespace: str) -> Facts:
    account = case.get("serviceAccount")
    fact = None
    if isinstance(account, dict):
        fact = ServiceAccountFact(
            status=account.get("status", "found"),
            annotations=account.get("annotations") or {},
            error=account.get("error", ""),
        )
    labels = case.get("namespaceLabels")
    return Facts(
        namespace=namespace,
        namespace_labels=labels if isinstance(labels, dict) else None,
        service_account=fact,
    )


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: {exc}") from None


def _replace_object(request: AdmissionRequest, obj: Any) -> AdmissionRequest:
    return replace(request, object=obj)


def run_case(
    case_dir: Path, policy_override: Policy | None = None, update_golden: bool = False
) -> CaseResult:
    name = case_dir.name
    case = _read_yaml(case_dir / "case.yaml")
    if not isinstance(case, dict) or not isinstance(case.get("expect"), dict):
        raise InputError(f"{case_dir / 'case.yaml'}: needs an 'expect' mapping")
    expect = case["expect"]
    policy = policy_override
    if policy is None:
        policy = load_policy(case_dir / case["policy"] if case.get("policy") else None)
    input_name = case.get("input") or (
        "review.yaml" if (case_dir / "review.yaml").exists() else "pod.yaml"
    )
    document = _read_yaml(case_dir / input_name)
    request = request_for(document, case.get("namespace"), f"fixture-{name}", name)
    facts = case_facts(case, request.namespace)
    original = copy.deepcopy(request.object)
    decision = decide(request, policy, facts, "mutate")
    response = decision.response
    problems: list[str] = []
    if request.object != original:
        problems.append("the review changed its input object")
    allowed = response["allowed"]
    if allowed != expect.get("allowed"):
        message = response.get("status", {}).get("message", "")
        problems.append(f"expected allowed={expect.get('allowed')}, got {allowed}: {message}")
    message = response.get("status", {}).get("message", "")
    for part in expect.get("messageContains") or ():
        if part not in message:
            problems.append(f"denial message lacks {part!r}")
    warnings = response.get("warnings", [])
    for part in expect.get("warningsContain") or ():
        if not any(part in w for w in warnings):
            problems.append(f"no warning contains {part!r}")
    if "patched" in expect and bool(decision.patch) != expect["patched"]:
        problems.append(f"expected patched={expect['patched']}, got {bool(decision.patch)}")
    mutated = apply_patch(request.object, decision)
    if allowed:
        golden = case_dir / "mutated.yaml"
        stale = not golden.exists() or _read_yaml(golden) != mutated
        if update_golden and stale:
            # Only a golden whose content changed is rewritten: a diff to review, not noise.
            golden.write_text(yaml.safe_dump(mutated, sort_keys=False), encoding="utf-8")
        elif golden.exists() and stale:
            problems.append("mutated pod differs from mutated.yaml")
        if decision.patch:
            second = _replace_object(request, mutated)
            again = decide(second, policy, facts, "mutate")
            if again.patch:
                problems.append(f"not idempotent: reviewing the mutated pod patches {again.patch}")
            if request.operation == "CREATE" and request.sub_resource == "":
                checked = decide(second, policy, facts, "validate")
                if not checked.response["allowed"]:
                    problems.append("the mutated pod is denied by /validate")
    outcome = "allowed" if allowed else "denied"
    summary = f"{outcome}, {len(decision.patch)} patch operations, {len(warnings)} warnings"
    return CaseResult(name, not problems, summary, problems)


def find_cases(root: Path) -> Iterator[Path]:
    if (root / "case.yaml").exists():
        yield root
        return
    for path in sorted(root.rglob("case.yaml")):
        yield path.parent


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=False)


# --- pre-flight inputs and JUnit output (review and audit) -------------------

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def expand_inputs(names: list[str]) -> list[str]:
    """``names`` with every folder replaced by the manifests under it, recursively
    and sorted (``*.yaml``, ``*.yml``, ``*.json``: what ``airflow kubernetes
    generate-dag-yaml`` writes). Raises InputError for a folder with none."""
    expanded: list[str] = []
    for name in names:
        path = Path(name)
        if name == "-" or not path.is_dir():
            expanded.append(name)
            continue
        found = sorted(
            str(p) for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file()
        )
        if not found:
            raise InputError(f"{name}: a folder without *.yaml, *.yml or *.json files")
        expanded.extend(found)
    return expanded


@dataclass(frozen=True)
class JUnitCase:
    name: str
    classname: str
    failure: str | None = None  # the failure message; None: passed
    output: str = ""  # system-out: what a passing case would change


def _xml(text: str) -> str:
    # Attribute- and text-safe, and without the control characters XML 1.0 forbids.
    cleaned = "".join(c if c in "\t\n\r" or ord(c) >= 0x20 else "?" for c in text)
    return (
        cleaned.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
    )


def review_case(where: str, source: str, decision: Decision) -> JUnitCase:
    """The testcase of one reviewed document: a failure when it would be denied."""
    response = decision.response
    if not response["allowed"]:
        return JUnitCase(where, source, response.get("status", {}).get("message", "denied"))
    changes = "\n".join(response.get("warnings", []))
    if decision.patch:
        changes = f"{changes}\n{json.dumps(decision.patch)}".lstrip("\n")
    return JUnitCase(where, source, None, changes)


JUNIT_HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="task-pod-webhook">\n'
JUNIT_FOOTER = "</testsuites>\n"


def junit_suite(name: str, cases: list[JUnitCase]) -> str:
    """One ``<testsuite>`` of JUnit XML (the schema CI systems read)."""
    failures = sum(case.failure is not None for case in cases)
    lines = [f'  <testsuite name="{_xml(name)}" tests="{len(cases)}" failures="{failures}">']
    for case in cases:
        opening = f'    <testcase name="{_xml(case.name)}" classname="{_xml(case.classname)}"'
        inner = []
        if case.failure is not None:
            first = case.failure.splitlines()[0] if case.failure else "failed"
            inner.append(f'      <failure message="{_xml(first)}">{_xml(case.failure)}</failure>')
        if case.output:
            inner.append(f"      <system-out>{_xml(case.output)}</system-out>")
        lines.append(
            f"{opening}>\n" + "\n".join(inner) + "\n    </testcase>" if inner else f"{opening}/>"
        )
    lines.append("  </testsuite>")
    return "\n".join(lines) + "\n"
