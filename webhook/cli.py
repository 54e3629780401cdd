"""The command line (SPEC §11): serve | review | test | certs | register | unregister | policy.

Every flag has an environment variable twin, ``TPW_`` plus the flag's name in
upper case with ``-`` as ``_`` (``--metrics-port`` ↔ ``TPW_METRICS_PORT``);
a flag on the command line wins. Exit codes: 0 success / allowed, 1 denied or
a failed test case, 2 unusable input or flags.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from webhook import __version__
from webhook.flags import EXIT_USAGE
from webhook.flags import Parser as _Parser
from webhook.flags import flag as _flag
from webhook.flags import label_map as _label_map
from webhook.flags import opt as _opt
from webhook.flags import port as _port
from webhook.flags import positive_int as _positive_int
from webhook.flags import seconds as _seconds

EXIT_OK, EXIT_DENIED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="task-pod-webhook",
        description="Kubernetes admission webhook for Airflow task pods.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the HTTPS admission server")
    _opt(serve, "--host", "127.0.0.1", help="address to listen on")
    _opt(serve, "--port", 8443, _port, help="HTTPS port")
    _opt(serve, "--policy", None, Path, help="policy file (default: the embedded policy)")
    _opt(serve, "--tls-cert-file", None, Path, help="serving certificate (PEM)")
    _opt(serve, "--tls-private-key-file", None, Path, help="its private key (PEM)")
    _opt(serve, "--client-ca-file", None, Path, help="require client certificates from this CA")
    _opt(serve, "--metrics-port", 9090, _port, help="plain HTTP metrics port (0: off)")
    _opt(serve, "--workers", 1, _positive_int, help="processes sharing the port")
    _opt(serve, "--shutdown-grace", 5.0, _seconds, help="seconds served after SIGTERM")
    _opt(serve, "--kubeconfig", None, Path, help="kubeconfig (default: in-cluster or ~/.kube)")
    _flag(serve, "--no-kube", "run without Kubernetes API access")
    _opt(serve, "--certs-dir", "certs", Path, help="where the dev certificate is written")
    _opt(serve, "--reload-interval", 1.0, _seconds, help="seconds between file checks")

    review = sub.add_parser("review", help="review pod manifests or AdmissionReviews offline")
    review.add_argument(
        "files", nargs="+", metavar="FILE", help="YAML/JSON files or folders, - for stdin"
    )
    _opt(review, "--policy", None, Path, help="policy file (default: the embedded policy)")
    _opt(review, "--namespace", None, help="namespace to review in (default: the pod's)")
    _opt(
        review, "--output", "pod", choices=("pod", "patch", "review", "junit"), help="what to print"
    )
    _opt(
        review,
        "--namespace-labels",
        None,
        _label_map,
        help="the namespace's labels, k=v,... (selects the policy profile; default: unknown)",
    )

    test = sub.add_parser("test", help="run manifest test fixtures")
    test.add_argument("dir", type=Path, metavar="DIR")
    _opt(test, "--policy", None, Path, help="policy for every case (default: each case's)")
    _flag(test, "--update-golden", "write each allowed case's mutated.yaml")

    certs = sub.add_parser("certs", help="write a CA and a serving certificate")
    _opt(certs, "--out", "certs", Path, help="output directory")
    _opt(certs, "--service", "task-pod-webhook", help="Service name")
    _opt(certs, "--namespace", "task-pod-webhook", help="Service namespace")
    certs.add_argument(
        "--san",
        action="append",
        default=None,
        help="extra DNS name or IP [env TPW_SAN, comma-separated]",
    )
    _opt(certs, "--renew-before", "720h", help="re-issue when expiring within this")
    _flag(certs, "--force", "re-issue even valid files")

    register = sub.add_parser("register", help="create/update the webhook configurations")
    target = register.add_mutually_exclusive_group()
    _opt(target, "--url", None, help="webhook URL (instead of a Service)")
    _opt(register, "--service", "task-pod-webhook", help="Service name")
    _opt(register, "--namespace", "task-pod-webhook", help="Service namespace")
    _opt(register, "--ca-bundle-file", None, Path, help="CA certificate (PEM) for caBundle")
    _opt(register, "--policy", None, Path, help="policy file (selectors, exempt namespaces)")
    _flag(register, "--dry-run", "print the YAML instead of applying it")
    _opt(register, "--kubeconfig", None, Path, help="kubeconfig")

    unregister = sub.add_parser("unregister", help="delete the webhook configurations")
    _opt(unregister, "--kubeconfig", None, Path, help="kubeconfig")

    policy = sub.add_parser("policy", help="check a policy file or print the default")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, parser_class=_Parser)
    check = policy_sub.add_parser("check", help="validate FILE and print the effective policy")
    check.add_argument("file", type=Path, metavar="FILE")
    check.add_argument("--profile", metavar="NAME", help="print this profile's effective policy")
    policy_sub.add_parser("default", help="print the embedded default policy")
    _add_audit(sub)
    return parser


def _add_audit(sub: Any) -> None:
    audit = sub.add_parser("audit", help="judge the pods already running (SPEC §13)")
    _opt(audit, "--kubeconfig", None, Path, help="kubeconfig (default: in-cluster or ~/.kube)")
    _opt(audit, "--policy", None, Path, help="policy file (default: the embedded policy)")
    scope = audit.add_mutually_exclusive_group()
    _opt(scope, "--namespace", None, help="one namespace (default: all)", short="-n")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="all (the default)")
    _opt(audit, "--selector", None, help="label selector of the pods to judge", short="-l")
    _opt(
        audit,
        "--output",
        "table",
        choices=("table", "json", "yaml", "junit"),
        help="format",
        short="-o",
    )
    _opt(audit, "--fail-on", "deny", choices=("deny", "mutate", "never"), help="exit 1 when")
    _flag(audit, "--write-reports", "write one PolicyReport per namespace")


# --- commands --------------------------------------------------------------


def cmd_policy(args: argparse.Namespace) -> int:
    from webhook.policy import PolicyError, default_policy, dump_policy, load_policy

    if args.policy_command == "default":
        sys.stdout.write(dump_policy(default_policy()))
        return EXIT_OK
    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        print(f"{args.file}: invalid policy ({len(exc.errors)} problems):", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EXIT_USAGE
    if args.profile is not None:
        from webhook.policy.profiles import find_profile

        profile = find_profile(policy, args.profile)
        if profile is None:
            names = ", ".join(p.name for p in policy.profiles) or "none"
            print(
                f"error: {args.file}: no profile named {args.profile!r} (profiles: {names})",
                file=sys.stderr,
            )
            return EXIT_USAGE
        print(f"# {args.file}: valid (hash {policy.content_hash}); profile {profile.name}:")
        sys.stdout.write(dump_policy(profile.policy))
        return EXIT_OK
    print(f"# {args.file}: valid (hash {policy.content_hash}); effective policy:")
    sys.stdout.write(dump_policy(policy))
    return EXIT_OK


def _load_policy_or_exit(path: Path | None) -> Any:
    from webhook.policy import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        for line in exc.errors:
            print(f"error: policy: {line}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_review(args: argparse.Namespace) -> int:
    from webhook import offline
    from webhook.admission import responses
    from webhook.admission.decide import decide
    from webhook.rules.base import Facts

    policy = _load_policy_or_exit(args.policy)
    if policy.looks_up_service_accounts:
        print("note: offline review: service account lookups are skipped", file=sys.stderr)
    if policy.profiles and args.namespace_labels is None:
        print(
            "note: the policy has profiles but no --namespace-labels were given: the "
            "namespace's labels are unknown, serviceAccounts.onLookupError decides",
            file=sys.stderr,
        )
    outputs: list[str] = []
    cases: list[offline.JUnitCase] = []
    worst = EXIT_OK
    count = 0
    try:
        names = offline.expand_inputs(args.files)
    except offline.InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for name in names:
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: {name}: cannot read: {exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        source = "stdin" if name == "-" else name
        try:
            documents = offline.load_documents(text, source)
        except offline.InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            worst = EXIT_USAGE
            continue
        for index, document in enumerate(documents):
            count += 1
            where = f"{source} document {index + 1}" if len(documents) > 1 else source
            try:
                request = offline.request_for(document, args.namespace, f"review-{count}", where)
            except offline.InputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                worst = EXIT_USAGE
                continue
            # offline: no API facts, but the namespace labels the caller gave
            facts = Facts(namespace=request.namespace, namespace_labels=args.namespace_labels)
            decision = decide(request, policy, facts, "mutate")
            response = decision.response
            for warning in response.get("warnings", []):
                print(f"warning: {where}: {warning}", file=sys.stderr)
            if decision.verdict == "skipped":
                print(f"note: {where}: not reviewed ({decision.reason})", file=sys.stderr)
            is_review = isinstance(document, dict) and document.get("kind") == "AdmissionReview"
            if args.output == "junit":
                cases.append(offline.review_case(where, source, decision))
            elif args.output == "review" or is_review:
                outputs.append(offline.dump_json(responses.review(request.api_version, response)))
            elif not response["allowed"]:
                outputs.append(response.get("status", {}).get("message", "denied"))
            elif args.output == "patch":
                outputs.append(offline.dump_json(decision.patch))
            else:
                mutated = offline.apply_patch(request.object, decision)
                outputs.append(yaml.safe_dump(mutated, sort_keys=False).rstrip("\n"))
            if not response["allowed"]:
                worst = max(worst, EXIT_DENIED)
    if args.output == "junit":
        print(offline.JUNIT_HEADER + offline.junit_suite("review", cases) + offline.JUNIT_FOOTER)
    if outputs:
        separator = "\n---\n" if args.output == "pod" else "\n"
        print(separator.join(outputs))
    if count == 0 and worst == EXIT_OK:
        print("error: no documents to review", file=sys.stderr)
        return EXIT_USAGE
    return worst


def cmd_test(args: argparse.Namespace) -> int:
    from webhook import offline

    if not args.dir.is_dir():
        print(f"error: {args.dir}: not a directory", file=sys.stderr)
        return EXIT_USAGE
    override = _load_policy_or_exit(args.policy) if args.policy else None
    cases = list(offline.find_cases(args.dir))
    if not cases:
        print(f"error: {args.dir}: no case.yaml found", file=sys.stderr)
        return EXIT_USAGE
    passed = failed = errors = 0
    for case_dir in cases:
        try:
            result = offline.run_case(case_dir, override, args.update_golden)
        except Exception as exc:  # a broken case is reported, never a traceback
            errors += 1
            print(f"ERROR {case_dir.name}: {exc}")
            continue
        if result.passed:
            passed += 1
            print(f"PASS  {result.name}: {result.summary}")
        else:
            failed += 1
            print(f"FAIL  {result.name}: {result.summary}")
            for problem in result.problems:
                print(f"      - {problem}")
    print(f"{passed} passed, {failed + errors} failed")
    if errors:
        return EXIT_USAGE
    return EXIT_DENIED if failed else EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    from webhook.serving.runner import serve
    from webhook.serving.settings import Settings

    settings = Settings(
        host=args.host,
        port=args.port,
        policy_file=args.policy,
        tls_cert_file=args.tls_cert_file,
        tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        metrics_port=args.metrics_port,
        workers=args.workers,
        shutdown_grace=args.shutdown_grace,
        kubeconfig=args.kubeconfig,
        no_kube=args.no_kube,
        certs_dir=args.certs_dir,
        reload_interval=args.reload_interval,
    )
    return serve(settings)


def cmd_certs(args: argparse.Namespace) -> int:
    from webhook import certs

    sans = args.san
    if sans is None:
        raw = os.environ.get("TPW_SAN", "")
        sans = [s.strip() for s in raw.split(",") if s.strip()]
    try:
        renew_before = certs.parse_duration(args.renew_before)
    except ValueError as exc:
        print(f"error: --renew-before: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = certs.write_certificates(
            args.out,
            service=args.service,
            namespace=args.namespace,
            extra_sans=sans,
            renew_before=renew_before,
            force=args.force,
        )
    except (OSError, ValueError) as exc:
        print(f"error: certs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    what = []
    what.append("issued a new CA" if result.issued_ca else "kept the CA")
    what.append(
        "issued a serving certificate" if result.issued_serving else "kept the serving certificate"
    )
    print(f"# {args.out}: {', '.join(what)}; caBundle:", file=sys.stderr)
    print(result.ca_bundle)
    return EXIT_OK


def cmd_register(args: argparse.Namespace) -> int:
    from webhook.kube import apply, client, webhooks

    policy = _load_policy_or_exit(args.policy)
    ca_bundle = ""
    if args.ca_bundle_file is not None:
        try:
            ca_bundle = webhooks.ca_bundle_from(args.ca_bundle_file.read_bytes())
        except (OSError, ValueError) as exc:
            print(f"error: --ca-bundle-file: {exc}", file=sys.stderr)
            return EXIT_USAGE
    service = None if args.url else (args.service, args.namespace)
    try:
        configs = webhooks.build_webhook_configurations(
            policy, ca_bundle=ca_bundle, service=service, url=args.url
        )
    except ValueError as exc:
        print(f"error: register: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        sys.stdout.write(webhooks.configurations_yaml(configs))
        return EXIT_OK
    try:
        api = client.load_api_client(args.kubeconfig)
        applied = apply.register(api, configs)
    except Exception as exc:
        print(f"error: register: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in applied:
        print(line)
    return EXIT_OK


def cmd_unregister(args: argparse.Namespace) -> int:
    from webhook.kube import apply, client

    try:
        api = client.load_api_client(args.kubeconfig)
        removed = apply.unregister(api)
    except Exception as exc:
        print(f"error: unregister: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for line in removed:
        print(line)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from webhook import audit

    return audit.command(args, _load_policy_or_exit(args.policy))


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "review": cmd_review,
    "test": cmd_test,
    "certs": cmd_certs,
    "register": cmd_register,
    "unregister": cmd_unregister,
    "policy": cmd_policy,
    "audit": cmd_audit,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return EXIT_USAGE
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return 130
