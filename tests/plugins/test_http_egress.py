"""The HTTP helper's egress promise against real loopback servers: every request vetted
(relative or absolute), the connection pinned to the address vetted, absolute URLs only on
the store's host or the plugin's list, no redirect followed, only the allowed ports, no body
in any error, a cap on what is read and a wall-clock deadline however slowly bytes trickle."""

from __future__ import annotations

import ssl
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.util import parse_url
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from fusion.errors import PermanentError, RetryableError
from fusion.plugins._pinned import DESTINATION_ATTR
from fusion.plugins.base import StoreConnection
from fusion.plugins.http import Deadline, StoreHttp, new_session
from fusion.ratelimit.spec import ApiCall, RateLimitSpec
from fusion.security.crypto import Secret
from fusion.security.egress import Destination, EgressPolicy, EgressRefused
from tests.support.egress import LOOPBACK
from tests.support.remote import Internal, Platform, Trickle

CALL = ApiCall("GET /thing")


class Resolver:
    """A name server for the test: answers ``answers`` in turn (the last one from then on)
    and counts the questions."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.questions: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.questions.append((host, port))
        return self.answers[min(len(self.questions), len(self.answers)) - 1]


@pytest.fixture
def platform() -> Iterator[Platform]:
    with Platform() as served:
        yield served


@pytest.fixture
def internal() -> Iterator[Internal]:
    with Internal() as served:
        yield served


def _http(base_url: str, egress: EgressPolicy, **kwargs: Any) -> StoreHttp:
    conn = StoreConnection(
        store_id=f"egress-{uuid.uuid4()}",
        org_id="org",
        platform="testplat",
        external_id="shop",
        base_url=base_url,
        credentials={"access_token": Secret("tok_egress_0123456789")},
    )
    kwargs.setdefault("transport_attempts", 1)
    return StoreHttp(conn, spec=RateLimitSpec(10, 10), bucket=None, egress=egress, **kwargs)


def _only(host_port: str, **extra: Any) -> EgressPolicy:
    """Strict, with one exact destination exempt (the test's platform)."""
    return EgressPolicy(exceptions=frozenset({host_port}), **extra)


def test_a_relative_call_to_the_stores_own_loopback_host_is_refused_when_strict(
    platform: Platform,
) -> None:
    # Given the platform answers /ok, and the hub is strict (no private destinations)
    platform.routes["/ok"] = lambda r: Response("{}")
    http = _http(platform.url, EgressPolicy(ports=frozenset({80, 443, platform.port})))
    # When a relative path is called, Then it is refused before any connection
    with pytest.raises(EgressRefused) as refused:
        http.request("GET", "/ok", call=CALL)
    assert str(refused.value) == "testplat GET /ok refused: the host resolves to a loopback address"
    assert platform.seen == []


def test_a_port_other_than_80_and_443_is_refused_unless_configured(internal: Internal) -> None:
    # Given a name that resolves to a public address, on the internal service's port
    resolver = Resolver(["93.184.216.34"])
    http = _http(f"http://shop.example:{internal.port}", EgressPolicy(resolver=resolver))
    # When it is called, Then the port is refused before the name is even looked up
    with pytest.raises(EgressRefused) as refused:
        http.request("GET", "/", call=CALL)
    assert str(refused.value) == (
        f"testplat GET / refused: port {internal.port} is not one the hub may call"
    )
    assert (resolver.questions, internal.hits) == ([], [])


def test_the_connection_goes_to_the_vetted_address_with_the_urls_host_announced(
    platform: Platform,
) -> None:
    # Given a name no system resolver knows, which the hub's resolver maps to the platform
    platform.routes["/ok"] = lambda r: Response('{"ok": true}')
    resolver = Resolver(["127.0.0.1"])
    policy = _only(f"shop.example:{platform.port}", resolver=resolver)
    http = _http(f"http://shop.example:{platform.port}", policy)
    # When it is called
    answer = http.request("GET", "/ok", call=CALL)
    # Then the request reached the vetted address, named by its own host, after one lookup
    assert (answer.status, answer.json()) == (200, {"ok": True})
    [seen] = platform.seen
    assert seen.headers["Host"] == f"shop.example:{platform.port}"
    assert resolver.questions == [("shop.example", platform.port)]


def test_dns_rebinding_cannot_move_the_connection_after_the_check(internal: Internal) -> None:
    # Given a name that resolves to a public address first and to loopback afterwards
    resolver = Resolver(["93.184.216.34"], ["127.0.0.1"])
    policy = EgressPolicy(ports=frozenset({80, 443, internal.port}), resolver=resolver)
    http = _http(f"http://rebind.example:{internal.port}", policy, connect_timeout_s=0.5)
    # When it is called (the public address does not answer from this machine)
    with pytest.raises(RetryableError) as failed:
        http.request("GET", "/latest/meta-data/", call=CALL)
    # Then the name was looked up once, and the loopback service was never reached
    assert str(failed.value) in (
        "testplat GET /latest/meta-data/: could not connect",
        "testplat GET /latest/meta-data/ timed out (read timeout 20s)",
    )
    assert resolver.questions == [("rebind.example", internal.port)]
    assert internal.hits == []


def test_an_absolute_url_on_a_host_off_the_plugins_list_is_refused_before_connecting(
    platform: Platform, internal: Internal
) -> None:
    # Given private destinations allowed (dev), and the internal service on another host name
    http = _http(platform.url, LOOPBACK)
    # When the platform hands back a URL on a host neither the store's nor on the list
    with pytest.raises(EgressRefused) as refused:
        http.request("GET", f"http://localhost:{internal.port}/upload?sig=1", call=CALL)
    # Then it is refused without a connection
    assert str(refused.value) == (
        "testplat GET /upload refused: the platform named a host the testplat plugin may not call"
    )
    assert internal.hits == []
    # And once the plugin lists that host, the same URL is called
    listed = _http(platform.url, LOOPBACK, hosts=("localhost",))
    assert (
        listed.request("GET", f"http://localhost:{internal.port}/upload", call=CALL).status == 200
    )
    assert internal.hits == ["GET /upload"]


@pytest.mark.parametrize(
    ("url", "answers", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", None, "a link-local"),
        ("http://[::ffff:127.0.0.1]/", None, "an IPv4-mapped"),
        ("http://[::ffff:169.254.169.254]/", None, "an IPv4-mapped"),
        ("http://[64:ff9b::a00:5]/", None, "a NAT64"),
        ("http://[2002:7f00:1::]/", None, "a 6to4"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", None, "a Teredo"),
        ("http://[::1]/", None, "a loopback"),
        ("http://files.example/report", ["10.1.2.3"], "a private"),
        ("http://files.example/report", ["93.184.216.34", "192.168.0.7"], "a private"),
        ("http://files.example/report", ["fd00::1"], "a private"),
    ],
)
def test_listed_hosts_still_pass_the_address_rules(
    platform: Platform, url: str, answers: list[str] | None, kind: str
) -> None:
    # Given a host on the plugin's list, where the hub is strict
    host = str(parse_url(url).host).strip("[]")
    resolver = Resolver(answers or ["203.0.113.1"])
    policy = _only(f"127.0.0.1:{platform.port}", resolver=resolver)
    http = _http(platform.url, policy, hosts=(host,))
    # When the platform hands back that URL, Then the address it leads to is refused
    with pytest.raises(EgressRefused) as refused:
        http.request("GET", url, call=CALL)
    assert str(refused.value).endswith(f"refused: the host resolves to {kind} address")
    assert platform.seen == []


def test_a_redirect_is_not_followed(platform: Platform, internal: Internal) -> None:
    # Given a platform that redirects to the internal service
    platform.routes["/moved"] = lambda r: Response(
        "", status=302, headers={"Location": f"{internal.url}/secret"}
    )
    http = _http(platform.url, LOOPBACK)
    # When it is called, Then the redirect is an error and the internal service is not reached
    with pytest.raises(PermanentError) as refused:
        http.request("GET", "/moved", call=CALL)
    assert str(refused.value) == "testplat GET /moved answered 302 (a redirect, not followed)"
    assert internal.hits == []


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (500, RetryableError, "testplat GET /fail answered 500 (the platform failed)"),
        (401, PermanentError, "testplat GET /fail refused the store's credentials (401)"),
        (
            422,
            PermanentError,
            "testplat GET /fail answered 422 (the platform refused the request)",
        ),
    ],
)
def test_an_error_carries_the_status_and_a_fixed_reason_never_the_body(
    platform: Platform, status: int, error: type[Exception], message: str
) -> None:
    # Given a platform whose error answers carry what some internal host held
    platform.routes["/fail"] = lambda r: Response("INTERNAL-SECRET root:x:0:0", status=status)
    http = _http(platform.url, LOOPBACK)
    # When it is called, Then the error says the status and a fixed reason, nothing of the body
    with pytest.raises(error) as failed:
        http.request("GET", "/fail", call=CALL)
    assert str(failed.value) == message


def test_an_answer_longer_than_the_cap_is_not_read(platform: Platform) -> None:
    # Given answers of 5 MB, declared and streamed without a length
    five_mb = b"x" * (5 * 1024 * 1024)
    platform.routes["/declared"] = lambda r: Response(five_mb)
    chunks = [five_mb[i : i + 65536] for i in range(0, len(five_mb), 65536)]
    platform.routes["/streamed"] = lambda r: Response(iter(chunks))
    http = _http(platform.url, LOOPBACK, max_answer_bytes=1024 * 1024)
    # When either is called, Then the call fails saying so, and the body is not returned
    for path in ("/declared", "/streamed"):
        with pytest.raises(PermanentError) as refused:
            http.request("GET", path, call=CALL)
        assert (
            str(refused.value) == f"testplat GET {path} answered more than 1048576 bytes; not read"
        )
    # And an answer within the cap is read whole
    platform.routes["/small"] = lambda r: Response(b"y" * 1000)
    assert http.request("GET", "/small", call=CALL).body == b"y" * 1000


@pytest.mark.parametrize("in_body", [False, True], ids=["trickled-headers", "trickled-body"])
def test_a_deadline_ends_a_call_that_trickles_for_a_minute(in_body: bool) -> None:
    # Given a server that would trickle one byte every 50 ms for a minute (each read is quick,
    # so read timeouts alone never fire)
    with Trickle(interval_s=0.05, for_s=60, in_body=in_body) as trickle:
        deadline = Deadline(1.0)
        session = new_session()
        try:
            http = _http(trickle.url, LOOPBACK, deadline=deadline, session=session)
            # When the call runs under a 1 s deadline
            with pytest.raises(RetryableError) as late:
                http.request("GET", "/slow", call=CALL)
        finally:
            session.close()
            deadline.close()
        # Then it returned saying so, and the server saw the client hang up
        assert str(late.value) == "testplat GET /slow did not answer within 1s"
        assert trickle.abandoned.wait(5)


def test_a_request_that_skipped_the_check_never_leaves(platform: Platform) -> None:
    # Given the helper's own session, used directly (bypassing the helper)
    platform.routes["/ok"] = lambda r: Response("{}")
    session = new_session()
    # When a request is sent through it, Then the transport refuses it
    try:
        with pytest.raises(RuntimeError, match="without an egress check"):
            session.get(f"{platform.url}/ok", timeout=2)
    finally:
        session.close()
    assert platform.seen == []


def _certificates(tmp: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for ``name`` it signed: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "egress test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_https_to_a_pinned_address_sends_the_hosts_name_as_sni_and_checks_its_certificate(
    tmp_path: Path,
) -> None:
    # Given a TLS platform on loopback whose certificate names shop.example
    ca, cert, key = _certificates(tmp_path, "shop.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)  # type: ignore[assignment]
    hosts: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        hosts.append(environ["HTTP_HOST"])
        return Response("{}")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    session = new_session()
    try:
        url = f"https://shop.example:{server.server_port}/ok"

        def send(host: str) -> int:
            prepared = session.prepare_request(requests.Request("GET", url))
            setattr(
                prepared,
                DESTINATION_ATTR,
                Destination("https", host, server.server_port, "127.0.0.1"),
            )
            adapter = session.get_adapter(url)
            return adapter.send(prepared, timeout=5, verify=str(ca)).status_code

        # When the pinned connection is made for shop.example
        status = send("shop.example")
        # Then the platform saw its own name in SNI and the Host header, and the hub its cert
        assert (status, names, hosts) == (
            200,
            ["shop.example"],
            [f"shop.example:{server.server_port}"],
        )
        # And a certificate that does not name the host is refused
        with pytest.raises(requests.exceptions.SSLError):
            send("other.example")
    finally:
        session.close()
        server.shutdown()
        thread.join(5)
