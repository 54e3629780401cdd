"""resources: defaults, clamping, limit >= request, Guaranteed QoS, maxPerPod, spelling."""

from __future__ import annotations

import json

import jsonpatch
import pytest

from tests.podkit import container, pod, policy
from webhook.admission.patch import build_patch
from webhook.policy import default_policy
from webhook.rules.base import Facts
from webhook.rules.resources import ORIGINAL_ANNOTATION, check_resources


def _final(resources, pol=None, name="base"):
    subject = pod(
        container(name, resources=resources) if resources is not None else container(name)
    )
    outcome = check_resources(subject, pol or default_policy(), Facts())
    patched = jsonpatch.apply_patch(subject, build_patch(subject, outcome.changes))
    final = patched["spec"]["containers"][0].get("resources") or {}
    result = {"requests": final.get("requests") or {}, "limits": final.get("limits") or {}}
    return result, outcome


RESOURCE_CASES = [
    (
        "no resources: defaults",
        None,
        {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    ),
    (
        "limit only: request := limit",
        {"limits": {"cpu": "2", "memory": "4Gi"}},
        {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}},
    ),
    (
        "request only: default limit, raised to the request",
        {"requests": {"cpu": "3", "memory": "512Mi"}},
        {"requests": {"cpu": "3", "memory": "512Mi"}, "limits": {"cpu": "3", "memory": "2Gi"}},
    ),
    (
        "tiny: raised to min",
        {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "20m", "memory": "32Mi"}},
        {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "100m", "memory": "128Mi"},
        },
    ),
    (
        "huge: lowered to max",
        {"requests": {"cpu": "200", "memory": "1Ti"}, "limits": {"cpu": "400", "memory": "2Ti"}},
        {"requests": {"cpu": "43", "memory": "86Gi"}, "limits": {"cpu": "43", "memory": "86Gi"}},
    ),
    (
        "exotic spellings kept when in bounds",
        {
            "requests": {"cpu": "0.5", "memory": "1.5Gi"},
            "limits": {"cpu": "1500m", "memory": "2e9"},
        },
        {
            "requests": {"cpu": "0.5", "memory": "1.5Gi"},
            "limits": {"cpu": "1500m", "memory": "2e9"},
        },
    ),
    (
        "1e3 bytes of memory is below min",
        {"requests": {"memory": "1e3"}, "limits": {"memory": "1Gi"}},
        {"requests": {"memory": "128Mi", "cpu": "500m"}, "limits": {"memory": "1Gi", "cpu": "1"}},
    ),
    (
        "limit below request raised",
        {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
    ),
    (
        "a bare number is a quantity (YAML cpu: 2)",
        {"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"cpu": 4, "memory": "1Gi"}},
        {"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"cpu": 4, "memory": "1Gi"}},
    ),
]


@pytest.mark.parametrize(
    ("resources", "expected"), [c[1:] for c in RESOURCE_CASES], ids=[c[0] for c in RESOURCE_CASES]
)
def test_resource_rule(resources, expected):
    result, outcome = _final(resources)
    assert result == expected
    assert not outcome.violations


def test_a_changed_value_is_a_warning_a_filled_one_is_not_and_both_are_recorded():
    result, outcome = _final({"requests": {"cpu": "10m"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    # requests.memory was unset and is filled in from the limit: silently.
    assert result["requests"] == {"cpu": "100m", "memory": "1Gi"}
    assert outcome.notes == (
        "container base: resources.requests.cpu 10m changed to 100m (policy min)",
    )
    record = {c.path: c.value for c in outcome.changes}[
        ("metadata", "annotations", ORIGINAL_ANNOTATION)
    ]
    assert json.loads(record) == {"base": {"requests": {"cpu": "10m", "memory": None}}}


@pytest.mark.parametrize(
    ("resources", "notes"),
    [
        # Nothing set: every default filled in, not one warning.
        ({}, ()),
        # A limit above the max and the request defaulted from it: only the limit warns.
        (
            {"limits": {"cpu": "100"}},
            ("container base: resources.limits.cpu 100 changed to 43 (policy max)",),
        ),
        # A limit below the request is raised: the user's limit changed, a warning.
        (
            {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
            ("container base: resources.limits.cpu 1 changed to 2 (raised to the request)",),
        ),
    ],
    ids=["defaults only", "clamped limit", "raised limit"],
)
def test_warnings_only_for_values_the_pod_set(resources, notes):
    _, outcome = _final(resources)
    assert outcome.changes  # something was filled in every time
    assert outcome.notes == notes


def test_xcom_sidecar_is_exempt_from_min_only():
    result, _ = _final({"requests": {"cpu": "1m", "memory": "10Mi"}}, name="airflow-xcom-sidecar")
    assert result["requests"] == {"cpu": "1m", "memory": "10Mi"}
    assert result["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_requests_equal_limits():
    pol = policy(resources={"requestsEqualLimits": True})
    result, _ = _final(
        {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "3Gi"}}, pol
    )
    assert result["requests"] == {"cpu": "2", "memory": "3Gi"}


@pytest.mark.parametrize("bad", ["abc", "12XB", "-1", "nan", "1_000", "", True])
def test_unparsable_quantity_is_a_violation(bad):
    _, outcome = _final({"limits": {"cpu": bad}})
    assert len(outcome.violations) == 1
    violation = outcome.violations[0]
    assert violation.where == "spec.containers[0] (name=base)"
    assert violation.what.startswith("resources.limits.cpu ")
    assert "is not a valid quantity" in violation.what


def test_untouched_values_keep_their_spelling_and_make_no_changes():
    resources = {
        "requests": {"cpu": "0.5", "memory": "1.5Gi"},
        "limits": {"cpu": "1", "memory": "2Gi"},
    }
    _, outcome = _final(resources)
    assert outcome.changes == ()


def _requests(cpu):
    return {
        "resources": {
            "requests": {"cpu": cpu, "memory": "1Gi"},
            "limits": {"cpu": cpu, "memory": "1Gi"},
        }
    }


@pytest.mark.parametrize(
    ("containers", "init", "denied"),
    [
        ([_requests("20"), _requests("20")], [], False),
        ([_requests("20"), _requests("20"), _requests("4")], [], True),  # 44 > 43
        ([_requests("1")], [_requests("43")], False),  # a plain init container: max, not sum
        ([_requests("20")], [{**_requests("24"), "restartPolicy": "Always"}], True),  # sidecar adds
        ([_requests("1")], [{**_requests("30"), "restartPolicy": "Always"}, _requests("14")], True),
    ],
)
def test_max_per_pod_counts_like_the_scheduler(containers, init, denied):
    subject = pod(
        *[container(f"c{i}", **c) for i, c in enumerate(containers)],
        initContainers=[container(f"i{i}", **c) for i, c in enumerate(init)],
    )
    outcome = check_resources(subject, default_policy(), Facts())
    assert bool(outcome.violations) is denied
    if denied:
        assert "maxPerPod 43" in outcome.violations[0].what
