"""`task-pod-webhook certs` as scripts run it: a real process, its exit code, stdout and files."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import run_cli

FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")


def run_certs(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("certs", *args, cwd=cwd)


def contents(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FILES}


def ca_bundle_of(result: subprocess.CompletedProcess[str]) -> bytes:
    """The caBundle is the whole of stdout: one base64 line, so `$(... certs)` captures it."""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    return base64.b64decode(lines[0], validate=True)


def test_certs_writes_the_files_and_prints_the_ca_bundle(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = run_certs(
        tmp_path,
        "--out",
        str(out),
        "--service",
        "hook",
        "--namespace",
        "airflow",
        "--san",
        "127.0.0.1",
        "--san",
        "hook.example.com",
    )

    assert result.returncode == 0, result.stderr
    assert ca_bundle_of(result) == (out / "ca.crt").read_bytes()
    assert all((out / name).is_file() for name in FILES)
    assert stat.S_IMODE((out / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600
    serving = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {
        "hook",
        "hook.airflow",
        "hook.airflow.svc",
        "hook.airflow.svc.cluster.local",
        "hook.example.com",
    }
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


def test_second_run_keeps_the_files_and_force_reissues(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    first = run_certs(tmp_path, "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = contents(out)

    second = run_certs(tmp_path, "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert contents(out) == before
    assert ca_bundle_of(second) == ca_bundle_of(first)

    forced = run_certs(tmp_path, "--out", str(out), "--force")
    assert forced.returncode == 0, forced.stderr
    after = contents(out)
    assert all(after[name] != before[name] for name in FILES)
    assert ca_bundle_of(forced) == after["ca.crt"]
    assert stat.S_IMODE((out / "tls.key").stat().st_mode) == 0o600


def test_renew_before_beyond_the_validity_reissues_only_the_serving_certificate(
    tmp_path: Path,
) -> None:
    out = tmp_path / "certs"
    assert run_certs(tmp_path, "--out", str(out)).returncode == 0
    before = contents(out)

    renewed = run_certs(tmp_path, "--out", str(out), "--renew-before", "9000h")  # > 1 year

    assert renewed.returncode == 0, renewed.stderr
    after = contents(out)
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["tls.crt"] != before["tls.crt"]
    assert after["tls.key"] != before["tls.key"]


@pytest.mark.parametrize("value", ["soon", "720", "1.5h"])
def test_bad_renew_before_exits_2_naming_the_flag(tmp_path: Path, value: str) -> None:
    out = tmp_path / "certs"
    result = run_certs(tmp_path, "--out", str(out), "--renew-before", value)
    assert result.returncode == 2
    assert "--renew-before" in result.stderr
    assert repr(value) in result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_bad_san_exits_2_naming_the_value(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = run_certs(tmp_path, "--out", str(out), "--san", "not a name")
    assert result.returncode == 2
    assert "'not a name'" in result.stderr
    assert not out.exists()
