"""volumes: allowed types only; projected token audiences."""

from __future__ import annotations

import pytest

from tests.podkit import pod, policy
from webhook.policy import PolicyError, default_policy
from webhook.rules.base import Facts
from webhook.rules.volumes import check_volumes

VOLUME_CASES = [
    ("configMap", {"configMap": {"name": "c"}}, None),
    ("secret", {"secret": {"secretName": "s"}}, None),
    ("emptyDir", {"emptyDir": {}}, None),
    ("downwardAPI", {"downwardAPI": {"items": []}}, None),
    ("projected", {"projected": {"sources": [{"configMap": {"name": "c"}}]}}, None),
    ("no source at all means emptyDir", {}, None),
    ("pvc", {"persistentVolumeClaim": {"claimName": "dags"}}, "persistentVolumeClaim"),
    ("generic ephemeral", {"ephemeral": {"volumeClaimTemplate": {"spec": {}}}}, "ephemeral"),
    ("hostPath", {"hostPath": {"path": "/var/run/docker.sock"}}, "hostPath"),
    ("csi", {"csi": {"driver": "x"}}, "csi"),
    ("nfs", {"nfs": {"server": "s", "path": "/"}}, "nfs"),
]


@pytest.mark.parametrize(
    ("source", "bad"), [c[1:] for c in VOLUME_CASES], ids=[c[0] for c in VOLUME_CASES]
)
def test_volume_types(source, bad):
    outcome = check_volumes(pod(volumes=[{"name": "v", **source}]), default_policy(), Facts())
    if bad is None:
        assert outcome.violations == ()
    else:
        (violation,) = outcome.violations
        assert violation.where == "spec.volumes[0] (name=v)"
        assert violation.what.startswith(
            f"{bad} volumes are not supported for task pods; allowed types: "
        )


def _token(audience=None):
    token = {"path": "token"}
    if audience is not None:
        token["audience"] = audience
    return {"name": "tok", "projected": {"sources": [{"serviceAccountToken": token}]}}


def test_token_audiences():
    assert not check_volumes(pod(volumes=[_token()]), default_policy(), Facts()).violations
    (violation,) = check_volumes(
        pod(volumes=[_token("sts.amazonaws.com")]), default_policy(), Facts()
    ).violations
    assert str(violation) == (
        "spec.volumes[0] (name=tok): projected.sources[0].serviceAccountToken.audience "
        '"sts.amazonaws.com" is not allowed; allowed audiences: none'
    )
    allowing = policy(volumes={"allowedTokenAudiences": ["vault"]})
    assert not check_volumes(pod(volumes=[_token("vault")]), allowing, Facts()).violations


def test_every_bad_volume_is_listed():
    subject = pod(
        volumes=[
            {"name": "a", "hostPath": {"path": "/"}},
            {"name": "b", "emptyDir": {}},
            {"name": "c", "persistentVolumeClaim": {"claimName": "x"}},
        ]
    )
    outcome = check_volumes(subject, default_policy(), Facts())
    assert [v.where for v in outcome.violations] == [
        "spec.volumes[0] (name=a)",
        "spec.volumes[2] (name=c)",
    ]


@pytest.mark.parametrize("allowed", [["hostPath"], ["bogusVolume"]])
def test_policy_cannot_allow_what_restricted_forbids(allowed):
    with pytest.raises(PolicyError, match="volumes"):
        policy(volumes={"allowed": allowed})
