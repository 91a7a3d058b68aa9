# Outside tests of docs/security.md "TLS": with --tls-cert/--tls-key the one port serves wss://
# and https:// only. The certificate is self-signed, made here with the openssl CLI for
# 127.0.0.1/localhost; the client trusts exactly that certificate and verifies it (hostname
# included). Plain ws:// to that port fails, and a client without trust in the certificate (the
# system CA store) refuses it.
import asyncio
import os
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest
import websockets

from conftest import Client, Edge, STOP_TIMEOUT
from security_helpers import run_edge_expect_exit


def make_cert(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def trusting_context(cert):
    # The only CA is our certificate (no system store); PROTOCOL_TLS_CLIENT verifies the chain
    # and the hostname.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=cert)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


@pytest.fixture(scope="module")
def tls(edge_binary):
    """(edge serving TLS, its cert path). Dev mode: TLS is independent of the token kind."""
    with tempfile.TemporaryDirectory(prefix="waymark-tls-") as tmp:
        cert, key = make_cert(tmp)
        data = os.path.join(tmp, "data")
        edge = Edge(edge_binary, data, ["--tls-cert", cert, "--tls-key", key],
                    tls_context=trusting_context(cert))
        try:
            edge.start()
            yield edge, cert
        finally:
            code = edge.terminate()
            assert code == 0, "SIGTERM exit code %r (None = not within %ss)\n%s" % (
                code, STOP_TIMEOUT, edge.stderr_tail())


async def test_wss_hello_send_ack_verified(tls):
    edge, _ = tls
    assert edge.ws_url.startswith("wss://127.0.0.1:"), edge.ws_url
    alice = await Client.login(edge, "alice")  # verifies the chain and 127.0.0.1 in the SAN
    bob = await Client.login(edge, "bob")
    try:
        assert alice.welcome["user"] == "alice", alice.welcome
        await bob.sub("tls")
        ack = await alice.send_msg("tls", "over-tls", body={"text": "encrypted"})
        assert ack["t"] == "ack" and ack["seq"] == 1, ack
        msg = await bob.recv_type("msg", conv="tls")
        assert msg["body"] == {"text": "encrypted"}, msg
        assert alice.ws.transport.get_extra_info("ssl_object") is not None, "not TLS"
    finally:
        await alice.close()
        await bob.close()


def test_https_healthz_verified(tls):
    edge, _ = tls
    status, _, _ = edge.http_get("/healthz")
    assert status == 200, "GET https://.../healthz with the trusted cert: %s" % status


async def test_plain_ws_to_tls_port_fails(tls):
    edge, _ = tls
    url = "ws://127.0.0.1:%d/ws" % edge.port
    try:
        ws = await websockets.connect(url, subprotocols=["waymark.v1"], open_timeout=5,
                                      close_timeout=1)
    except (websockets.WebSocketException, OSError, EOFError, asyncio.TimeoutError):
        return
    await ws.close()
    raise AssertionError("security.md: a TLS port serves wss:// only, but plain ws:// connected")


def test_plain_http_to_tls_port_fails(tls):
    edge, _ = tls
    url = "http://127.0.0.1:%d/healthz" % edge.port
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            status = resp.status
    except (urllib.error.URLError, OSError, ConnectionError) as err:
        if isinstance(err, urllib.error.HTTPError):
            assert err.code != 200
        return
    except Exception:  # http.client.BadStatusLine / RemoteDisconnected and the like
        return
    assert status != 200, "security.md: a TLS port serves https:// only, but plain http got 200"


async def test_untrusting_client_refuses_the_certificate(tls):
    edge, _ = tls
    default = ssl.create_default_context()  # the system CA store: knows nothing of our cert
    with pytest.raises(ssl.SSLCertVerificationError):
        ws = await websockets.connect(edge.ws_url, ssl=default, subprotocols=["waymark.v1"],
                                      open_timeout=5)
        await ws.close()
    url = "https://127.0.0.1:%d/healthz" % edge.port
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(url, timeout=5, context=default)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError), info.value


async def test_hostname_is_checked(tls):
    """Sanity of the client side: the same trusted cert under a name it does not carry fails,
    so the passing tests above really verified the hostname."""
    edge, cert = tls
    ctx = trusting_context(cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        ws = await websockets.connect(edge.ws_url, ssl=ctx, server_hostname="not-localhost",
                                      subprotocols=["waymark.v1"], open_timeout=5)
        await ws.close()


def test_cert_without_key_refuses_to_start(edge_binary, tmp_path):
    cert, _ = make_cert(str(tmp_path))
    code, err = run_edge_expect_exit(edge_binary, ["--dev", "--tls-cert", cert])
    assert code is not None and code != 0, \
        "security.md: --tls-cert and --tls-key are both or neither; exit %r (None = started)\n%s" \
        % (code, err[-2000:])
