"""Where admission gets its facts: the seam between the pure core and the API.

``FactsSource`` is what the server calls before deciding; ``kube.KubeFacts``
answers from watch-fed caches, ``NoKubeFacts`` when there is no API access
(``--no-kube``, or the offline ``review`` command).
"""

from __future__ import annotations

from typing import Any, Protocol

from webhook.policy import Policy
from webhook.rules.base import Facts, ServiceAccountFact


class FactsSource(Protocol):
    @property
    def synced(self) -> bool: ...

    async def facts_for(self, namespace: str, pod: Any, policy: Policy) -> Facts: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class NoKubeFacts:
    """No API: namespace labels unknown; service account lookups fail as the policy says."""

    def __init__(self, reason: str = "no Kubernetes API access (--no-kube)") -> None:
        self.reason = reason

    @property
    def synced(self) -> bool:
        return True

    def facts(self, namespace: str, policy: Policy) -> Facts:
        account = None
        if policy.looks_up_service_accounts:
            account = ServiceAccountFact("error", error=self.reason)
        return Facts(namespace=namespace, service_account=account)

    async def facts_for(self, namespace: str, pod: Any, policy: Policy) -> Facts:
        return self.facts(namespace, policy)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
