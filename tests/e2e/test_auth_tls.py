"""Authenticated reads, supervisor.open_reads, and gRPC over TLS (server-only and mutual) against the
real `procs.supervisor --watch`, with certificates made by the openssl CLI in the test's directory."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from kairos.api.pb import pb, pb_grpc
from tests.e2e.test_kairosctl import ctl
from tests.process.support import AUTH, Supervised

pytestmark = pytest.mark.slow
Start = Callable[..., Supervised]
STATUS = pb.GetSystemStatusRequest()


def code_of(call: Callable[[], Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed")
    d = tmp_path_factory.mktemp("pki")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=30)

    run("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kairos test CA")
    for name in ("server", "client"):
        run("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=kairos test {name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return d


def tls_stub(sup: Supervised, pki: Path, client: bool = False) -> tuple[grpc.Channel, Any]:
    pair = ((pki / "client.key").read_bytes(), (pki / "client.pem").read_bytes()) if client else (None, None)
    creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), *pair)
    channel = grpc.secure_channel(f"127.0.0.1:{sup.port}", creds)
    return channel, pb_grpc.TradingEngineStub(channel)


def test_open_reads_serves_reads_without_the_token_but_never_mutations(watch_engine: Start) -> None:
    sup = watch_engine(supervisor__open_reads="true")
    bare = pb_grpc.TradingEngineStub(sup.bare)
    assert bare.GetSystemStatus(STATUS, timeout=5).mode == "watch"
    order = pb.PlaceOrderRequest(venue=pb.VENUE_BINANCE, instrument="BTC-USDT", side=pb.SIDE_BUY,
                                 order_type=pb.ORDER_TYPE_LIMIT, price=100.0, quantity=0.1)
    assert code_of(lambda: bare.PlaceOrder(order, timeout=5)) == grpc.StatusCode.UNAUTHENTICATED
    assert "supervisor.open_reads" in sup.text()


def test_tls_serves_only_tls_clients_that_trust_the_ca(watch_engine: Start, pki: Path) -> None:
    sup = watch_engine(supervisor__tls_cert=pki / "server.pem", supervisor__tls_key=pki / "server.key")
    assert "(TLS, kairos.v1.TradingEngine" in sup.text()
    channel, stub = tls_stub(sup, pki)
    with channel:
        assert stub.GetSystemStatus(STATUS, metadata=AUTH, timeout=10).mode == "watch"
        assert code_of(lambda: stub.GetSystemStatus(STATUS, timeout=10)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: sup.stub.GetSystemStatus(STATUS, timeout=5)) == grpc.StatusCode.UNAVAILABLE  # plaintext
    assert ctl(sup, "--ca", str(pki / "ca.pem"), "status").returncode == 0
    plain = ctl(sup, "status")
    assert plain.returncode == 4 and "not reachable" in plain.stderr
    wrong_ca = ctl(sup, "--ca", str(pki / "client.pem"), "status")
    assert wrong_ca.returncode == 4


def test_mutual_tls_needs_a_client_certificate(watch_engine: Start, pki: Path) -> None:
    sup = watch_engine(supervisor__tls_cert=pki / "server.pem", supervisor__tls_key=pki / "server.key",
                       supervisor__tls_client_ca=pki / "ca.pem")
    assert "(TLS mutual, kairos.v1.TradingEngine" in sup.text()
    channel, stub = tls_stub(sup, pki, client=True)
    with channel:
        assert stub.GetSystemStatus(STATUS, metadata=AUTH, timeout=10).mode == "watch"
    channel, stub = tls_stub(sup, pki)
    with channel:
        assert code_of(lambda: stub.GetSystemStatus(STATUS, metadata=AUTH, timeout=10)) == grpc.StatusCode.UNAVAILABLE
    ca = ("--ca", str(pki / "ca.pem"))
    assert ctl(sup, *ca, "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"), "status").returncode == 0
    assert ctl(sup, *ca, "status").returncode == 4
    lone = ctl(sup, *ca, "--cert", str(pki / "client.pem"), "status")
    assert lone.returncode == 2 and "--cert and --key go together" in lone.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"supervisor__tls_cert": "server.pem"}, "tls_cert and tls_key go together"),
    ({"supervisor__tls_client_ca": "ca.pem"}, "mutual TLS needs the server's own tls_cert and tls_key"),
    ({"supervisor__tls_cert": "missing.pem", "supervisor__tls_key": "missing.key"}, "cannot read missing.pem"),
])
def test_bad_tls_settings_stop_the_start_with_one_clear_line(engines: list[Supervised], shm_prefix: str,
                                                             tmp_path: Path, env: dict, message: str) -> None:
    sup = Supervised.real(shm_prefix, tmp_path / "bad.log", "--watch", **env)
    engines.append(sup)
    assert sup.proc.wait(30) != 0
    assert message in sup.text() and "Traceback" not in sup.text()
