"""The command line as scripts use it (SPEC §11): the real CLI as a subprocess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, run_cli


def cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return run_cli(*args, stdin=stdin, env=env)


DAGS_IN_VOLUME = FIXTURES / "kex-dags-in-volume" / "pod.yaml"
DAGS_IN_IMAGE = FIXTURES / "kex-dags-in-image" / "pod.yaml"


def test_review_denial_names_the_pvc_and_exits_1():
    done = cli("review", str(DAGS_IN_VOLUME))
    assert done.returncode == 1
    assert (
        "spec.volumes[0] (name=airflow-dags): persistentVolumeClaim volumes are not supported"
        in done.stdout
    )
    assert "dag orders_etl" in done.stdout


def test_review_prints_the_mutated_pod_and_warnings():
    done = cli("review", str(DAGS_IN_IMAGE))
    assert done.returncode == 0, done.stderr
    pod = yaml.safe_load(done.stdout)
    assert pod["metadata"]["labels"]["task-pod-webhook/enforced"] == "true"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # Only unset fields were filled in (defaults): no warning.
    assert "warning:" not in done.stderr
    privileged = cli("review", str(FIXTURES / "kex-privileged" / "pod.yaml"))
    assert privileged.returncode == 0, privileged.stderr
    assert "warning:" in privileged.stderr and "privileged" in privileged.stderr


def test_review_patch_and_review_outputs_and_stdin():
    patch = cli("review", "--output", "patch", "-", stdin=DAGS_IN_IMAGE.read_text())
    assert patch.returncode == 0
    ops = json.loads(patch.stdout)
    assert {
        "op": "add",
        "path": "/metadata/labels/task-pod-webhook~1enforced",
        "value": "true",
    } in ops
    review = cli("review", "--output", "review", str(DAGS_IN_IMAGE))
    answer = json.loads(review.stdout)
    assert answer["kind"] == "AdmissionReview" and answer["response"]["patchType"] == "JSONPatch"


def test_review_multi_document_worst_exit_code():
    both = DAGS_IN_IMAGE.read_text() + "\n---\n" + DAGS_IN_VOLUME.read_text()
    done = cli("review", "-", stdin=both)
    assert done.returncode == 1
    assert "---" in done.stdout


def test_review_an_admission_review_is_answered_as_the_server_would():
    done = cli("review", str(FIXTURES / "edge-v1beta1-review" / "review.yaml"))
    answer = json.loads(done.stdout)
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    source = yaml.safe_load((FIXTURES / "edge-v1beta1-review" / "review.yaml").read_text())
    assert answer["response"]["uid"] == source["request"]["uid"]


@pytest.mark.parametrize(
    ("stdin", "fragment"),
    [
        ("a: [", "not valid YAML"),
        ("kind: ConfigMap\napiVersion: v1", "is not a Pod or an AdmissionReview"),
        ("- 1\n- 2", "expected a Pod or an AdmissionReview"),
        ("", "no documents"),
        ('{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request:"),
    ],
)
def test_review_unusable_input_exits_2_without_traceback(stdin, fragment):
    done = cli("review", "-", stdin=stdin)
    assert done.returncode == 2
    assert fragment in done.stderr
    assert "Traceback" not in done.stderr


def test_review_missing_file_exits_2():
    done = cli("review", "does-not-exist.yaml")
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_review_bad_shape_is_a_denial_naming_the_field(tmp_path: Path):
    pod = yaml.safe_load(DAGS_IN_IMAGE.read_text())
    pod["spec"]["containers"][0]["ports"] = "8080"
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    done = cli("review", str(path))
    assert done.returncode == 1
    assert "spec.containers[0].ports: expected a list, got string" in done.stdout


def test_update_golden_rewrites_only_changed_goldens(tmp_path: Path):
    """A golden equal in content (keys in another order) is left as it is; a stale one
    and a missing one are written, and the run then passes."""
    names = ["kpo-plain", "kex-dags-in-image", "kex-privileged"]
    for name in names:
        shutil.copytree(FIXTURES / name, tmp_path / name)
    reordered = tmp_path / "kpo-plain" / "mutated.yaml"
    reordered.write_text(yaml.safe_dump(yaml.safe_load(reordered.read_text()), sort_keys=True))
    before = reordered.read_bytes()
    stale = tmp_path / "kex-dags-in-image" / "mutated.yaml"
    stale_pod = yaml.safe_load(stale.read_text())
    stale_pod["metadata"]["labels"]["task-pod-webhook/enforced"] = "stale"
    stale.write_text(yaml.safe_dump(stale_pod))
    missing = tmp_path / "kex-privileged" / "mutated.yaml"
    missing.unlink()
    assert cli("test", str(tmp_path)).returncode == 1
    done = cli("test", str(tmp_path), "--update-golden")
    assert done.returncode == 0, done.stdout
    assert reordered.read_bytes() == before
    assert yaml.safe_load(stale.read_text())["metadata"]["labels"]["task-pod-webhook/enforced"] == (
        "true"
    )
    assert missing.exists()
    assert cli("test", str(tmp_path)).returncode == 0


def test_test_command_runs_every_fixture():
    done = cli("test", str(FIXTURES))
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    cases = len(list(FIXTURES.glob("*/case.yaml")))
    assert sum(line.startswith("PASS") for line in lines) == cases
    assert lines[-1] == f"{cases} passed, 0 failed"


def test_test_command_reports_a_failing_case(tmp_path: Path):
    case = tmp_path / "wrong-expectation"
    case.mkdir()
    (case / "pod.yaml").write_text(DAGS_IN_VOLUME.read_text())
    (case / "case.yaml").write_text("expect: {allowed: true}\n")
    done = cli("test", str(tmp_path))
    assert done.returncode == 1
    assert "FAIL  wrong-expectation: denied" in done.stdout
    assert "expected allowed=True, got False" in done.stdout


def test_policy_default_and_check(tmp_path: Path):
    default = cli("policy", "default")
    assert default.returncode == 0
    path = tmp_path / "p.yaml"
    path.write_text(default.stdout)
    assert cli("policy", "check", str(path)).returncode == 0
    path.write_text("resources: {min: {cpu: lots}}\nlabels: {set: {dag_id: x}}\n")
    bad = cli("policy", "check", str(path))
    assert bad.returncode == 2
    assert "resources.min.cpu: 'lots' is not a valid quantity" in bad.stderr


def test_review_with_a_policy_file(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("volumes: {action: warn}\n")
    done = cli("review", "--policy", str(path), str(DAGS_IN_VOLUME))
    assert done.returncode == 0
    assert "[warn mode] would deny: spec.volumes[0] (name=airflow-dags)" in done.stderr
    bad = cli("review", "--policy", str(tmp_path / "missing.yaml"), str(DAGS_IN_VOLUME))
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def test_environment_twins_and_flags_winning(tmp_path: Path):
    path = tmp_path / "p.yaml"
    path.write_text("volumes: {action: warn}\n")
    via_env = cli("review", str(DAGS_IN_VOLUME), env={"TPW_POLICY": str(path)})
    assert via_env.returncode == 0
    flag_wins = cli("review", "--output", "patch", str(DAGS_IN_IMAGE), env={"TPW_OUTPUT": "review"})
    assert isinstance(json.loads(flag_wins.stdout), list)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--port", "notaport"],
        ["serve", "--workers", "0"],
        ["review"],
        ["nope"],
        ["review", "--output", "yaml", "x"],
    ],
)
def test_bad_flags_exit_2(args):
    done = cli(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_bad_environment_value_exits_2():
    done = cli("serve", env={"TPW_PORT": "eighty"})
    assert done.returncode == 2 and "TPW_PORT" in done.stderr
