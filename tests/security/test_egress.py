"""Store base URLs cannot point the hub at its own network (docs/running.md, private egress)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fusion.config import Settings
from fusion.db.session import Database
from fusion.errors import ConfigError, ValidationFailed
from fusion.security.egress import (
    Destination,
    EgressPolicy,
    EgressRefused,
    address_kind,
    check_destination,
)
from fusion.stores.client import store_connection
from fusion.stores.models import Store
from fusion.stores.service import connect_store

STRICT = EgressPolicy()
DEV = EgressPolicy(allow_private=True)

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://localhost:8000/",
    "http://[::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a00:5]/",
    "http://10.0.0.5/",
    "http://100.64.0.1/",
    "http://192.168.1.1/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_FLUSHALL",
    "ftp://example.com/",
    "http://no-such-host.invalid/",
    "http:///no-host",
    "http://[::1/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_reserved_and_odd_destinations_are_refused(url: str) -> None:
    with pytest.raises(EgressRefused):
        check_destination(url, STRICT)


def test_a_public_address_is_allowed() -> None:
    check_destination("https://93.184.216.34/admin/api/graphql.json", STRICT)


def test_dev_and_test_mode_allow_loopback_sandboxes_but_still_only_http() -> None:
    check_destination("http://127.0.0.1:8123/", DEV)
    with pytest.raises(EgressRefused):
        check_destination("file:///etc/passwd", DEV)


def _connect(session, settings: Settings, org: uuid.UUID, base_url: str) -> Store:  # type: ignore[no-untyped-def]
    return connect_store(
        session,
        settings=settings,
        org_id=org,
        platform="shopify",
        name="Main",
        external_id=f"shop-{uuid.uuid4().hex[:6]}",
        base_url=base_url,
        credentials={"access_token": "shpat_x"},
        webhook_secret=None,
    )


def test_saving_a_metadata_url_is_a_field_error_and_stores_nothing(
    settings: Settings, database: Database, admin_engine: Engine, org_a: uuid.UUID
) -> None:
    strict = dataclasses.replace(settings, allow_private_egress=False)
    with pytest.raises(ValidationFailed) as caught:
        with database.org_session(org_a) as session:
            _connect(session, strict, org_a, "http://169.254.169.254/")
    assert list(caught.value.fields) == ["base_url"]
    with admin_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM stores")).scalar_one() == 0


def test_a_job_refuses_to_connect_where_the_hub_may_not_call(
    settings: Settings, database: Database, org_a: uuid.UUID
) -> None:
    with database.org_session(org_a) as session:
        store = _connect(session, settings, org_a, "http://127.0.0.1:9/")
    strict = dataclasses.replace(settings, allow_private_egress=False)
    with pytest.raises(EgressRefused):
        store_connection(strict, store)


# -- the address classifier and the policy (fusion.security.egress) ------------------------

CLASSIFIED = [
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("10.0.0.5", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "shared"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address classified, not bound
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("192.0.0.9", "reserved"),
    ("192.88.99.1", "6to4"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("fd00::1", "private"),
    ("fec0::1", "private"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped"),
    ("::ffff:93.184.216.34", "IPv4-mapped"),
    ("::7f00:1", "reserved"),
    ("64:ff9b::a00:5", "NAT64"),
    ("64:ff9b:1::1", "NAT64"),
    ("2002:7f00:1::", "6to4"),
    ("2002:5db8:d822::1", "6to4"),
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:db8::1", "reserved"),
    ("3fff::1", "reserved"),
    ("93.184.216.34", None),
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:82a::200e", None),
]


@pytest.mark.parametrize(("address", "kind"), CLASSIFIED)
def test_every_address_is_public_unicast_or_named_for_what_it_is(
    address: str, kind: str | None
) -> None:
    assert address_kind(address) == kind


def test_vetting_resolves_once_and_pins_the_first_address() -> None:
    # Given a name with two public addresses
    questions: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        questions.append((host, port))
        return ["93.184.216.34", "2606:4700:4700::1111"]

    # When it is vetted, Then the destination is the first address, named by the URL's host
    found = EgressPolicy(resolver=resolver).vet("https://Shop.Example/admin?x=1")
    assert found == Destination("https", "shop.example", 443, "93.184.216.34")
    assert found.host_header == "shop.example"
    assert questions == [("shop.example", 443)]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://shop.example:8443/", "port 8443 is not one the hub may call"),
        ("http://user:pw@shop.example/", "the URL carries credentials"),
        ("http://[fe80::1%25eth0]/", "the URL names a scoped address"),
        ("http://shop.example/", "the host resolves to a private address"),
    ],
)
def test_ports_credentials_scopes_and_any_private_answer_are_refused(url: str, reason: str) -> None:
    policy = EgressPolicy(resolver=lambda host, port: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(EgressRefused) as refused:
        policy.vet(url)
    assert str(refused.value) == reason


def test_configured_ports_and_exact_exceptions_are_the_only_ways_past_the_rules(
    tmp_path: Path,
) -> None:
    # Given settings that add port 8443 and exempt one loopback destination
    settings = Settings.from_env(
        {
            "FUSION_HOME": str(tmp_path),
            "FUSION_ALLOW_PRIVATE_EGRESS": "false",
            "FUSION_EGRESS_PORTS": "8443",
            "FUSION_EGRESS_ALLOW": "127.0.0.1:9123, [::1]:9124",
        }
    )
    policy = EgressPolicy.from_settings(settings, resolver=lambda host, port: ["93.184.216.34"])
    assert settings.egress_allow == ("127.0.0.1:9123", "[::1]:9124")
    # Then the added port and the exempt destinations pass
    assert policy.vet("https://shop.example:8443/").port == 8443
    assert policy.vet("http://127.0.0.1:9123/x").address == "127.0.0.1"
    assert policy.vet("http://[::1]:9124/x").address == "::1"
    # And the same loopback host on another port does not
    with pytest.raises(EgressRefused, match="port 9125 is not one the hub may call"):
        policy.vet("http://127.0.0.1:9125/x")
    with pytest.raises(EgressRefused, match="the host resolves to a loopback address"):
        EgressPolicy.from_settings(dataclasses.replace(settings, egress_ports=(9125,))).vet(
            "http://127.0.0.1:9125/x"
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FUSION_EGRESS_PORTS", "80,http"),
        ("FUSION_EGRESS_ALLOW", "::1:80"),
        ("FUSION_EGRESS_ALLOW", "host"),
    ],
)
def test_malformed_egress_settings_are_refused_at_start(
    tmp_path: Path, name: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"FUSION_HOME": str(tmp_path), name: value})
