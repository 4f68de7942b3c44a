"""OPC UA against a real asyncua server: subscriptions, polling, missing nodes, browse."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from indunet.edge.config import OpcuaDevice, parse_edge_config
from indunet.edge.opcua import WATCHDOG_S, OpcuaReader, browse, starter_config
from tests.edge.servers import OpcuaSim, free_port


@pytest.fixture(scope="module")
def plc():
    server = OpcuaSim(count=2000).start()
    yield server
    server.stop()


def _device(plc: OpcuaSim, **kw) -> OpcuaDevice:
    base = {
        "name": "press",
        "machine": "s/a/l/press",
        "endpoint": plc.endpoint,
        "sampling_ms": 100,
        "tags": [
            {"name": "speed", "node": "ns=2;s=Press.Speed"},
            {"name": "running", "path": "0:Objects/2:Press/2:Running", "type": "boolean"},
            {"name": "ghost", "node": "ns=2;s=Press.Nothing"},
            {"name": "wrongtype", "node": "ns=2;s=Press.Running"},
        ],
    }
    return OpcuaDevice.model_validate({**base, **kw})


def test_subscription_delivers_changes_and_bad_tags_are_named(plc: OpcuaSim) -> None:
    async def go():
        reader = OpcuaReader(_device(plc))
        await reader.connect()
        assert reader.mode == "subscribe"
        # a busy PLC's slow answer to the keep-alive probe must not end the session (asyncua's
        # default gives up after 1 s; each false loss resubscribed every item)
        assert reader.client._watchdog_intervall >= WATCHDOG_S >= 5
        problems = " | ".join(reader.problems)
        assert "tag 'ghost' field 'node'" in problems and "does not exist" in problems
        assert "tag 'wrongtype' field 'type'" in problems and "boolean" in problems
        first = {}
        for _ in range(50):
            first.update({r.tag: r.value for r in await reader.read_cycle()})
            if "speed" in first:
                break
            await asyncio.sleep(0.05)
        await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(plc.nodes["speed"].write_value(42.5), plc.loop)
        )
        later = {}
        for _ in range(60):
            later.update({r.tag: r.value for r in await reader.read_cycle()})
            if later.get("speed") == 42.5:
                break
            await asyncio.sleep(0.05)
        await reader.close()
        return first, later

    first, later = asyncio.run(go())
    assert first["speed"] == 10.0 and first["running"] is True
    assert later["speed"] == 42.5


def test_polling_mode_reads_every_tag(plc: OpcuaSim) -> None:
    tags = [{"name": f"v{i}", "node": f"ns=2;s=Bulk.V{i}"} for i in range(1500)]

    async def go():
        reader = OpcuaReader(_device(plc, mode="poll", tags=tags))
        await reader.connect()
        readings = await reader.read_cycle()
        await reader.close()
        return reader, readings

    reader, readings = asyncio.run(go())
    assert [r.value for r in readings] == [float(i) for i in range(1500)]
    # 2 checks + 2 look-ups of EngineeringUnits (none here) + 2 reads, per 1000 nodes
    assert reader.requests == 6  # not 1500 requests


def test_unreachable_server_is_a_clear_temporary_error() -> None:
    from indunet.errors import TemporaryError

    dev = OpcuaDevice.model_validate(
        {
            "name": "gone",
            "machine": "s/a/l/gone",
            "endpoint": "opc.tcp://127.0.0.1:1/x",
            "timeout_s": 1,
            "tags": [{"name": "x", "node": "ns=2;s=X"}],
        }
    )
    with pytest.raises(TemporaryError, match=r"'gone'.*not reachable"):
        asyncio.run(OpcuaReader(dev).connect())


def test_browse_finds_thousands_of_nodes_and_writes_a_usable_config(plc: OpcuaSim) -> None:
    t0 = time.perf_counter()
    nodes = asyncio.run(browse(plc.endpoint))
    took = time.perf_counter() - t0
    assert len(nodes) >= 2003
    assert {n.kind for n in nodes} >= {"number", "boolean"}
    text = starter_config(plc.endpoint, nodes)
    import tomllib

    cfg = parse_edge_config(tomllib.loads(text))
    assert not cfg.problems and len(cfg.devices[0].tags) >= 2003
    assert took < 60  # generous: only guards against a per-node request storm


# ------------------------------------------------------------------ security, login, fallback
def _self_signed(folder: Path, name: str, uri: str) -> tuple[Path, Path]:
    """Write a self-signed application certificate (DER) and its key (PEM) for ``uri``."""
    import datetime as dt
    import socket

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(uri), x509.DNSName(socket.gethostname())]
            ),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _Users:
    """A user manager that knows one operator and refuses everyone else."""

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole

        if username == "op1" and password == "pa55-word":
            return User(role=UserRole.User, name=username)
        return None


class GuardedPlc:
    """An asyncua server on 127.0.0.1 with a chosen security policy, login and limits."""

    def __init__(
        self,
        *,
        port: int | None = None,
        cert: tuple[Path, Path] | None = None,
        trusted: Path | None = None,
        users: bool = False,
        max_subscriptions: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/guarded/"
        self.cert, self.trusted, self.users = cert, trusted, users
        self.max_subscriptions = max_subscriptions
        self.loop: asyncio.AbstractEventLoop | None = None
        self.speed = None
        self.sessions = 0
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    async def _validate(self, cert, app) -> None:
        """Accept only the trusted client certificate whose URI names the application."""
        from asyncua import ua
        from asyncua.common.utils import ServiceError
        from asyncua.crypto.validator import CertificateValidator
        from cryptography.hazmat.primitives import serialization

        await CertificateValidator().validate(cert, app)  # time range and application URI
        assert self.trusted is not None
        if cert.public_bytes(serialization.Encoding.DER) != self.trusted.read_bytes():
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    async def _main(self, ready: threading.Event) -> None:
        from asyncua import Server, ua

        server = Server(user_manager=_Users() if self.users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.cert:
            await server.set_application_uri("urn:indunet:test:plc")
            await server.load_certificate(str(self.cert[0]))
            await server.load_private_key(str(self.cert[1]))
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            server.set_certificate_validator(self._validate)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if self.max_subscriptions is not None:
            server.iserver.max_subscriptions = self.max_subscriptions
        ns = await server.register_namespace("urn:indunet:test")
        plc = await server.nodes.objects.add_object(ua.NodeId("Press", ns), f"{ns}:Press")
        self.speed = await plc.add_variable(ua.NodeId("Press.Speed", ns), f"{ns}:Speed", 10.0)
        self._stop = asyncio.Event()
        async with server:
            ready.set()
            await self._stop.wait()

    def start(self) -> GuardedPlc:
        """Start serving in a thread of its own."""
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            try:
                self.loop.run_until_complete(self._main(ready))
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(30), "OPC UA test server did not start"
        return self

    def set_speed(self, value: float) -> None:
        """Change the speed on the server."""
        asyncio.run_coroutine_threadsafe(self.speed.write_value(value), self.loop).result(10)

    def stop(self) -> None:
        """Stop the server; its clients see the connection drop."""
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)


def _guarded_device(plc: GuardedPlc, **kw) -> OpcuaDevice:
    base = {
        "name": "press",
        "machine": "s/a/l/press",
        "endpoint": plc.endpoint,
        "sampling_ms": 50,
        "timeout_s": 3,
        "tags": [{"name": "speed", "node": "ns=2;s=Press.Speed"}],
    }
    return OpcuaDevice.model_validate({**base, **kw})


async def _speed_until(reader: OpcuaReader, want: float, tries: int = 100) -> float | None:
    seen = None
    for _ in range(tries):
        for r in await reader.read_cycle():
            if r.tag == "speed":
                seen = r.value
        if seen == want:
            return seen
        await asyncio.sleep(0.05)
    return seen


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    return {
        "server": _self_signed(folder, "plc", "urn:indunet:test:plc"),
        "client": _self_signed(folder, "edge", "urn:indunet:edge:press-line"),
        "stranger": _self_signed(folder, "stranger", "urn:someone:else"),
    }


@pytest.fixture(scope="module")
def secure_plc(pki):
    plc = GuardedPlc(cert=pki["server"], trusted=pki["client"][0]).start()
    yield plc
    plc.stop()


def test_sign_and_encrypt_with_certificates_reads_and_subscribes(secure_plc, pki) -> None:
    cert, key = pki["client"]
    dev = _guarded_device(
        secure_plc,
        security="SignAndEncrypt",
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(pki["server"][0]),
    )

    async def go():
        reader = OpcuaReader(dev)
        await reader.connect()
        policy = reader.client.security_policy
        first = await _speed_until(reader, 10.0)
        await asyncio.to_thread(secure_plc.set_speed, 33.0)
        later = await _speed_until(reader, 33.0)
        await reader.close()
        return reader.mode, policy, first, later

    mode, policy, first, later = asyncio.run(go())
    assert mode == "subscribe"
    assert policy.URI.endswith("#Basic256Sha256") and policy.Mode.name == "SignAndEncrypt"
    assert (first, later) == (10.0, 33.0)


def test_sign_and_encrypt_learns_the_server_certificate_when_not_pinned(secure_plc, pki) -> None:
    cert, key = pki["client"]
    dev = _guarded_device(
        secure_plc, security="SignAndEncrypt", certificate=str(cert), private_key=str(key)
    )

    async def go():
        reader = OpcuaReader(dev)
        await reader.connect()
        await asyncio.to_thread(secure_plc.set_speed, 44.0)
        value = await _speed_until(reader, 44.0)
        await reader.close()
        return value

    assert asyncio.run(go()) == 44.0


def test_untrusted_client_certificate_is_a_config_error_naming_the_device(secure_plc, pki) -> None:
    from indunet.errors import ConfigError

    cert, key = pki["stranger"]
    dev = _guarded_device(
        secure_plc,
        security="SignAndEncrypt",
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(pki["server"][0]),
    )
    with pytest.raises(ConfigError, match=r"'press'.*refused the login or certificate"):
        asyncio.run(OpcuaReader(dev).connect())


def test_pinned_server_certificate_that_does_not_match_is_refused(secure_plc, pki) -> None:
    from indunet.errors import ConfigError, IndunetError

    cert, key = pki["client"]
    dev = _guarded_device(
        secure_plc,
        security="SignAndEncrypt",
        certificate=str(cert),
        private_key=str(key),
        server_certificate=str(pki["stranger"][0]),  # not the server's certificate
    )

    async def go():
        reader = OpcuaReader(dev)
        try:
            await reader.connect()
        finally:
            await reader.close()

    with pytest.raises(IndunetError, match=r"'press'") as info:
        asyncio.run(go())
    assert isinstance(info.value, ConfigError)


def test_unparsable_certificate_file_is_a_config_error(secure_plc, tmp_path) -> None:
    from indunet.errors import ConfigError

    bad = tmp_path / "broken.der"
    bad.write_bytes(b"not a certificate")
    dev = _guarded_device(
        secure_plc, security="SignAndEncrypt", certificate=str(bad), private_key=str(bad)
    )
    with pytest.raises(ConfigError, match=r"'press'.*certificate or key"):
        asyncio.run(OpcuaReader(dev).connect())


def test_secured_server_that_is_down_is_temporary_not_a_certificate_problem(pki) -> None:
    from indunet.errors import TemporaryError

    cert, key = pki["client"]
    dev = OpcuaDevice.model_validate(
        {
            "name": "press",
            "machine": "s/a/l/press",
            "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/gone/",
            "timeout_s": 1,
            "security": "SignAndEncrypt",
            "certificate": str(cert),
            "private_key": str(key),
            "tags": [{"name": "speed", "node": "ns=2;s=Press.Speed"}],
        }
    )
    with pytest.raises(TemporaryError, match=r"'press'.*not reachable"):
        asyncio.run(OpcuaReader(dev).connect())


@pytest.fixture(scope="module")
def login_plc():
    plc = GuardedPlc(users=True).start()
    yield plc
    plc.stop()


def test_username_login_is_accepted(login_plc) -> None:
    async def go():
        reader = OpcuaReader(_guarded_device(login_plc, username="op1", password="pa55-word"))
        await reader.connect()
        value = await _speed_until(reader, 10.0)
        await reader.close()
        return value

    assert asyncio.run(go()) == 10.0


@pytest.mark.parametrize(
    ("username", "password"), [("op1", "wrong"), ("intruder", "pa55-word"), ("", "")]
)
def test_wrong_or_missing_login_is_refused_with_a_config_error(
    login_plc, username: str, password: str
) -> None:
    from indunet.errors import ConfigError

    dev = _guarded_device(login_plc, username=username, password=password)
    with pytest.raises(ConfigError, match=r"'press'.*refused the login"):
        asyncio.run(OpcuaReader(dev).connect())


def test_server_refusing_subscriptions_makes_the_device_poll() -> None:
    plc = GuardedPlc(max_subscriptions=0).start()

    async def go():
        reader = OpcuaReader(_guarded_device(plc))
        await reader.connect()
        mode = reader.mode
        before = reader.requests
        first = await reader.read_cycle()
        await asyncio.to_thread(plc.set_speed, 61.0)
        second = await reader.read_cycle()
        await reader.close()
        return mode, reader.requests - before, first, second

    try:
        mode, requests, first, second = asyncio.run(go())
    finally:
        plc.stop()
    assert mode == "poll"
    assert [(r.tag, r.value) for r in first] == [("speed", 10.0)]
    assert [(r.tag, r.value) for r in second] == [("speed", 61.0)]
    assert requests == 2  # one read per cycle: really polled, not served from a subscription


def test_server_that_disappears_and_comes_back_is_read_again_with_subscriptions() -> None:
    from indunet.errors import TemporaryError

    plc = GuardedPlc().start()
    port = plc.port

    async def go():
        reader = OpcuaReader(_guarded_device(plc))
        await reader.connect()
        before = await _speed_until(reader, 10.0)
        await asyncio.to_thread(plc.stop)
        error = None
        for _ in range(100):  # the next cycles notice the lost session
            try:
                await reader.read_cycle()
            except TemporaryError as exc:
                error = exc
                break
            await asyncio.sleep(0.05)
        await reader.close()
        with pytest.raises(TemporaryError, match="not reachable"):
            await reader.connect()  # still down
        back = await asyncio.to_thread(GuardedPlc(port=port).start)
        try:
            await reader.connect()  # what the device task does after its backoff
            mode = reader.mode
            await asyncio.to_thread(back.set_speed, 77.0)
            after = await _speed_until(reader, 77.0)
            await reader.close()
        finally:
            await asyncio.to_thread(back.stop)
        return before, error, mode, after

    before, error, mode, after = asyncio.run(go())
    assert before == 10.0
    assert error is not None and "'press'" in str(error)
    assert mode == "subscribe" and after == 77.0
