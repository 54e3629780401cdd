"""The AdmissionReview wire format (admission.k8s.io/v1 and v1beta1).

``parse_review`` turns a request body into an ``AdmissionRequest`` or raises
``ProtocolError`` (answered with HTTP 400: the body is not a review at all).
A review whose *object* has an unexpected shape is a valid review of a bad
pod: that is for the rules to deny, not for this module.

Exceptions::

    ValueError
     └── ProtocolError      malformed body: not JSON (or nested past the decoder's
                            limit), not an AdmissionReview
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from webhook import jsonio

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")


class ProtocolError(ValueError):
    """The body is not an AdmissionReview we can answer (HTTP 400)."""


class Status(TypedDict, total=False):
    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]
    auditAnnotations: NotRequired[dict[str, str]]


class AdmissionReviewResponse(TypedDict):
    apiVersion: str
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    api_version: str
    uid: str
    operation: str
    kind: str  # object kind, e.g. "Pod"
    resource: str  # e.g. "pods"
    sub_resource: str  # "" or e.g. "ephemeralcontainers"
    namespace: str
    name: str
    object: Any
    old_object: Any
    dry_run: bool
    username: str
    groups: tuple[str, ...]


def _field(obj: dict[str, Any], key: str, kind: type, path: str, default: Any = None) -> Any:
    value = obj.get(key, default)
    if value is None:
        value = default
    if value is not None and not isinstance(value, kind):
        raise ProtocolError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def parse_review(body: bytes) -> AdmissionRequest:
    try:
        review = jsonio.loads(body)
    except jsonio.JSONDecodeError as exc:
        raise ProtocolError(f"body is not valid JSON: {exc}") from None
    if not isinstance(review, dict):
        raise ProtocolError("body is not a JSON object")
    api_version = review.get("apiVersion")
    if review.get("kind") != "AdmissionReview" or api_version not in API_VERSIONS:
        raise ProtocolError(
            "body is not an AdmissionReview (kind AdmissionReview, apiVersion "
            f"{' or '.join(API_VERSIONS)}); got kind={review.get('kind')!r}, "
            f"apiVersion={api_version!r}"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ProtocolError("request: missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ProtocolError("request.uid: missing or not a string")
    kind = _field(request, "kind", dict, "request.kind", {})
    resource = _field(request, "resource", dict, "request.resource", {})
    user = _field(request, "userInfo", dict, "request.userInfo", {})
    groups = _field(user, "groups", list, "request.userInfo.groups", [])
    return AdmissionRequest(
        api_version=str(api_version),
        uid=uid,
        operation=_field(request, "operation", str, "request.operation", ""),
        kind=_field(kind, "kind", str, "request.kind.kind", ""),
        resource=_field(resource, "resource", str, "request.resource.resource", ""),
        sub_resource=_field(request, "subResource", str, "request.subResource", ""),
        namespace=_field(request, "namespace", str, "request.namespace", ""),
        name=_field(request, "name", str, "request.name", ""),
        object=request.get("object"),
        old_object=request.get("oldObject"),
        dry_run=bool(_field(request, "dryRun", bool, "request.dryRun", False)),
        username=_field(user, "username", str, "request.userInfo.username", ""),
        groups=tuple(g for g in groups if isinstance(g, str)),
    )


def uid_of(body: bytes) -> str | None:
    """Best-effort uid of a body that failed later, so an errored answer can echo it."""
    try:
        review = jsonio.loads(body)
        uid = review["request"]["uid"]
    except Exception:
        return None
    return uid if isinstance(uid, str) else None
