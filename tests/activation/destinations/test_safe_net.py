"""SSRF defences in activation.net: refused address classes, DNS answers, redirects, the allow-list."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from activation.net import EMPTY, AllowListError, SafeSession, UnsafeDestination, check_url, parse_allow_list
from activation.net.guard import Resolve


def resolver(table: dict[str, list[str]]) -> Resolve:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


PUBLIC = resolver({"example.com": ["93.184.216.34"]})

REFUSED_LITERALS = [
    ("http://127.0.0.1/", "loopback"),
    ("http://127.9.9.9:8123/", "loopback"),
    ("http://10.1.2.3/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "cloud_metadata"),
    ("http://169.254.10.10/", "link_local"),
    ("http://100.64.0.1/", "reserved"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://[::1]/", "loopback"),
    ("http://[fe80::1]/", "link_local"),
    ("http://[fc00::1]/", "unique_local"),
    ("http://[fd12:3456::1]/", "unique_local"),
    ("http://[fd00:ec2::254]/", "cloud_metadata"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[2002:7f00:1::1]/", "loopback"),
    ("http://[64:ff9b::a00:1]/", "private"),
]

# IPv6 forms that embed an IPv4 address are judged by what they embed.
EMBEDDED_LITERALS = [
    ("http://[::127.0.0.1]/", "loopback"),  # IPv4-compatible
    ("http://[::ffff:0:7f00:1]/", "loopback"),  # IPv4-translated
    ("http://[::ffff:10.0.0.1]/", "private"),  # IPv4-mapped
    ("http://[::ffff:169.254.169.254]/", "cloud_metadata"),
    ("http://[64:ff9b:1::a9fe:a9fe]/", "cloud_metadata"),  # local-use NAT64
    ("http://[64:ff9b:1:0:0:0:169.254.169.254]/", "cloud_metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "cloud_metadata"),  # well-known NAT64
    ("http://[2002:a9fe:a9fe::1]/", "cloud_metadata"),  # 6to4
    ("http://[2002:c0a8:101::1]/", "private"),
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "private"),  # Teredo, client 10.0.0.1
    ("http://[2001:0:a9fe:a9fe:8000:63bf:3fff:fdd2]/", "cloud_metadata"),  # Teredo, server = metadata
    ("http://[64:ff9b:1:ab::a9fe:a9fe]/", "nat64_undecodable"),  # local-use prefix, not the /96 layout
    ("http://[::ffff:0:a9fe:a9fe]/", "cloud_metadata"),
]

PUBLIC_EMBEDDED = [
    "http://[::ffff:8.8.8.8]/",
    "http://[::8.8.8.8]/",
    "http://[64:ff9b::808:808]/",
    "http://[64:ff9b:1::808:808]/",
    "http://[2002:808:808::1]/",
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_LITERALS)
async def test_literal_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url(url, EMPTY, resolve=PUBLIC)
    assert info.value.reason == reason


@pytest.mark.parametrize(("url", "reason"), EMBEDDED_LITERALS)
async def test_ipv6_forms_are_judged_by_the_ipv4_they_embed(url: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url(url, EMPTY, resolve=PUBLIC)
    assert info.value.reason == reason


@pytest.mark.parametrize("url", PUBLIC_EMBEDDED)
async def test_ipv6_forms_embedding_a_public_ipv4_are_accepted(url: str) -> None:
    await check_url(url, EMPTY, resolve=PUBLIC)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [("::ffff:127.0.0.1", "loopback"), ("64:ff9b:1::a9fe:a9fe", "cloud_metadata"), ("::a00:1", "private")],
)
async def test_dns_answers_embedding_private_ipv4_are_refused(answer: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url("https://aaaa.example/", EMPTY, resolve=resolver({"aaaa.example": [answer]}))
    assert info.value.reason == reason


async def test_allow_list_applies_to_what_an_ipv6_form_embeds() -> None:
    allow = parse_allow_list("127.0.0.1:8080,10.0.0.0/8,64:ff9b:1::/48,169.254.0.0/16")
    await check_url("http://[::ffff:127.0.0.1]:8080/", allow)
    await check_url("http://[64:ff9b::a00:5]:1234/", allow)
    with pytest.raises(UnsafeDestination):
        await check_url("http://[::ffff:127.0.0.1]:8081/", allow)
    for metadata in ("http://[64:ff9b:1::a9fe:a9fe]/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(UnsafeDestination) as info:
            await check_url(metadata, allow)
        assert info.value.reason == "cloud_metadata"


async def test_allow_list_ports_name_one_port_and_a_cidr_opens_every_port() -> None:
    allow = parse_allow_list("10.0.0.5:9000,[fd00::5]:8443,crm.internal:8443,10.30.0.0/16")
    await check_url("http://10.0.0.5:9000/", allow)
    await check_url("https://[fd00::5]:8443/", allow)
    for port in (80, 443, 8123, 65535):
        await check_url(f"http://10.30.1.2:{port}/", allow)
    for refused in (
        "http://10.0.0.5:9001/",
        "http://10.0.0.5/",
        "https://[fd00::5]/",
        "http://[fd00::5]:9000/",
    ):
        with pytest.raises(UnsafeDestination):
            await check_url(refused, allow)


@pytest.mark.parametrize(
    "url",
    ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://127.1/", "http://0x7f000001/"],
)
async def test_numeric_encoded_hosts_are_refused(url: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url(url, parse_allow_list("127.0.0.1"), resolve=PUBLIC)
    assert info.value.reason == "numeric_encoded_host"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud_metadata"),
        ("http://METADATA.google.internal./", "cloud_metadata"),
        ("http://localhost:8123/", "loopback"),
        ("http://ch.localhost/", "loopback"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("http://user:hunter2@example.com/", "userinfo"),
    ],
)
async def test_names_schemes_and_userinfo_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url(url, EMPTY, resolve=PUBLIC)
    assert info.value.reason == reason
    assert "hunter2" not in str(info.value)


async def test_public_name_is_accepted() -> None:
    await check_url("https://example.com/hook", EMPTY, resolve=PUBLIC)


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["10.0.0.5"], "private"),
        (["93.184.216.34", "127.0.0.1"], "loopback"),
        (["169.254.169.254"], "cloud_metadata"),
    ],
)
async def test_names_resolving_to_private_addresses_are_refused(answers: list[str], reason: str) -> None:
    with pytest.raises(UnsafeDestination) as info:
        await check_url(
            "https://hooks.example.net/x", EMPTY, resolve=resolver({"hooks.example.net": answers})
        )
    assert info.value.reason == reason


async def test_real_resolver_refuses_localhost_alias() -> None:
    with pytest.raises(UnsafeDestination):
        await check_url("http://localhost./", EMPTY)


async def test_allow_list_permits_named_private_targets() -> None:
    allow = parse_allow_list(" 127.0.0.1, crm.internal:8443, 10.20.0.0/16 ,[::1]:9000")
    await check_url("http://127.0.0.1:5555/", allow)
    await check_url("https://crm.internal:8443/api", allow, resolve=resolver({"crm.internal": ["10.9.9.9"]}))
    await check_url("http://svc.corp/", allow, resolve=resolver({"svc.corp": ["10.20.3.4"]}))
    await check_url("http://[::1]:9000/", allow)
    with pytest.raises(UnsafeDestination):
        await check_url(
            "https://crm.internal:9999/api", allow, resolve=resolver({"crm.internal": ["10.9.9.9"]})
        )
    with pytest.raises(UnsafeDestination):
        await check_url("http://[::1]:9001/", allow)
    with pytest.raises(UnsafeDestination):
        await check_url("http://10.21.0.1/", allow)


async def test_allow_list_never_permits_metadata() -> None:
    allow = parse_allow_list("169.254.0.0/16,169.254.169.254,metadata.google.internal")
    for url in ("http://169.254.169.254/", "http://metadata.google.internal/"):
        with pytest.raises(UnsafeDestination):
            await check_url(url, allow, resolve=resolver({}))


@pytest.mark.parametrize(
    "text", ["10.0.0.0/33", "host:99999", "host:abc", "[::1]:0", "[::1", "[::1]8080", "[name]:80"]
)
def test_bad_allow_list_entries_are_reported(text: str) -> None:
    with pytest.raises(AllowListError):
        parse_allow_list(text)


def test_a_cidr_with_a_port_is_refused_with_the_reason() -> None:
    with pytest.raises(AllowListError, match="opens every port"):
        parse_allow_list("10.0.0.0/8:443")


# --- send time ------------------------------------------------------------------------------------


class Redirector:
    """A tiny server: /go?to=URL answers 302 to URL; /echo returns the headers it received."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_get("/go", self.go)
        self.app.router.add_post("/go", self.go)
        self.app.router.add_route("*", "/echo", self.echo)
        self.app.router.add_get("/loop/{n}", self.loop)

    async def go(self, request: web.Request) -> web.StreamResponse:
        self.hits.append("go")
        raise web.HTTPFound(request.query["to"])

    async def loop(self, request: web.Request) -> web.StreamResponse:
        self.hits.append("loop")
        raise web.HTTPFound(f"/loop/{int(request.match_info['n']) + 1}")

    async def echo(self, request: web.Request) -> web.StreamResponse:
        self.hits.append("echo")
        return web.json_response({"method": request.method, "auth": request.headers.get("Authorization")})


@pytest.fixture
async def redirector() -> AsyncIterator[tuple[Redirector, str]]:
    server = Redirector()
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield server, f"http://127.0.0.1:{site.port}"
    await runner.cleanup()


async def test_loopback_is_refused_at_send_without_allow_list(redirector: tuple[Redirector, str]) -> None:
    server, base = redirector
    async with SafeSession(EMPTY) as client:
        with pytest.raises(UnsafeDestination):
            await client.request("GET", base + "/echo")
    assert server.hits == []


async def test_allow_listed_loopback_is_reached(redirector: tuple[Redirector, str]) -> None:
    _, base = redirector
    async with SafeSession(parse_allow_list("127.0.0.1")) as client:
        response = await client.request("GET", base + "/echo", headers={"Authorization": "Bearer t"})
    assert response.status == 200
    assert response.json() == {"method": "GET", "auth": "Bearer t"}


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/", "http://169.254.169.254/latest/", "http://[::ffff:10.0.0.1]/", "http://2130706433/"],
)
async def test_redirect_to_private_address_is_refused(
    redirector: tuple[Redirector, str], target: str
) -> None:
    server, base = redirector
    async with SafeSession(parse_allow_list("127.0.0.1")) as client:
        with pytest.raises(UnsafeDestination):
            await client.request("GET", f"{base}/go", params={"to": target})
    assert server.hits == ["go"]


async def test_redirect_to_name_resolving_inward_is_refused(redirector: tuple[Redirector, str]) -> None:
    _, base = redirector
    resolve = resolver({"evil.example": ["192.168.0.10"]})
    async with SafeSession(parse_allow_list("127.0.0.1"), resolve=resolve) as client:
        with pytest.raises(UnsafeDestination) as info:
            await client.request("GET", f"{base}/go", params={"to": "http://evil.example/"})
    assert info.value.reason == "private"


async def test_redirect_chain_is_capped_at_five(redirector: tuple[Redirector, str]) -> None:
    server, base = redirector
    async with SafeSession(parse_allow_list("127.0.0.1")) as client:
        with pytest.raises(UnsafeDestination) as info:
            await client.request("GET", f"{base}/loop/0")
    assert info.value.reason == "too_many_redirects"
    assert server.hits == ["loop"] * 6


async def test_cross_origin_redirect_drops_credentials_and_303_becomes_get(
    redirector: tuple[Redirector, str],
) -> None:
    _, base = redirector
    other_origin = base.replace("127.0.0.1", "fake.test")
    resolve = resolver({"fake.test": ["127.0.0.1"]})
    async with SafeSession(parse_allow_list("127.0.0.1"), resolve=resolve) as client:
        response = await client.request(
            "POST",
            f"{base}/go",
            params={"to": other_origin + "/echo"},
            headers={"Authorization": "Bearer s3"},
            body=b"{}",
        )
    assert response.json() == {"method": "GET", "auth": None}


async def test_dns_rebinding_is_caught_at_connect(redirector: tuple[Redirector, str]) -> None:
    server, base = redirector
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    url = base.replace("127.0.0.1", "rebind.example") + "/echo"
    await check_url(url, EMPTY, resolve=rebinding)  # first answer is public: accepted at save time
    async with SafeSession(EMPTY, resolve=rebinding) as client:
        with pytest.raises(UnsafeDestination) as info:
            await client.request("GET", url)
    assert info.value.reason == "loopback"
    assert server.hits == []


async def test_connection_is_pinned_to_the_vetted_address(redirector: tuple[Redirector, str]) -> None:
    server, base = redirector
    url = base.replace("127.0.0.1", "pinned.invalid") + "/echo"  # .invalid never resolves in real DNS
    async with SafeSession(
        parse_allow_list("127.0.0.1"), resolve=resolver({"pinned.invalid": ["127.0.0.1"]})
    ) as s:
        response = await s.request("GET", url)
    assert response.status == 200
    assert server.hits == ["echo"]
