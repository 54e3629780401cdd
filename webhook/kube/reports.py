"""PolicyReports (``wgpolicyk8s.io/v1alpha2``) from an audit (SPEC §13).

One ``PolicyReport`` per namespace, named ``task-pod-webhook``, with one result
per rule per judged pod: ``fail`` for a rule the pod violates, ``warn`` for a
rule that would change it (or reports in warn / audit mode), ``pass``
otherwise; ``summary`` counts them. Each write replaces the report's results
whole (created, or updated in place with the resourceVersion read just
before, retried once on a conflict), so results of pods that are gone are
dropped and a rerun leaves exactly one report per namespace.

``build_report`` is pure; ``ReportWriter`` does the API calls. Errors:
``ApiException`` propagates, except the 404 of a cluster without the CRD,
which becomes ``ReportsUnavailable`` saying how to install it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

import kubernetes
from kubernetes.client.exceptions import ApiException

from webhook.admission.verdicts import PodAudit
from webhook.kube.client import HTTP_NOT_FOUND, ListCall
from webhook.kube.pods import list_pages
from webhook.rules.registry import CREATE_RULES

GROUP: Final = "wgpolicyk8s.io"
VERSION: Final = "v1alpha2"
PLURAL: Final = "policyreports"
REPORT_NAME: Final = "task-pod-webhook"
SOURCE: Final = "task-pod-webhook"
MANAGED_BY: Final = {"app.kubernetes.io/managed-by": "task-pod-webhook"}
MESSAGE_LIMIT: Final = 1024
HTTP_CONFLICT: Final = 409
RESULTS: Final = ("pass", "fail", "warn", "error", "skip")
RULE_IDS: Final = tuple(rule.id for rule in CREATE_RULES)
NO_CRD: Final = (
    f"the cluster has no {PLURAL}.{GROUP} API: install the CRD (kubectl apply -k manifests/crds)"
)


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 3] + "..."


def pod_results(audit: PodAudit, timestamp: int) -> Iterator[dict[str, Any]]:
    """One result per rule for ``audit``'s pod (rules the pod broke beyond the
    CREATE rules, e.g. its shape, come after them)."""
    failed: dict[str, list[str]] = {}
    for finding in audit.violations:
        text = f"{finding.field}: {finding.message}" if finding.field else finding.message
        failed.setdefault(finding.rule, []).append(text)
    resource = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": audit.name,
        "namespace": audit.namespace,
        "uid": audit.uid,
    }
    properties = {
        key: value
        for key, value in (
            ("dag", audit.dag),
            ("task", audit.task),
            ("run", audit.run),
            ("try", audit.try_number),
            ("profile", audit.profile),
            ("verdict", audit.verdict),
        )
        if value
    }
    changes = "; ".join(audit.warnings)
    for rule in (*RULE_IDS, *(r for r in failed if r not in RULE_IDS)):
        if rule in failed:
            result, message = "fail", "; ".join(failed[rule])
        elif rule in audit.rules:
            result = "warn"
            message = f"would change the pod: {changes}" if changes else "would change the pod"
        else:
            result, message = "pass", "compliant"
        yield {
            "policy": REPORT_NAME,
            "rule": rule,
            "result": result,
            "message": _cut(message),
            "resources": [resource],
            "source": SOURCE,
            "timestamp": {"seconds": timestamp, "nanos": 0},
            "properties": properties,
        }


def build_report(namespace: str, audits: Iterable[PodAudit], timestamp: int) -> dict[str, Any]:
    """The PolicyReport of ``namespace`` for these judged pods (none: an empty report)."""
    results = [
        result
        for audit in sorted(audits, key=lambda a: (a.name, a.uid))
        for result in pod_results(audit, timestamp)
    ]
    summary = dict.fromkeys(RESULTS, 0)
    for result in results:
        summary[result["result"]] += 1
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PolicyReport",
        "metadata": {"name": REPORT_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "summary": summary,
        "results": results,
    }


class ReportsUnavailable(Exception):
    """The cluster has no PolicyReport API (the CRD is not installed)."""


class ReportWriter:
    """Creates or updates the ``task-pod-webhook`` PolicyReport of a namespace."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self._api: Any = kubernetes.client.CustomObjectsApi(api_client)

    def existing(self, namespace: str | None) -> set[str]:
        """Namespaces that hold our report (in ``namespace``, or in all)."""
        params: dict[str, Any] = {"field_selector": f"metadata.name={REPORT_NAME}"}
        call: ListCall
        if namespace is None:
            call = self._api.list_cluster_custom_object
        else:
            call = self._api.list_namespaced_custom_object
            params["namespace"] = namespace
        found: set[str] = set()
        try:
            for page in list_pages(call, group=GROUP, version=VERSION, plural=PLURAL, **params):
                found.update(
                    item["metadata"]["namespace"]
                    for item in page
                    if isinstance(item.get("metadata"), dict)
                )
        except ApiException as exc:
            if exc.status == HTTP_NOT_FOUND:  # a list answers 404 only for an unknown resource
                raise ReportsUnavailable(NO_CRD) from exc
            raise
        return found

    def write(self, report: dict[str, Any]) -> str:
        """Create or update ``report``; returns "created" or "updated"."""
        namespace = report["metadata"]["namespace"]
        for attempt in (1, 2):
            try:
                current = self._api.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, REPORT_NAME
                )
            except ApiException as exc:
                if exc.status != HTTP_NOT_FOUND:
                    raise
                if PLURAL not in str(exc.body):  # not "policyreports ... not found": no CRD
                    raise ReportsUnavailable(NO_CRD) from exc
                current = None
            try:
                if current is None:
                    self._api.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, report
                    )
                    return "created"
                report["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                self._api.replace_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, REPORT_NAME, report
                )
                return "updated"
            except ApiException as exc:
                if exc.status == HTTP_CONFLICT and attempt == 1:
                    continue  # written by someone else in between (or created): read again
                raise
        raise AssertionError("unreachable")
