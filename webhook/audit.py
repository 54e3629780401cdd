"""``task-pod-webhook audit``: what the policy says about the pods already running (SPEC §13).

The pods are listed page by page (``kube.pods.pod_pages``, 500 a page) and each
page is judged and written out before the next is read, so memory stays flat
whatever the pod count. Each pod is turned into its CREATE
(``admission.verdicts.as_created``: the one place that knows what the
apiserver, the scheduler and the kubelet add to a stored pod), reviewed as
``review`` reviews a manifest (``offline.pod_request``) and decided by the same
``decide`` as the server, with the facts listed at the start
(``kube.pods.ListedFacts``: namespace labels, service accounts). What the
webhook never judges (exempt namespaces, mirror pods, pods that are not task
pods) is skipped by ``decide`` itself.

Two things a stored pod cannot say: who created it (``platformUsers`` of
``match: namespace`` can't be recognized, so every pod of an enforced
namespace is judged), and how it looked before later label updates.

Outputs: ``table`` (kubectl-like, aligned within each page, then a summary
line), ``json`` (one list), ``yaml`` (one list), ``junit`` (a testsuite per
namespace within a page, a testcase per pod). ``--write-reports`` writes one
PolicyReport per namespace as soon as the namespace's pods are all seen (the
apiserver lists pods ordered by namespace), and empties the reports of
namespaces with no judged pod left.

Exit codes: 1 when a pod meets ``--fail-on``, else 0; 2 for usage errors or
when the API cannot be read (one line on stderr, no traceback).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import yaml

from webhook import offline
from webhook.admission.decide import decide
from webhook.admission.verdicts import VERDICTS, PodAudit, as_created, audit_of
from webhook.flags import env_name
from webhook.kube import client, pods, reports
from webhook.policy import Policy

Output = Literal["table", "json", "yaml", "junit"]
FailOn = Literal["deny", "mutate", "never"]
OUTPUTS: Final = ("table", "json", "yaml", "junit")
FAIL_ON: Final = ("deny", "mutate", "never")
COLUMNS: Final = ("NAMESPACE", "POD", "DAG", "TASK", "VERDICT", "RULES")
FAILING: Final[dict[str, tuple[str, ...]]] = {
    "deny": ("would-deny",),
    "mutate": ("would-deny", "would-mutate"),
    "never": (),
}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_YamlDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@dataclass(frozen=True)
class AuditOptions:
    policy: Policy
    kubeconfig: Path | None = None
    namespace: str | None = None  # None: all namespaces
    selector: str | None = None
    output: Output = "table"
    fail_on: FailOn = "deny"
    write_reports: bool = False
    page_size: int = pods.PAGE_SIZE


class AuditError(Exception):
    """Unusable flags, or an API that cannot be read (exit 2)."""


# --- outputs -------------------------------------------------------------------


def _cell(value: str) -> str:
    return value or "<none>"


def table_rows(audits: Iterable[PodAudit]) -> list[tuple[str, ...]]:
    return [
        (
            a.namespace,
            a.name,
            _cell(a.dag),
            _cell(a.task),
            a.verdict,
            ",".join(a.rules) or "<none>",
        )
        for a in audits
    ]


class Sink:
    """Writes one page of results at a time; ``close`` ends the document."""

    def __init__(self, output: Output, out: TextIO) -> None:
        self.output = output
        self.out = out
        self._first = True

    def page(self, audits: list[PodAudit]) -> None:
        if self.output == "table":
            self._table(audits)
        elif self.output == "json":
            for audit in audits:
                self.out.write("[\n" if self._first else ",\n")
                self.out.write(json.dumps(audit.as_dict(), indent=2))
                self._first = False
        elif self.output == "yaml":
            if audits:
                self.out.write(
                    yaml.dump([a.as_dict() for a in audits], Dumper=_YamlDumper, sort_keys=False)
                )
                self._first = False
        else:
            if self._first:
                self.out.write(offline.JUNIT_HEADER)
                self._first = False
            for namespace, group in _by_namespace(audits):
                self.out.write(offline.junit_suite(namespace, [_junit_case(a) for a in group]))

    def _table(self, audits: list[PodAudit]) -> None:
        if not audits:
            return
        rows = table_rows(audits)
        if self._first:
            rows.insert(0, COLUMNS)
        widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            self.out.write("   ".join([*cells, row[-1]]) + "\n")
        self._first = False

    def close(self, summary: str) -> None:
        if self.output == "table":
            if self._first:
                self.out.write("No task pods found.\n")
            self.out.write(summary + "\n")
            return
        if self.output == "json":
            self.out.write("[]\n" if self._first else "\n]\n")
        elif self.output == "yaml":
            if self._first:
                self.out.write("[]\n")
        else:
            if self._first:
                self.out.write(offline.JUNIT_HEADER)
            self.out.write(offline.JUNIT_FOOTER)
        print(summary, file=sys.stderr)


def _by_namespace(audits: list[PodAudit]) -> list[tuple[str, list[PodAudit]]]:
    groups: dict[str, list[PodAudit]] = {}
    for audit in audits:
        groups.setdefault(audit.namespace, []).append(audit)
    return list(groups.items())


def _junit_case(audit: PodAudit) -> offline.JUnitCase:
    task = ".".join(part for part in (audit.dag, audit.task) if part)
    classname = f"{audit.namespace}.{task}" if task else audit.namespace
    failure = None
    if audit.verdict == "would-deny":
        failure = "\n".join(
            f"[{v.rule}] {v.field}: {v.message}" if v.field else f"[{v.rule}] {v.message}"
            for v in audit.violations
        )
    output = ""
    if audit.verdict == "would-mutate":
        output = "would mutate:\n" + "\n".join([*audit.warnings, json.dumps(audit.patch)])
    return offline.JUnitCase(audit.name, classname, failure, output)


def summary_line(counts: dict[str, int], skipped: int) -> str:
    judged = sum(counts[v] for v in VERDICTS)
    parts = ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
    return f"{judged} task pods judged: {parts} ({skipped} pods not judged)"


# --- reports -------------------------------------------------------------------


class ReportBatcher:
    """Collects the judged pods of the namespace being listed and writes its
    report when the listing moves on (pods come ordered by namespace)."""

    def __init__(self, writer: reports.ReportWriter, existing: set[str], now: int) -> None:
        self._writer = writer
        self._pending: set[str] = set(existing)  # reports to rewrite, even emptied
        self._current: str | None = None
        self._audits: list[PodAudit] = []
        self._written: dict[str, list[PodAudit]] = {}
        self._now = now
        self.log: list[str] = []

    def add(self, namespace: str, audit: PodAudit | None) -> None:
        if namespace != self._current:
            self._flush()
            self._current = namespace
            # Out of order after all: rewrite with what was written before.
            self._audits = self._written.pop(namespace, [])
        if audit is not None:
            self._audits.append(audit)

    def _flush(self) -> None:
        namespace = self._current
        if namespace is None:
            return
        if self._audits or namespace in self._pending:
            self._write(namespace, self._audits)
            self._written[namespace] = []  # remembered as written, not kept
        self._audits = []

    def _write(self, namespace: str, audits: list[PodAudit]) -> None:
        report = reports.build_report(namespace, audits, self._now)
        how = self._writer.write(report)
        self._pending.discard(namespace)
        self.log.append(f"{how} policyreport {namespace}/{reports.REPORT_NAME}")

    def close(self) -> None:
        self._flush()
        for namespace in sorted(self._pending):
            self._write(namespace, [])  # no judged pod left there


# --- the command ---------------------------------------------------------------


def _progress(stream: TextIO) -> Callable[[str, bool], None]:
    tty = stream.isatty()

    def show(text: str, final: bool) -> None:
        if tty:
            stream.write("\r" + text + ("\n" if final else ""))
        else:
            stream.write(text + "\n")
        stream.flush()

    return show


def command(args: Any, policy: Policy) -> int:
    """The ``audit`` subcommand, from its parsed flags (see ``cli``)."""
    # argparse checks choices on the command line only, not the TPW_ twins
    # (TPW_OUTPUT is shared with `review`, whose choices differ).
    for flag, value, allowed in (
        ("--output", args.output, OUTPUTS),
        ("--fail-on", args.fail_on, FAIL_ON),
    ):
        if value not in allowed:
            print(
                f"error: audit: {flag} (or {env_name(flag)}) is {value!r}, "
                f"not one of {', '.join(allowed)}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    options = AuditOptions(
        policy=policy,
        kubeconfig=args.kubeconfig,
        namespace=None if args.all_namespaces else args.namespace,
        selector=args.selector,
        output=args.output,
        fail_on=args.fail_on,
        write_reports=args.write_reports,
    )
    try:
        return run(options)
    except AuditError as exc:
        print(f"error: audit: {exc}", file=sys.stderr)
        return EXIT_USAGE


def run(options: AuditOptions, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if options.write_reports and options.selector:
        raise AuditError(
            "--write-reports writes whole namespaces: it cannot be combined with -l/--selector"
        )
    api: Any  # close() is untyped in some client versions
    try:
        api = client.load_api_client(options.kubeconfig)
    except client.KubeConfigError as exc:
        raise AuditError(f"no Kubernetes API configuration: {exc}") from None
    try:
        return _audit(api, options, out, err)
    except reports.ReportsUnavailable as exc:
        raise AuditError(str(exc)) from None
    except Exception as exc:
        described = pods.describe_api_error(exc)
        if described is None:
            raise
        raise AuditError(described) from None
    finally:
        api.close()


def _audit(api: Any, options: AuditOptions, out: TextIO, err: TextIO) -> int:
    policy = options.policy
    started = time.monotonic()
    facts = pods.ListedFacts.load(api, policy, options.namespace)
    batcher = None
    if options.write_reports:
        writer = reports.ReportWriter(api)
        batcher = ReportBatcher(writer, writer.existing(options.namespace), int(time.time()))
    sink = Sink(options.output, out)
    counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
    listed = skipped = 0
    show = _progress(err)
    for page in pods.pod_pages(api, options.namespace, options.selector, options.page_size):
        judged: list[PodAudit] = []
        for stored in page:
            listed += 1
            namespace = (stored.get("metadata") or {}).get("namespace") or ""
            request = offline.pod_request(as_created(stored), namespace, f"audit-{listed}")
            decision = decide(request, policy, facts.facts(namespace, stored, policy), "mutate")
            audit = audit_of(stored, namespace, decision)
            if batcher is not None:
                batcher.add(namespace, audit)
            if audit is None:
                skipped += 1
                continue
            counts[audit.verdict] += 1
            judged.append(audit)
        sink.page(judged)
        if listed >= options.page_size:  # a long scan: say how far it got
            elapsed = time.monotonic() - started
            show(f"audit: {listed} pods listed, {listed - skipped} judged, {elapsed:.1f}s", False)
    if batcher is not None:
        batcher.close()
        for line in batcher.log:
            print(line, file=err)
    if listed >= options.page_size:
        elapsed = time.monotonic() - started
        show(f"audit: {listed} pods listed in {elapsed:.1f}s ({listed / elapsed:.0f}/s)", True)
    sink.close(summary_line(counts, skipped))
    failing = FAILING[options.fail_on]
    return EXIT_FAILED if any(counts[v] for v in failing) else EXIT_OK
