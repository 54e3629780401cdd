"""Fixtures of the envtest tests: one real etcd + kube-apiserver for all of them.

Without ``KUBEBUILDER_ASSETS`` every test here is skipped with a reason that
names the variable (``-ra`` prints it in the summary of ``make test``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from tests.envtest import kit


# Package scope: one apiserver for every envtest test, stopped as soon as the
# last of them is done (not left idling under the rest of the suite).
@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.Cluster]:
    running = kit.Cluster.start(tmp_path_factory.mktemp("envtest"), kit.assets())
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="package")
def admin(cluster: kit.Cluster) -> Iterator[Any]:
    """A kubernetes ApiClient with the admin kubeconfig."""
    client = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield client
    finally:
        client.close()
