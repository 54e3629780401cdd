"""Profiles (SPEC §12) through a real apiserver: the apiserver calls the registered
webhook on every pod create, and the webhook picks the profile by the labels in its
namespace cache. Proves: the same pod is clamped differently in namespaces of two
profiles, an account allowed in one profile is denied in the other (the message
names the profile), and relabelling a namespace switches its profile within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import FIXTURES, Server
from tests.envtest import webhook as wh

pytestmark = [pytest.mark.envtest, pytest.mark.slow]

POLICY = (FIXTURES / "profiles-policy.yaml").read_text()
SIZE = "tenants.example/size"
SWITCHED_WITHIN = 5.0  # seconds


@pytest.fixture(scope="module")
def webhook(cluster: Any, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    wh.create_namespace(admin, "tenant-l", {SIZE: "large"})
    wh.create_namespace(admin, "tenant-s", {SIZE: "small"})
    with wh.registered_webhook(cluster, tmp_path_factory.mktemp("profiles"), POLICY) as server:
        yield server


def _create(admin: Any, namespace: str, account: str) -> dict[str, Any] | str:
    """The pod the apiserver would store (server-side dry run), or its refusal message.

    The pod asks for cpu 200 / memory 1Ti (an Airflow worker with a pod_override)."""
    pod = wh.load_yaml(FIXTURES / "profile-large-clamped" / "pod.yaml")
    pod["metadata"]["namespace"] = namespace
    pod["spec"]["serviceAccountName"] = account
    return wh.dry_run_create(admin, pod)


def _limits(answer: dict[str, Any] | str) -> dict[str, str] | None:
    if isinstance(answer, str):
        return None
    limits: dict[str, str] = answer["spec"]["containers"][0]["resources"]["limits"]
    return limits


def test_the_same_pod_is_clamped_by_the_profile_of_its_namespace(
    admin: Any, webhook: Server
) -> None:
    assert _limits(_create(admin, "tenant-l", "large-worker")) == {"cpu": "16", "memory": "64Gi"}
    assert _limits(_create(admin, "tenant-s", "small-worker")) == {"cpu": "2", "memory": "4Gi"}


def test_an_account_allowed_in_one_profile_is_denied_in_another(
    admin: Any, webhook: Server
) -> None:
    denied = _create(admin, "tenant-s", "large-worker")
    assert isinstance(denied, str), denied
    assert "of the task pod policy (policy profile small)" in denied
    assert '"large-worker"' in denied


def test_a_relabelled_namespace_switches_profile_within_seconds(
    admin: Any, webhook: Server
) -> None:
    wh.create_namespace(admin, "tenant-r", {SIZE: "large"})
    wh.wait_until(
        lambda: (
            _limits(_create(admin, "tenant-r", "large-worker")) == {"cpu": "16", "memory": "64Gi"}
        ),
        SWITCHED_WITHIN,
        "the large profile in the new namespace",
    )
    wh.core(admin).patch_namespace("tenant-r", {"metadata": {"labels": {SIZE: "dev"}}})
    relabelled = time.monotonic()
    wh.wait_until(
        lambda: (
            _limits(_create(admin, "tenant-r", "small-worker")) == {"cpu": "2", "memory": "4Gi"}
        ),
        SWITCHED_WITHIN,
        "the small profile after the relabel",
    )
    print(f"\nrelabel → profile small in {(time.monotonic() - relabelled) * 1000:.0f} ms")
    denied = _create(admin, "tenant-r", "large-worker")
    assert isinstance(denied, str) and "(policy profile small)" in denied
