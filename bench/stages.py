"""In-process cost of each stage of one review, per body (no network, no TLS).

Calls what ``webhook.serving.app._admit`` calls, one stage at a time, on the bench
bodies, and times each in a loop: parsing, the shape check, each rule, the
patch, the response, the decision log line, the metrics. Also the naive
mutator's patch (deepcopy + apply + ``jsonpatch.make_patch``) for the same
changes, and a cProfile of ``decide`` (top functions by own time).

    python bench/stages.py [--seconds 0.4]

Prints one JSON line (``BENCH_JSON {...}``).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonpatch
import orjson

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import bodies  # noqa: E402
from naive_server import apply_change  # noqa: E402

from webhook import jsonio  # noqa: E402
from webhook.admission import responses  # noqa: E402
from webhook.admission.decide import _rules_for, decide  # noqa: E402
from webhook.admission.facts import NoKubeFacts  # noqa: E402
from webhook.admission.patch import build_patch  # noqa: E402
from webhook.admission.protocol import parse_review  # noqa: E402
from webhook.admission.shape import check_pod_shape  # noqa: E402
from webhook.policy import Policy, default_policy, policy_from_document  # noqa: E402
from webhook.rules.base import Facts  # noqa: E402
from webhook.rules.registry import evaluate  # noqa: E402
from webhook.serving.app import _log_decision  # noqa: E402
from webhook.serving.logs import setup_logging  # noqa: E402
from webhook.serving.metrics import Metrics  # noqa: E402

PROFILES = 20
PROFILES_POLICY = policy_from_document(bodies.profiles_policy(PROFILES))


def timed(function: Callable[[], object], seconds: float) -> float:
    """Microseconds per call, from a loop of about ``seconds``."""
    function()
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            function()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 8:
            break
        count *= 2
    count = max(1, int(count * seconds / elapsed))
    start = time.perf_counter()
    for _ in range(count):
        function()
    return round((time.perf_counter() - start) / count * 1e6, 2)


def paired(
    first: Callable[[], object], second: Callable[[], object], seconds: float, rounds: int = 5
) -> tuple[float, float]:
    """Two costs to compare, measured in alternation and each the best of ``rounds``: on
    shared cores a neighbour's burst must not land on one side of the comparison only."""
    a, b = [], []
    for _ in range(rounds):
        a.append(timed(first, seconds / rounds))
        b.append(timed(second, seconds / rounds))
    return min(a), min(b)


def _naive_patch(pod: Any, results: Any) -> list[dict[str, Any]]:
    mutated = copy.deepcopy(pod)
    for _rule, action, outcome in results:
        if action == "enforce":
            for change in outcome.changes:
                apply_change(mutated, change)
    patch: list[dict[str, Any]] = jsonpatch.make_patch(pod, mutated).patch
    return patch


def body_stages(raw: bytes, seconds: float, metrics: Metrics) -> dict[str, float]:
    policy = default_policy()
    request = parse_review(raw)
    facts = NoKubeFacts().facts(request.namespace, policy)
    selected = _rules_for(request)
    assert selected is not None
    rules, _ = selected
    pod = request.object
    results = evaluate(rules, pod, policy, facts)
    changes = [c for _, action, o in results if action == "enforce" for c in o.changes]
    decision = decide(request, policy, facts)
    out: dict[str, float] = {}
    out["orjson.loads (the ceiling's parse)"] = timed(lambda: orjson.loads(raw), seconds)
    out["parse_review"] = timed(lambda: parse_review(raw), seconds)
    out["decide (all below)"] = timed(lambda: decide(request, policy, facts), seconds)
    # The same review with the namespace's labels known, without and with 20 profiles
    # (SPEC §12; the last profile matches: every selector is evaluated).
    labelled = Facts(request.namespace, bodies.tenant_labels(PROFILES - 1))
    without, with_profiles = paired(
        lambda: decide(request, policy, labelled),
        lambda: decide(request, PROFILES_POLICY, labelled),
        seconds,
    )
    out["decide, no profiles, labels known"] = without
    out[f"decide, {PROFILES} profiles, the last matches"] = with_profiles

    def answer(chosen: Policy) -> bytes:
        parsed = parse_review(raw)
        answered = decide(parsed, chosen, labelled)
        return jsonio.dumps(responses.review(parsed.api_version, answered.response))

    without, with_profiles = paired(
        lambda: answer(policy), lambda: answer(PROFILES_POLICY), seconds
    )
    out["request in process (parse, decide, encode), no profiles"] = without
    out[f"request in process (parse, decide, encode), {PROFILES} profiles"] = with_profiles
    out["  check_pod_shape"] = timed(lambda: check_pod_shape(pod), seconds)
    for rule in rules:
        out[f"  rule {rule.id}"] = timed(lambda rule=rule: rule.check(pod, policy, facts), seconds)
    if changes:
        out["  build_patch"] = timed(lambda: build_patch(pod, changes), seconds)
        out["naive: deepcopy + apply + make_patch"] = timed(
            lambda: _naive_patch(pod, results), seconds
        )
        out["naive: copy.deepcopy alone"] = timed(lambda: copy.deepcopy(pod), seconds)
    out["response encode (review + orjson.dumps)"] = timed(
        lambda: jsonio.dumps(responses.review(request.api_version, decision.response)), seconds
    )
    out["decision log line"] = timed(
        lambda: _log_decision("mutate", request, decision, 0.001), seconds
    )

    def count() -> None:
        metrics.requests.labels("mutate", request.operation, decision.verdict, "base").inc()
        metrics.latency.labels("mutate").observe(0.001)
        for rule, _ in decision.violations:
            metrics.violations.labels(rule).inc()
        for rule in decision.mutated_by:
            metrics.mutations.labels(rule).inc()

    out["metrics updates"] = timed(count, seconds)
    return out


def decide_profile(raw: bytes, seconds: float, top: int = 12) -> list[dict[str, Any]]:
    policy = default_policy()
    request = parse_review(raw)
    facts = NoKubeFacts().facts(request.namespace, policy)
    profiler = cProfile.Profile()
    deadline = time.perf_counter() + seconds
    calls = 0
    profiler.enable()
    while time.perf_counter() < deadline:
        decide(request, policy, facts)
        calls += 1
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = []
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    ranked = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _) in ranked[:top]:
        rows.append(
            {
                "function": f"{function} ({_short(filename)}:{line})",
                "own_share": round(tottime / total, 4),
                "calls_per_review": round(ncalls / calls, 1),
                "own_us_per_review": round(tottime / calls * 1e6, 2),
                "cum_us_per_review": round(cumtime / calls * 1e6, 2),
            }
        )
    return rows


def _short(filename: str) -> str:
    """A module path without this machine's directories."""
    for marker in ("site-packages/", "/webhook/", "/bench/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail if marker == "site-packages/" else marker.strip("/") + "/" + tail
    if filename.startswith("<"):
        return filename
    parts = Path(filename).parts
    return "/".join(parts[-2:]) if "python3" in filename else parts[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=0.4)
    args = parser.parse_args()
    # The server logs one JSON line per decision to stderr; here to a file, as a pod's log.
    sink = tempfile.NamedTemporaryFile("w", prefix="tpw-stages-", delete=False)  # noqa: SIM115
    stderr = sys.stderr
    sys.stderr = sink
    try:
        setup_logging()
        metrics = Metrics()
        result: dict[str, Any] = {"stages_us": {}, "decide_profile": {}}
        built = bodies.build()
        for name in bodies.NAMES:
            raw = orjson.dumps(built[name])
            result["stages_us"][name] = body_stages(raw, args.seconds, metrics)
        for name in ("pod-1", "pod-50"):
            result["decide_profile"][name] = decide_profile(
                orjson.dumps(built[name]), args.seconds * 3
            )
    finally:
        sys.stderr = stderr
        logging.getLogger().handlers.clear()
        sink.close()
        os.unlink(sink.name)
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
