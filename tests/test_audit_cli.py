"""``audit`` and the DAG-repository pre-flight (``review DIR --output junit``) as
scripts run them: the real CLI as a subprocess. What needs an apiserver is in
tests/envtest/test_audit.py."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import FIXTURES, free_port, run_cli
from tests.fake_apiserver import write_kubeconfig


def test_audit_with_an_unreachable_api_exits_2_in_one_line(tmp_path: Path):
    config = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    done = run_cli("audit", "--kubeconfig", str(config), timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: audit: the Kubernetes API cannot be reached")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_audit_without_a_kubeconfig_exits_2(tmp_path: Path):
    done = run_cli("audit", "--kubeconfig", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "error: audit: no Kubernetes API configuration" in done.stderr
    assert "Traceback" not in done.stderr


def test_audit_usage_errors_exit_2(tmp_path: Path):
    config = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    done = run_cli("audit", "--kubeconfig", str(config), "--write-reports", "-l", "a=b")
    assert done.returncode == 2
    assert "--write-reports" in done.stderr and "-l/--selector" in done.stderr
    assert run_cli("audit", "--output", "csv").returncode == 2
    assert run_cli("audit", "-n", "a", "-A").returncode == 2
    twin = run_cli("audit", "--kubeconfig", str(config), env={"TPW_FAIL_ON": "sometimes"})
    assert twin.returncode == 2 and "TPW_FAIL_ON" in twin.stderr


def test_audit_flags_have_env_twins(tmp_path: Path):
    # The twin reaches the command: the kubeconfig named only by TPW_KUBECONFIG is the one read.
    done = run_cli("audit", env={"TPW_KUBECONFIG": str(tmp_path / "from-env")})
    assert done.returncode == 2 and "from-env" in done.stderr


def dag_repository(root: Path) -> Path:
    """What ``airflow kubernetes generate-dag-yaml`` leaves: a folder of pod YAMLs."""
    out = root / "airflow_yaml_output"
    (out / "orders_etl").mkdir(parents=True)
    shutil.copy(FIXTURES / "kex-dags-in-image" / "pod.yaml", out / "orders_etl" / "a.yml")
    shutil.copy(FIXTURES / "kex-dags-in-volume" / "pod.yaml", out / "orders_etl" / "b.yaml")
    shutil.copy(FIXTURES / "kpo-plain" / "pod.yaml", out / "c.yaml")
    (out / "README.txt").write_text("not a manifest")
    return out


def test_review_a_folder_as_junit(tmp_path: Path):
    folder = dag_repository(tmp_path)
    done = run_cli("review", str(folder), "--output", "junit")
    assert done.returncode == 1  # one pod of three would be denied
    root = ET.fromstring(done.stdout)
    cases = root.findall("./testsuite/testcase")
    assert [Path(c.get("name", "")).name for c in cases] == ["c.yaml", "a.yml", "b.yaml"]
    failures = [c for c in cases if c.find("failure") is not None]
    assert [Path(c.get("name", "")).name for c in failures] == ["b.yaml"]
    assert "persistentVolumeClaim" in (failures[0].find("failure").text or "")  # type: ignore[union-attr]
    suite = root.find("./testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")


def test_review_a_folder_that_passes_exits_0(tmp_path: Path):
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(FIXTURES / "kpo-plain" / "pod.yaml", folder / "p.yaml")
    done = run_cli("review", str(folder), "--output", "junit")
    assert done.returncode == 0, done.stderr
    assert ET.fromstring(done.stdout).find("./testsuite/testcase/failure") is None


def test_review_an_empty_folder_exits_2(tmp_path: Path):
    done = run_cli("review", str(tmp_path))
    assert done.returncode == 2
    assert "without *.yaml, *.yml or *.json files" in done.stderr
