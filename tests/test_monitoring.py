"""Monitoring (SPEC §14): ``manifests/components/monitoring`` over ``manifests/base``
rendered by the real ``kubectl kustomize``, its standard objects validated by
kubernetes-validate, the alert rules checked and unit-tested by the real
``promtool`` (installed by ``make promtool``), the dashboard's queries parsed by
promtool and matched against the metric names a running server declares.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests import podkit
from tests.conftest import ROOT, start_server
from tests.serving_kit import HOST, MARK_VARIABLE, exchange, no_process_left
from tests.test_manifests import K8S_VERSION, find, kustomize

COMPONENT = ROOT / "manifests" / "components" / "monitoring"
DASHBOARD = ROOT / "dashboards" / "task-pod-webhook.json"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
RULE_TESTS = ROOT / "tests" / "monitoring"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The labels prometheus-operator gives every series it scrapes through a ServiceMonitor.
TARGET_LABELS = {"job", "namespace", "service", "pod", "instance", "endpoint", "container"}
# SPEC §14's seven, each met by (at least) one alert.
SPEC_ALERTS = {
    "serving certificate expiring within 14 days": "TaskPodWebhookCertificateExpiringSoon",
    "webhook not ready / down": "TaskPodWebhookDown",
    "internal errors": "TaskPodWebhookInternalErrors",
    "p99 admission latency above 1 s": "TaskPodWebhookSlowAdmissions",
    "denial rate spike": "TaskPodWebhookDenialSpike",
    "caches not synced": "TaskPodWebhookCachesNotSynced",
    "policy reload failures": "TaskPodWebhookPolicyReloadFailing",
}

# Alerts on counts of events that already happened (each a refused pod, a dead
# worker): no `for`, they resolve when the window no longer holds enough of them.
EVENT_ALERTS = {"TaskPodWebhookInternalErrors", "TaskPodWebhookWorkersRestarting"}

Obj = dict[str, Any]


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool not found: `make promtool` installs it (Debian package prometheus)"
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def overlay(tmp: Path, extra: str = "") -> list[Obj]:
    """Render an overlay of manifests/base with the monitoring component, as a user writes it."""
    tmp.mkdir(parents=True, exist_ok=True)
    up = Path(os.path.relpath(ROOT, tmp))  # kustomize takes no absolute path
    (tmp / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources:\n  - {up / 'manifests' / 'base'}\n"
        f"components:\n  - {up / COMPONENT.relative_to(ROOT)}\n" + extra
    )
    return kustomize(tmp)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[Obj]:
    return overlay(tmp_path_factory.mktemp("overlay"))


def alert_rules(objects: list[Obj]) -> list[Obj]:
    groups = find(objects, "PrometheusRule")["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def rules_file(rendered: list[Obj], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PrometheusRule's spec.groups as a Prometheus rules file."""
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    groups = find(rendered, "PrometheusRule")["spec"]["groups"]
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


# --------------------------------------------------------------------------- the component


def test_component_renders_over_base_and_every_standard_object_validates(
    rendered: list[Obj],
) -> None:
    base = kustomize(ROOT / "manifests" / "base")
    added = [o for o in rendered if o not in base]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in added) == [
        ("ConfigMap", "task-pod-webhook-dashboard"),
        ("PrometheusRule", "task-pod-webhook"),
        ("ServiceMonitor", "task-pod-webhook"),
    ]
    assert len(rendered) == len(base) + 3  # the base objects come through unchanged
    validated = 0
    for obj in rendered:
        if obj["kind"] in CRD_KINDS:
            # prometheus-operator's CRDs are not in kubernetes-validate's schemas: the
            # tests below check them with promtool and against the Service.
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        validated += 1
    assert validated == len(rendered) - 2
    assert {o["metadata"]["namespace"] for o in added} == {"task-pod-webhook"}


def test_service_monitor_scrapes_the_metrics_port_by_name(rendered: list[Obj]) -> None:
    monitor = find(rendered, "ServiceMonitor")["spec"]
    service = find(rendered, "Service")
    labels = service["metadata"]["labels"]
    assert monitor["selector"]["matchLabels"].items() <= labels.items()
    assert "namespaceSelector" not in monitor  # the Service is in the monitor's namespace
    assert (
        find(rendered, "ServiceMonitor")["metadata"]["namespace"]
        == (service["metadata"]["namespace"])
    )
    (endpoint,) = monitor["endpoints"]
    port = {p["name"]: p for p in service["spec"]["ports"]}[endpoint["port"]]
    # the named Service port leads to the container port the server serves metrics on
    (container,) = find(rendered, "Deployment")["spec"]["template"]["spec"]["containers"]
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert container_ports[port["targetPort"]] == int(args[args.index("--metrics-port") + 1])
    assert endpoint["path"] == "/metrics"
    assert endpoint["scheme"] == "http"
    # our labels never overwrite the target's (the cure is the rename to `webhook`)
    assert endpoint.get("honorLabels", False) is False
    assert labels[monitor["jobLabel"]] == "task-pod-webhook"  # the job the alerts select


def test_dashboard_config_map_is_the_dashboard_for_grafanas_sidecar(rendered: list[Obj]) -> None:
    config_map = find(rendered, "ConfigMap", "task-pod-webhook-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = config_map["data"]["task-pod-webhook.json"]
    assert shipped == DASHBOARD.read_text(), "run `make dashboard` to refresh the copy"
    json.loads(shipped)


# --------------------------------------------------------------------------- alerts


def test_rules_pass_promtool_check(rules_file: Path, rendered: list[Obj]) -> None:
    checked = run_promtool("check", "rules", str(rules_file))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules(rendered))} rules found" in checked.stdout


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings (lower case, punctuation dropped, spaces to -)."""
    headings = re.findall(r"^#+ (.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_severity_annotations_and_a_runbook_section(rendered: list[Obj]) -> None:
    rules = alert_rules(rendered)
    names = {rule["alert"] for rule in rules}
    assert set(SPEC_ALERTS.values()) <= names
    anchors = _anchors(RUNBOOK.read_text())
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), rule["alert"]
        base, anchor = annotations["runbook_url"].split("#")
        assert base.endswith("/docs/RUNBOOK.md")
        assert anchor == rule["alert"].lower()
        assert anchor in anchors, f"docs/RUNBOOK.md has no section {rule['alert']}"
        assert "for" in rule or rule["alert"] in EVENT_ALERTS, rule["alert"]


def _runbook_override() -> str:
    """The kustomization lines docs/RUNBOOK.md tells an operator to add."""
    found = re.search(
        r"<!-- runbook-override -->\s*```yaml\n(.*?)```", RUNBOOK.read_text(), flags=re.DOTALL
    )
    assert found, "docs/RUNBOOK.md lost its runbook-override example"
    return found.group(1)


def test_the_runbook_base_url_can_be_overridden_as_the_runbook_says(
    rendered: list[Obj], tmp_path: Path
) -> None:
    overridden = overlay(tmp_path, _runbook_override())
    base = "https://wiki.example.com/task-pod-webhook/RUNBOOK.md"
    urls = [rule["annotations"]["runbook_url"] for rule in alert_rules(overridden)]
    assert urls == [
        f"{base}#{rule['annotations']['runbook_url'].split('#')[1]}"
        for rule in alert_rules(rendered)
    ]
    # the override's source object is local: it is not applied to the cluster
    assert len(overridden) == len(rendered)


_SERIES_LABELS = re.compile(r'(\w+)="')


def _rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yaml"))


def test_rule_tests_use_scraped_labels_and_fire_and_resolve_every_alert(
    rendered: list[Obj],
) -> None:
    """What the promtool tests cover: read from their files, so that a test removed
    or an alert added without a test shows here."""
    fired: set[str] = set()
    resolved: set[str] = set()
    quiet_in_baseline: set[str] = set()
    for path in _rule_test_files():
        document = yaml.safe_load(path.read_text())
        assert document["rule_files"] == ["rules.yaml"]
        for test in document["tests"]:
            for item in test["input_series"]:
                labels = set(_SERIES_LABELS.findall(item["series"].split("{", 1)[1]))
                assert labels >= TARGET_LABELS, item["series"]
                assert 'endpoint="metrics"' in item["series"]  # the ServiceMonitor's port
            seen_firing: set[str] = set()
            for check in sorted(test["alert_rule_test"], key=lambda c: _minutes(c["eval_time"])):
                name = check["alertname"]
                if check["exp_alerts"]:
                    seen_firing.add(name)
                    fired.add(name)
                elif name in seen_firing:
                    resolved.add(name)
                if path.name == "baseline.yaml":
                    assert not check["exp_alerts"]
                    quiet_in_baseline.add(name)
    names = {rule["alert"] for rule in alert_rules(rendered)}
    assert fired == names
    assert resolved == names
    assert quiet_in_baseline == names


def _minutes(duration: str) -> int:
    units = {"d": 1440, "h": 60, "m": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhm])", duration))


def test_promtool_unit_tests_fire_resolve_and_keep_the_baseline_quiet(
    rules_file: Path, tmp_path: Path
) -> None:
    for path in _rule_test_files():
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(rules_file, tmp_path / "rules.yaml")
    tested = run_promtool("test", "rules", *(p.name for p in _rule_test_files()), cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == len(_rule_test_files())


# --------------------------------------------------------------------------- names in queries

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"\d[\w.]*|([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if name and not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_metric_names_reads_names_not_functions_labels_or_durations() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, webhook) (rate(a_bucket{job="x", le!="1"}[5m])))'
        ' > 1 and on (job) b_total offset 1h or absent(up{job="y"}) * 0 + sum(c) by (pod)'
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up", "c"}


def dashboard_queries(dashboard: Obj) -> Iterator[str]:
    """Every panel target's expr and every query variable's selector."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            found = re.fullmatch(r"label_values\((.+), *\w+\)", query)
            assert found, query
            yield found.group(1)


# Grafana's variables, as a query reaches Prometheus.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$namespace": "task-pod-webhook",
    "$pod": ".*",
}


def _substituted(expr: str) -> str:
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [_substituted(q) for q in dashboard_queries(dashboard)]
    assert len(queries) > 25
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = run_promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def test_dashboard_shape() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["pod"]["includeAll"] is True
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'namespace="$namespace"' in target["expr"], panel["title"]
            assert 'pod=~"$pod"' in target["expr"], panel["title"]


def _declared_names(text: str) -> set[str]:
    """Sample names a scrape can hold, from the ``# TYPE`` lines (a labelled family
    with no child yet, such as the cache gauges without API access, has no sample)."""
    suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.update(name + s for s in suffixes.get(kind, ("",)))
    return names


def _declared_by_server(workdir: Path, *args: str, env: dict[str, str]) -> set[str]:
    """The metric names a real ``serve --no-kube`` declares after a mutation and a validation."""
    server = start_server(workdir, *args, env=env)
    try:
        pod = podkit.pod()
        server.review(podkit.review(pod, uid="patched"))
        server.review(podkit.review(pod, uid="validated"), "/validate")
        connection = http.client.HTTPConnection(HOST, server.metrics_port, timeout=5)
        try:
            status, _, body = exchange(connection, "GET", "/metrics")
        finally:
            connection.close()
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()
    assert status == 200
    text = body.decode()
    assert 'webhook="mutate"' in text
    assert 'endpoint="' not in text  # the target's label, never ours
    return _declared_names(text)


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The names declared by one worker, and by ``--workers 2``'s supervisor. Neither
    is a superset: the supervisor adds ``tpw_worker_restarts_total``, and in
    prometheus_client's multiprocess mode a labelled family with no child yet (the
    cache gauges without API access, the reload counters) is not declared at all."""
    workdir = tmp_path_factory.mktemp("serve")
    mark = uuid.uuid4().hex
    env = {MARK_VARIABLE: mark, "TMPDIR": str(workdir)}  # the supervisor's metrics files
    with no_process_left(mark):
        single = _declared_by_server(workdir / "single", env=env)
        workers = _declared_by_server(workdir / "workers", "--workers", "2", env=env)
    return single | workers


@pytest.mark.slow
def test_dashboard_names_only_and_all_metrics_the_server_exposes(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    used = set().union(*(metric_names(q) for q in dashboard_queries(dashboard)))
    assert used <= exposed, sorted(used - exposed)
    # and every family the server exports has a panel
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exposed}
    shown = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    assert families == shown, sorted(families - shown)


@pytest.mark.slow
def test_alerts_name_only_metrics_the_server_exposes_and_up(
    exposed: set[str], rendered: list[Obj]
) -> None:
    for rule in alert_rules(rendered):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exposed | {"up"}, (rule["alert"], sorted(names - exposed))
