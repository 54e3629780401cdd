"""AdmissionResponse constructors: the only way a response is made.

Every constructor echoes the request's uid. A patch is sent only when it has
operations; warnings are kept within the apiserver's limits (each at most
256 characters, all together at most 4096, the overflow summarized in a last
``... and N more``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from webhook import jsonio
from webhook.admission.protocol import AdmissionResponse, AdmissionReviewResponse

WARNING_MAX = 256
WARNINGS_TOTAL_MAX = 4096


def fit_warnings(warnings: Sequence[str]) -> list[str]:
    """At most 4096 characters in all, each at most 256; the rest summarized."""
    out: list[str] = []
    used = 0
    for index, warning in enumerate(warnings):
        text = warning if len(warning) <= WARNING_MAX else warning[: WARNING_MAX - 3] + "..."
        rest = len(warnings) - index - 1
        reserve = len(f"... and {rest} more") if rest else 0
        if used + len(text) + reserve > WARNINGS_TOTAL_MAX:
            out.append(f"... and {len(warnings) - index} more")
            return out
        out.append(text)
        used += len(text)
    return out


def _base(
    uid: str,
    allowed: bool,
    warnings: Sequence[str],
    audit: dict[str, str] | None,
) -> AdmissionResponse:
    response: AdmissionResponse = {"uid": uid, "allowed": allowed}
    if warnings:
        response["warnings"] = fit_warnings(warnings)
    if audit:
        response["auditAnnotations"] = audit
    return response


def allowed(
    uid: str, warnings: Sequence[str] = (), audit: dict[str, str] | None = None
) -> AdmissionResponse:
    return _base(uid, True, warnings, audit)


def patched(
    uid: str,
    patch: list[dict[str, object]],
    warnings: Sequence[str] = (),
    audit: dict[str, str] | None = None,
) -> AdmissionResponse:
    response = _base(uid, True, warnings, audit)
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(jsonio.dumps(patch)).decode("ascii")
    return response


def denied(
    uid: str, message: str, warnings: Sequence[str] = (), audit: dict[str, str] | None = None
) -> AdmissionResponse:
    response = _base(uid, False, warnings, audit)
    response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    return response


def errored(uid: str, message: str, code: int = 500) -> AdmissionResponse:
    """Our own failure: the pod is refused (failurePolicy Fail would anyway)."""
    return {
        "uid": uid,
        "allowed": False,
        "status": {"code": code, "reason": "InternalError", "message": message},
    }


def review(api_version: str, response: AdmissionResponse) -> AdmissionReviewResponse:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}
