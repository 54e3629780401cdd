"""The policy in force, and its hot reload (SPEC §5).

A ConfigMap volume updates a file by swapping a ``..data`` symlink and sends
no reliable file events, so the file is watched by content: its bytes are
hashed on every check. A valid new policy applies to the next request; an
invalid one is logged and counted, and the old policy stays in force.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from webhook.policy import Policy, PolicyError, default_policy, load_policy_text

log = logging.getLogger("task_pod_webhook.policy")


# What the server can't serve although the file is valid: the errors, or none.
Admissible = Callable[[Policy], list[str]]


class PolicyStore:
    def __init__(self, path: Path | None, admissible: Admissible | None = None) -> None:
        """Load the policy now; raises PolicyError when the first load fails.

        ``admissible`` rejects a valid policy this server can't apply (profiles
        without Kubernetes API access), at start-up and on every reload alike."""
        self.path = path
        self._admissible = admissible
        self._digest = b""
        self.current: Policy = default_policy()
        if path is not None:
            data = self._read()
            self.current = self._parse(data)
            self._digest = hashlib.sha256(data).digest()

    def _read(self) -> bytes:
        assert self.path is not None
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise PolicyError([f"{self.path}: cannot read: {exc}"]) from None

    def _parse(self, data: bytes) -> Policy:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError([f"{self.path}: not UTF-8: {exc}"]) from None
        policy = load_policy_text(text, str(self.path))
        errors = self._admissible(policy) if self._admissible else []
        if errors:
            raise PolicyError(errors)
        return policy

    def reload_if_changed(self) -> bool | None:
        """None: unchanged; True: new policy in force; False: invalid, old one kept."""
        if self.path is None:
            return None
        try:
            data = self._read()
        except PolicyError as exc:
            log.error(
                "policy reload failed; keeping the policy in force", extra={"errors": exc.errors}
            )
            return False
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return None
        self._digest = digest  # an invalid file is reported once, not on every check
        try:
            policy = self._parse(data)
        except PolicyError as exc:
            log.error(
                "policy reload failed; keeping the policy in force",
                extra={"errors": exc.errors, "policy_hash": self.current.content_hash},
            )
            return False
        self.current = policy
        log.info("policy reloaded", extra={"policy_hash": policy.content_hash})
        return True

    async def watch(self, interval: float, on_result: Callable[[bool], None]) -> None:
        while True:
            await asyncio.sleep(interval)
            result = self.reload_if_changed()
            if result is not None:
                on_result(result)
