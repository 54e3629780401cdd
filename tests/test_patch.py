"""The patch builder: minimal operations, JSON Pointer escaping, missing parents."""

from __future__ import annotations

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.admission.patch import build_patch, escape
from webhook.rules.base import REMOVE, Change


@pytest.mark.parametrize(
    ("part", "token"), [("a/b", "a~1b"), ("m~n", "m~0n"), ("~/", "~0~1"), (3, "3")]
)
def test_escape(part, token):
    assert escape(part) == token


def test_operations():
    obj = {"metadata": {"labels": {"a": "1", "x/y": "2"}}, "spec": {"containers": [{"name": "c"}]}}
    ops = build_patch(
        obj,
        [
            Change(("metadata", "labels", "a"), "1"),  # already so: nothing
            Change(("metadata", "labels", "x/y"), REMOVE),  # remove with escaping
            Change(("metadata", "labels", "new/key"), "v"),  # add
            Change(("metadata", "annotations", "k"), "v"),  # missing parent added whole
            Change(("spec", "containers", 0, "securityContext", "privileged"), False),
            Change(("spec", "containers", 0, "securityContext", "capabilities", "drop"), ["ALL"]),
            Change(("spec", "securityContext", "gone"), REMOVE),  # removing what is absent: nothing
        ],
    )
    assert ops == [
        {"op": "remove", "path": "/metadata/labels/x~1y"},
        {"op": "add", "path": "/metadata/labels/new~1key", "value": "v"},
        {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}},
        {
            "op": "add",
            "path": "/spec/containers/0/securityContext",
            "value": {"privileged": False, "capabilities": {"drop": ["ALL"]}},
        },
    ]


def test_null_parent_is_replaced_and_a_later_change_wins():
    obj = {"spec": {"securityContext": None}}
    ops = build_patch(
        obj,
        [Change(("spec", "securityContext", "a"), 1), Change(("spec", "securityContext", "a"), 2)],
    )
    assert ops == [{"op": "replace", "path": "/spec/securityContext", "value": {"a": 2}}]


def test_type_change_is_a_replace():
    # 1 == True in Python; JSON distinguishes them.
    assert build_patch({"a": 1}, [Change(("a",), True)]) == [
        {"op": "replace", "path": "/a", "value": True}
    ]


keys = st.text(alphabet="ab/~.-", min_size=1, max_size=4)
values = st.one_of(st.integers(), st.text(max_size=3), st.booleans())
trees = st.recursive(
    st.dictionaries(keys, values, max_size=3),
    lambda inner: st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)
changes = st.lists(
    st.tuples(st.lists(keys, min_size=1, max_size=3), st.one_of(values, st.just(REMOVE))),
    max_size=6,
)


@given(trees, changes)
def test_applying_the_patch_gives_every_change_and_a_second_patch_is_empty(obj, edits):
    change_list = [Change(tuple(path), value) for path, value in edits]
    # a later change under a leaf set earlier would conflict; keep prefix-free paths
    paths = [c.path for c in change_list]
    if any(p != q and q[: len(p)] == p for p in paths for q in paths):
        return
    patched = jsonpatch.apply_patch(obj, build_patch(obj, change_list))
    final = {c.path: c.value for c in change_list}
    for path, value in final.items():
        node = patched
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if value is REMOVE:
            assert not isinstance(node, dict) or path[-1] not in node
        else:
            assert node[path[-1]] == value
    assert build_patch(patched, change_list) == []
