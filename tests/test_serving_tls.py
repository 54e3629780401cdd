"""Serving over TLS in production (SPEC §7, §8): rotation under load, mTLS, workers.

Each test starts the real ``python -m webhook serve`` on 127.0.0.1 with
certificates in a directory laid out like a Kubernetes Secret volume, and
rotates them the way the kubelet does (a ``..data`` symlink swap) while a
client keeps sending reviews.
"""

from __future__ import annotations

import http.client
import signal
import ssl
import time
from pathlib import Path

import pytest

from tests.conftest import Server, start_server
from tests.serving_kit import (
    JSON_HEADERS,
    AtomicVolume,
    LoadClient,
    certificate_of,
    exchange,
    https_connection,
    is_running,
    issue_client_certificate,
    issue_pki,
    log_records,
    peer_serial,
    readyz_status,
    reissue_serving_pair,
    review_body,
    running_load,
    scrape,
    secret_files,
    serial_of,
    series,
    value,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.slow
QUICK_STOP = ("--shutdown-grace", "0.2")  # stopping is not what these tests are about


def start_on_volume(workdir: Path, volume: AtomicVolume, *args: str) -> Server:
    return start_server(
        workdir,
        "--tls-cert-file",
        str(volume.file("tls.crt")),
        "--tls-private-key-file",
        str(volume.file("tls.key")),
        *QUICK_STOP,
        *args,
    )


def reloads(server: Server, result: str) -> float:
    return value(scrape(server.metrics_port), "tpw_certificate_reloads_total", result=result)


def new_connection_serial(server: Server) -> int:
    connection = https_connection(server.port, server.context())
    try:
        connection.connect()
        return peer_serial(connection.sock)
    finally:
        connection.close()


def test_certificate_rotation_under_load_drops_nothing(tmp_path: Path) -> None:
    pki = issue_pki(tmp_path / "pki")
    volume = AtomicVolume(tmp_path / "secret")
    volume.publish(secret_files(pki))
    server = start_on_volume(tmp_path / "run", volume)
    old_serial = serial_of(pki.files.cert)
    try:
        with running_load(LoadClient(server.port, server.context())) as load:
            load.wait_for_requests(20)

            # 1. a new pair from the same CA, swapped in like a Secret update
            renewed = reissue_serving_pair(pki, tmp_path / "renewed")
            new_serial = serial_of(renewed.files.cert)
            swapped = time.monotonic()
            volume.publish(secret_files(renewed))
            first_new = wait_for(
                lambda: next(
                    (
                        o
                        for o in list(load.outcomes)
                        if o.channel == "new" and o.serial == new_serial
                    ),
                    None,
                ),
                5.0,
                "a new connection with the new certificate",
            )
            detection = first_new.started - swapped
            load.wait_for_requests(20, since=first_new.finished)

            # 2. a pair whose key does not match its certificate, then a damaged file
            mismatched = reissue_serving_pair(pki, tmp_path / "mismatched")
            bad_pair = {**secret_files(renewed), "tls.key": mismatched.files.key.read_bytes()}
            broken = time.monotonic()
            volume.publish(bad_pair)
            wait_for(
                lambda: reloads(server, "failure") >= 1,
                5.0,
                "the mismatched pair to be refused",
            )
            load.wait_for_requests(20, since=time.monotonic())
            damaged = {**secret_files(renewed), "tls.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n"}
            volume.publish(damaged)
            wait_for(
                lambda: reloads(server, "failure") >= 2,
                5.0,
                "the damaged pair to be refused",
            )
            load.wait_for_requests(20, since=time.monotonic())
        outcomes = load.outcomes
        samples = scrape(server.metrics_port)
        serial_now = new_connection_serial(server)
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()

    failures = [(o.channel, o.problem) for o in outcomes if o.problem]
    new = [o for o in outcomes if o.channel == "new"]
    kept = [o for o in outcomes if o.channel == "kept"]
    print(
        f"\nrotation: {len(outcomes)} requests ({len(new)} new connections, {len(kept)} on one "
        f"kept-alive connection), {len(failures)} failed; new serial seen by a new connection "
        f"{detection * 1000:.0f} ms after the swap (reload interval 200 ms)"
    )
    assert failures == []
    assert detection < 3.0
    # after the first new-serial handshake every new connection gets the new pair, and
    # keeps getting it while the mismatched and damaged versions are on disk
    after = [o for o in new if o.started >= first_new.finished]
    assert len(after) >= 60
    assert {o.serial for o in after} == {new_serial}
    assert len([o for o in after if o.started >= broken]) >= 40
    assert {o.serial for o in new if o.finished <= swapped} == {old_serial}
    # the kept-alive connection was never re-opened: it served throughout on the old pair
    assert len({o.connection for o in kept}) == 1
    assert {o.serial for o in kept} == {old_serial}
    assert len([o for o in kept if o.started > broken]) >= 40

    assert serial_now == new_serial
    assert value(samples, "tpw_certificate_reloads_total", result="success") == 1
    assert value(samples, "tpw_certificate_reloads_total", result="failure") == 2
    expiry = certificate_of(renewed.files.cert).not_valid_after_utc.timestamp()
    assert value(samples, "tpw_certificate_expiry_timestamp_seconds") == expiry
    log = server.log()
    assert "certificate reload failed" in log
    assert "does not match" in log


def client_context(ca_file: Path, pair: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_file))
    if pair is not None:
        context.load_cert_chain(*pair)
    return context


def post_review(port: int, context: ssl.SSLContext, uid: str) -> int:
    connection = https_connection(port, context)
    try:
        return exchange(connection, "POST", "/mutate", review_body(uid), JSON_HEADERS)[0]
    finally:
        connection.close()


def test_mtls_serves_only_clients_with_a_certificate_from_the_client_ca(tmp_path: Path) -> None:
    pki = issue_pki(tmp_path / "pki")
    apiserver_pki = issue_pki(tmp_path / "apiserver-pki")
    stranger_pki = issue_pki(tmp_path / "stranger-pki")
    server = start_server(
        tmp_path / "run",
        "--tls-cert-file",
        str(pki.files.cert),
        "--tls-private-key-file",
        str(pki.files.key),
        "--client-ca-file",
        str(apiserver_pki.files.ca_cert),
        *QUICK_STOP,
        wait_ready=False,
    )
    apiserver = client_context(
        pki.files.ca_cert,
        issue_client_certificate(apiserver_pki, tmp_path / "clients", "apiserver"),
    )
    stranger = client_context(
        pki.files.ca_cert, issue_client_certificate(stranger_pki, tmp_path / "clients", "stranger")
    )
    anonymous = client_context(pki.files.ca_cert)
    try:
        wait_for(
            lambda: server.process.poll() is not None or readyz_status(server, apiserver) == 200,
            30.0,
            "the server to be ready for the apiserver's certificate",
        )
        assert server.process.poll() is None, server.log()

        for name, context in (("no certificate", anonymous), ("another CA", stranger)):
            # TLS 1.3 finishes the client's handshake before the server checks the
            # certificate: the refusal (an alert) surfaces on the first read.
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                post_review(server.port, context, f"refused-{name}")

        assert post_review(server.port, apiserver, "apiserver") == 200
        # the refusals left the server serving
        assert post_review(server.port, apiserver, "apiserver-again") == 200
        samples = scrape(server.metrics_port)
    finally:
        stopped = server.stop()
    assert stopped == 0, server.log()
    assert (
        value(
            samples,
            "tpw_admission_requests_total",
            webhook="mutate",
            operation="CREATE",
            decision="patched",
            profile="base",
        )
        == 2
    )
    assert "apiserver" in server.log()
    assert "refused-" not in server.log()


def test_two_workers_share_the_port_rotate_and_stop_on_sigterm(tmp_path: Path) -> None:
    pki = issue_pki(tmp_path / "pki")
    volume = AtomicVolume(tmp_path / "secret")
    volume.publish(secret_files(pki))
    server = start_on_volume(tmp_path / "run", volume, "--workers", "2", "--shutdown-grace", "0.5")
    try:
        wait_for(lambda: len(worker_pids(server)) == 2, 30.0, "two workers")
        workers = worker_pids(server)
        wait_for(
            lambda: sum(r.get("msg") == "serving" for r in log_records(server)) == 2,
            30.0,
            "both workers to serve",
        )

        # both serve: SO_REUSEPORT spreads new connections over them, and the one
        # metrics port counts every worker's answers
        statuses = [post_review(server.port, server.context(), f"spread-{i}") for i in range(200)]
        assert statuses == [200] * 200
        samples = scrape(server.metrics_port)
        assert sum(series(samples, "tpw_admission_requests_total").values()) == 200
        assert value(samples, "tpw_admission_duration_seconds_count", webhook="mutate") == 200
        by_worker = [
            sum(
                1
                for r in log_records(server)
                if r.get("msg") == "admission" and r.get("worker") == index
            )
            for index in (0, 1)
        ]
        print(f"\nworkers: 200 new connections answered {by_worker[0]} + {by_worker[1]}")
        assert sum(by_worker) == 200
        assert min(by_worker) > 0

        # both reload a rotated certificate
        renewed = reissue_serving_pair(pki, tmp_path / "renewed")
        new_serial = serial_of(renewed.files.cert)
        swapped = time.monotonic()
        volume.publish(secret_files(renewed))
        wait_for(
            lambda: (
                value(
                    scrape(server.metrics_port), "tpw_certificate_reloads_total", result="success"
                )
                == 2
            ),
            10.0,
            "both workers to reload the certificate",
        )
        reloaded = time.monotonic() - swapped
        serials = {new_connection_serial(server) for _ in range(40)}
        assert serials == {new_serial}
        # the soonest expiry among the workers: both have the renewed one
        expiry = value(scrape(server.metrics_port), "tpw_certificate_expiry_timestamp_seconds")
        assert expiry == certificate_of(renewed.files.cert).not_valid_after_utc.timestamp()

        # SIGTERM to the supervisor stops both workers, and it exits 0
        stopped = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=15)
        took = time.monotonic() - stopped
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)
    print(
        f"workers: both reloaded within {reloaded * 1000:.0f} ms; supervisor exited {code} "
        f"{took:.2f} s after SIGTERM (grace 0.5 s)"
    )
    assert code == 0
    assert not any(is_running(pid) for pid in workers)
    assert 0.5 <= took < 5.0
    log = server.log()
    assert log.count('"msg":"stopped"') == 2
