"""Volumes (SPEC §4.4): only the policy's volume types; no foreign token audiences.

- ``spec.volumes[i]``: the volume's type (its one key besides ``name``) must be
  in ``volumes.allowed`` (default configMap, secret, emptyDir, projected,
  downwardAPI). Persistent volumes (``persistentVolumeClaim``, ``ephemeral``,
  which creates a PVC), ``hostPath``, ``csi``, ``nfs``, ... are violations.
- ``spec.volumes[i].projected.sources[j].serviceAccountToken.audience``, when
  set, must be in ``volumes.allowedTokenAudiences`` (default none): a token
  minted for a cloud STS is how a task would assume another account's role.
  No audience means the apiserver's own, which is always allowed.
"""

from __future__ import annotations

import json

from webhook.policy import Policy
from webhook.rules.base import EMPTY, Facts, Outcome, Pod, Violation


def check_volumes(pod: Pod, policy: Policy, facts: Facts) -> Outcome:
    rules = policy.volumes
    found: list[Violation] = []
    for index, volume in enumerate((pod.get("spec") or {}).get("volumes") or ()):
        where = f"spec.volumes[{index}] (name={volume.get('name', '')})"
        subject = f"volume {volume.get('name', '')}"
        kinds = [key for key, value in volume.items() if key != "name" and value is not None]
        if not kinds:
            kinds = ["emptyDir"]  # the API's default volume source
        for kind in kinds:
            if kind not in rules.allowed:
                found.append(
                    Violation(
                        where,
                        f"{kind} volumes are not supported for task pods; "
                        f"allowed types: {', '.join(rules.allowed)}",
                        subject,
                    )
                )
        projected = volume.get("projected") or {}
        for s, source in enumerate(projected.get("sources") or ()):
            audience = (source.get("serviceAccountToken") or {}).get("audience")
            if audience and audience not in rules.allowed_token_audiences:
                allowed = ", ".join(rules.allowed_token_audiences) or "none"
                found.append(
                    Violation(
                        where,
                        f"projected.sources[{s}].serviceAccountToken.audience "
                        f"{json.dumps(audience)} is not allowed; allowed audiences: {allowed}",
                        subject,
                    )
                )
    return Outcome(violations=tuple(found)) if found else EMPTY
