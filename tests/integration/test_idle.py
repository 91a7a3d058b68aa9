# Dead peers: protocol.md has clients ping every hb; the edge (docs/protocol.md, "Idle sockets")
# WebSocket-pings a socket it has heard nothing from for 2 x hb and hangs up after 3 x hb.
# A peer that answers WebSocket pings stays, however quiet; one that answers nothing goes.
import asyncio
import base64
import json
import os
import socket
import struct
import time

import websockets

from conftest import SUBPROTOCOL


def _masked_text_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _raw_session(edge):
    """A WebSocket client over a bare socket that says hello and then never answers anything."""
    sock = socket.create_connection((edge.host, edge.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: %s\r\n\r\n" % (edge.host, edge.port, key, SUBPROTOCOL))
                 .encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "the edge closed during the upgrade"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response[:200]
    sock.sendall(_masked_text_frame(json.dumps({"t": "hello", "token": "dev:quiet"})))
    return sock


def _wait_closed(sock, deadline):
    """Reads (and ignores) what the edge sends until it closes the socket; the time it closed."""
    sock.settimeout(0.5)
    opcodes = []
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic(), opcodes
        if not data:
            return time.monotonic(), opcodes
        opcodes.append(data[0] & 0x0F)
    return None, opcodes


async def test_a_peer_that_answers_nothing_is_pinged_then_hung_up(edge_factory):
    edge = edge_factory(extra_args=["--heartbeat-ms", "1000"])
    sock = _raw_session(edge)
    try:
        started = time.monotonic()
        closed_at, opcodes = await asyncio.get_running_loop().run_in_executor(
            None, _wait_closed, sock, started + 15)
        assert closed_at is not None, "a silent peer must be hung up on (3 x hb = 3 s)"
        assert closed_at - started >= 1.5, "not before 2 x hb of silence: %.1f s" % (closed_at - started)
        assert 0x9 in opcodes, "the edge pings a quiet peer before hanging up (opcodes %s)" % opcodes
    finally:
        sock.close()


async def test_a_quiet_peer_that_answers_pings_stays(edge_factory):
    # hb 2 s: the edge pings after 4 s of silence and would hang up at 6 s; the 2 s between
    # leave the pong room on a loaded 2-core CI machine (at hb 1 s a pong delayed past 1 s by
    # the scheduler once failed this test there).
    edge = edge_factory(extra_args=["--heartbeat-ms", "2000"])
    # The websockets library answers WebSocket pings by itself; this client sends nothing else.
    async with websockets.connect(edge.ws_url, subprotocols=[SUBPROTOCOL],
                                  ping_interval=None) as ws:
        await ws.send(json.dumps({"t": "hello", "token": "dev:quiet"}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["t"] == "welcome"
        await asyncio.sleep(8)  # 4 x hb without a frame from the client: well past the hang-up time
        await ws.send(json.dumps({"t": "ping", "rid": "still-here"}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert pong == {"t": "pong", "ts": pong["ts"], "rid": "still-here"}, pong
