"""The shape check: its fast "well formed?" answer agrees with the walk that names fields."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.podkit import container, pod
from webhook.admission.shape import _FITS_POD, check_pod_shape

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                    st.text(max_size=3))  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
PATHS = [
    ("metadata",), ("metadata", "labels"), ("metadata", "labels", "a"), ("spec",),
    ("spec", "containers"), ("spec", "containers", 0), ("spec", "containers", 0, "ports"),
    ("spec", "containers", 0, "securityContext"), ("spec", "containers", 0, "securityContext", "privileged"),
    ("spec", "containers", 0, "resources", "limits", "cpu"), ("spec", "securityContext", "sysctls"),
    ("spec", "volumes"), ("spec", "hostNetwork"), ("spec", "containers", 0, "livenessProbe", "httpGet", "host"),
]  # fmt: skip


def _set(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        nxt = obj[part] if isinstance(obj, list) else obj.setdefault(part, {})
        if not isinstance(nxt, dict | list):
            return
        obj = nxt
    if isinstance(obj, dict) or (isinstance(path[-1], int) and path[-1] < len(obj)):
        obj[path[-1]] = value


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), json_values)
@example(("metadata", "labels"), {"": None})  # once found in CI: a null map value
def test_fast_answer_agrees_with_the_named_violations(path, value):
    subject = pod(container(ports=[{"containerPort": 80}], resources={"limits": {"cpu": "1"}}))
    _set(subject, path, value)
    assert _FITS_POD(subject) == (check_pod_shape(subject) == [])


def test_a_null_map_value_is_absent_but_a_null_list_item_is_not():
    labelled = pod(labels={"kubernetes_executor": "True", "team": None})
    assert _FITS_POD(labelled)
    assert check_pod_shape(labelled) == []
    listed = pod(container(), None)
    assert not _FITS_POD(listed)
    assert [str(v) for v in check_pod_shape(listed)] == [
        "spec.containers[1]: expected an item, got null"
    ]


def test_well_formed_pod_fits():
    assert _FITS_POD(pod(container(securityContext={"runAsUser": 1000, "privileged": False})))
    assert not _FITS_POD(pod(container(securityContext={"runAsUser": True})))
