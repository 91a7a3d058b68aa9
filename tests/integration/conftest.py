# Fixtures for the outside integration tests: run the real waymark-edge binary and talk to it over
# loopback with a client written from /work/shared/protocol.md alone (no Waymark code shared).
import asyncio
import inspect
import json
import os
import tempfile
import time

import pytest
import websockets

# The edge process (started and stopped the same way by tests/bench/run_bench.py). Test modules
# import Edge and the two bounds from here.
from edge_launcher import Edge, START_TIMEOUT, STOP_TIMEOUT  # noqa: F401

SUBPROTOCOL = "waymark.v1"
# Every wait in the suite is bounded; the machine is a busy 2-core box, so bounds are generous
# (they stop hangs, they are not timing assertions).
RECV_TIMEOUT = 10.0
TEST_TIMEOUT = 120.0

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def pytest_addoption(parser):
    parser.addoption(
        "--edge",
        default=os.environ.get("WAYMARK_EDGE",
                               os.path.join(_REPO, "build", "release", "edge", "waymark-edge")),
        help="path of the waymark-edge binary under test",
    )
    parser.addoption(
        "--bench-dir",
        default=os.environ.get("WAYMARK_BENCH_DIR"),
        help="directory of the load harness binaries (default: <build>/tests/bench, the build "
             "being the one two levels above --edge)",
    )


def pytest_pyfunc_call(pyfuncitem):
    # Tests are plain `async def` functions; run each in a fresh event loop with an overall bound
    # so one stuck await fails that test instead of hanging the suite (no pytest-asyncio here).
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), TEST_TIMEOUT))
        return True
    return None


@pytest.fixture(scope="session")
def edge_binary(request):
    path = request.config.getoption("--edge")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        pytest.exit("waymark-edge binary not found at %s (pass --edge or set WAYMARK_EDGE)" % path,
                    returncode=2)
    return path


@pytest.fixture(scope="session")
def bench_dir(request, edge_binary):
    """Where waymark-bench, waymark-bench-echo and waymark-fsync-probe are built."""
    path = request.config.getoption("--bench-dir")
    if path is None:
        build = os.path.dirname(os.path.dirname(os.path.abspath(edge_binary)))
        path = os.path.join(build, "tests", "bench")
    return path


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory(prefix="waymark-it-") as path:
        yield path


@pytest.fixture
def edge_factory(edge_binary):
    """Starts edges on demand (fresh or given data dir, extra flags); stops all of them at the
    end and asserts each still-running one exits 0 within 5 s of SIGTERM."""
    started = []
    dirs = []

    def make(data_dir=None, extra_args=(), start=True, dev=True, tls_context=None):
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="waymark-it-")
            dirs.append(tmp)
            data_dir = tmp.name
        edge = Edge(edge_binary, data_dir, extra_args, dev=dev, tls_context=tls_context)
        started.append(edge)
        if start:
            edge.start()
        return edge

    yield make
    problems = []
    for edge in started:
        if edge.alive():
            code = edge.terminate()
            if code != 0:
                problems.append("edge on port %s: SIGTERM exit code %r (None = not within %ss)\n%s"
                                % (edge.port, code, STOP_TIMEOUT, edge.stderr_tail()))
    for tmp in dirs:
        tmp.cleanup()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def shared_edge(edge_binary):
    """One dev-mode edge for a whole module of independent table-driven checks."""
    with tempfile.TemporaryDirectory(prefix="waymark-it-") as path:
        edge = Edge(edge_binary, path).start()
        yield edge
        code = edge.terminate()
        assert code == 0, "SIGTERM exit code %r (None = not within %ss)\n%s" % (
            code, STOP_TIMEOUT, edge.stderr_tail())


@pytest.fixture
def edge(edge_factory):
    """A dev-mode edge on a fresh data dir: yields the Edge (host, port, data_dir)."""
    return edge_factory()


# ----------------------------------------------------------------------------------------------
# The client

def short(obj, limit=400):
    """repr of frames for failure messages, cut so an 8 KB body cannot flood the report."""
    text = repr(obj)
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


class Closed(Exception):
    """The server closed the socket while we were waiting for a frame."""

    def __init__(self, code, reason, frames):
        super().__init__("socket closed with %s %r; last frames before close: %s"
                         % (code, reason, [short(f, 200) for f in frames[-5:]]))
        self.code = code
        self.reason = reason
        self.frames = frames


class Client:
    """A minimal Waymark client over `websockets`. Every received text frame is parsed and kept in
    arrival order in `inbox`; waits take frames out of it by predicate and always time out."""

    def __init__(self, ws, user=None):
        self.ws = ws
        self.user = user
        self.inbox = []
        self.welcome = None
        self.binary_frames = []
        self.close_code = None
        self.close_reason = None
        self._arrived = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())
        self._rid = 0

    @classmethod
    async def open(cls, edge, subprotocols=(SUBPROTOCOL,), **kwargs):
        kwargs.setdefault("max_size", None)
        kwargs.setdefault("open_timeout", RECV_TIMEOUT)
        kwargs.setdefault("ping_interval", None)
        kwargs.setdefault("close_timeout", 2)
        if edge.tls_context is not None:
            kwargs.setdefault("ssl", edge.tls_context)
        ws = await websockets.connect(edge.ws_url, subprotocols=list(subprotocols), **kwargs)
        return cls(ws)

    @classmethod
    async def login(cls, edge, user="alice", subs=None, device=None, **kwargs):
        client = await cls.open(edge, **kwargs)
        await client.hello("dev:%s" % user, subs=subs, device=device)
        return client

    async def _read(self):
        try:
            async for data in self.ws:
                if isinstance(data, bytes):
                    self.binary_frames.append(data)
                else:
                    try:
                        frame = json.loads(data)
                    except ValueError:
                        frame = {"t": "<not json>", "raw": data}
                    self.inbox.append(frame)
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            self._arrived.set()

    @property
    def closed(self):
        return self._reader.done()

    def next_rid(self):
        self._rid += 1
        return "r%d" % self._rid

    # -- sending --
    async def send(self, frame):
        await self.send_raw(json.dumps(frame, separators=(",", ":")))

    async def send_raw(self, data):
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed as err:
            # Same exception as a close seen while receiving, so callers handle one kind.
            code = err.rcvd.code if err.rcvd is not None else self.ws.close_code
            reason = err.rcvd.reason if err.rcvd is not None else self.ws.close_reason
            raise Closed(code, reason, list(self.inbox)) from err

    async def hello(self, token, subs=None, device=None, timeout=RECV_TIMEOUT):
        frame = {"t": "hello", "token": token}
        if device is not None:
            frame["device"] = device
        if subs is not None:
            frame["subs"] = subs
        await self.send(frame)
        self.welcome = await self.recv_type("welcome", timeout=timeout)
        self.user = self.welcome.get("user")
        return self.welcome

    # -- receiving --
    async def recv_match(self, pred, timeout=RECV_TIMEOUT, what="frame"):
        """Remove and return the first frame in arrival order for which pred(frame) is true."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for i, frame in enumerate(self.inbox):
                if pred(frame):
                    return self.inbox.pop(i)
            if self.closed:
                raise Closed(self.close_code, self.close_reason, list(self.inbox))
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("timed out after %ss waiting for %s; unconsumed frames: %s"
                                     % (timeout, what, [short(f, 200) for f in self.inbox[-10:]]))
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def recv_type(self, t, timeout=RECV_TIMEOUT, **fields):
        def pred(frame):
            return frame.get("t") == t and all(frame.get(k) == v for k, v in fields.items())
        return await self.recv_match(pred, timeout, what="%s %s" % (t, fields or ""))

    async def recv_any(self, timeout=RECV_TIMEOUT):
        return await self.recv_match(lambda f: True, timeout, what="any frame")

    def take(self, pred):
        """Remove and return every already-received frame matching pred, in arrival order."""
        taken = [f for f in self.inbox if pred(f)]
        self.inbox = [f for f in self.inbox if not pred(f)]
        return taken

    def take_msgs(self, conv):
        return self.take(lambda f: f.get("t") == "msg" and f.get("conv") == conv)

    async def wait_closed(self, timeout=RECV_TIMEOUT):
        """Wait for the server to close; returns (code, reason)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            raise AssertionError("socket not closed within %ss; unconsumed frames: %s"
                                 % (timeout, [short(f, 200) for f in self.inbox[-10:]]))
        return self.close_code, self.close_reason

    async def barrier(self, timeout=RECV_TIMEOUT):
        """ping -> pong round trip with a fresh rid: everything the edge queued to this socket
        before it read our ping has arrived once the pong is here. A client that flooded the
        edge may find its ping refused with err rate_limited (docs/security.md: slow down); it
        pauses, doubling the pause, and pings again, within the same timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.05
        while True:
            rid = self.next_rid()
            await self.send({"t": "ping", "ts": now_ms(), "rid": rid})
            reply = await self.recv_match(
                lambda f, rid=rid: f.get("rid") == rid and f.get("t") in ("pong", "err"),
                max(deadline - loop.time(), 0.001), what="pong {'rid': %r}" % rid)
            if reply["t"] == "pong":
                return reply
            assert reply.get("code") == "rate_limited", "ping %s answered with %s" % (rid, reply)
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0)))
            pause = min(pause * 2, 1.0)

    # -- protocol helpers --
    async def sub(self, conv, after=None, limit=None, timeout=RECV_TIMEOUT):
        """sub and wait for subd; returns (replayed msgs for conv before the subd, subd)."""
        rid = self.next_rid()
        frame = {"t": "sub", "conv": conv, "rid": rid}
        if after is not None:
            frame["after"] = after
        if limit is not None:
            frame["limit"] = limit
        await self.send(frame)
        reply = await self.recv_match(
            lambda f: (f.get("t") == "subd" and f.get("conv") == conv)
            or (f.get("t") == "err" and f.get("rid") == rid), timeout, what="subd for %s" % frame)
        assert reply["t"] == "subd", "sub %s answered with %s" % (frame, reply)
        return self.take_msgs(conv), reply

    async def sub_all(self, conv, after=0, limit=None, timeout=RECV_TIMEOUT):
        """Subscribe from `after`, re-subscribing while subd.more; returns (all replayed, last subd)."""
        replay = []
        for _ in range(1000):
            msgs, subd = await self.sub(conv, after=after, limit=limit, timeout=timeout)
            replay += msgs
            if msgs:
                after = msgs[-1]["seq"]
            if not subd.get("more"):
                return replay, subd
        raise AssertionError("subd.more never became false")

    async def send_msg(self, conv, msg_id, body=None, trace=None, rid=None, wait=True,
                       timeout=RECV_TIMEOUT, **extra):
        frame = {"t": "send", "conv": conv, "id": msg_id,
                 "body": body if body is not None else {"text": msg_id}, "cts": now_ms()}
        if trace is not None:
            frame["trace"] = trace
        if rid is not None:
            frame["rid"] = rid
        frame.update(extra)
        await self.send(frame)
        if not wait:
            return None
        return await self.recv_reply(conv, msg_id, timeout=timeout)

    async def recv_reply(self, conv, msg_id, timeout=RECV_TIMEOUT):
        """The ack or nack for (conv, id)."""
        def pred(f):
            return f.get("t") in ("ack", "nack") and f.get("conv") == conv and f.get("id") == msg_id
        return await self.recv_match(pred, timeout, what="ack/nack for %s/%s" % (conv, msg_id))

    async def hist(self, conv, before=None, after=None, limit=None, timeout=RECV_TIMEOUT):
        rid = self.next_rid()
        frame = {"t": "hist", "conv": conv, "rid": rid}
        if before is not None:
            frame["before"] = before
        if after is not None:
            frame["after"] = after
        if limit is not None:
            frame["limit"] = limit
        await self.send(frame)
        reply = await self.recv_match(
            lambda f: f.get("rid") == rid and f.get("t") in ("page", "err"), timeout,
            what="page for hist %s" % frame)
        assert reply["t"] == "page", "hist %s answered with %s" % (frame, reply)
        return reply

    async def hist_all(self, conv, page=500, timeout=RECV_TIMEOUT):
        """The whole conversation via hist after=..., ascending, paging while more:true."""
        out = []
        after = 0
        for _ in range(10000):
            reply = await self.hist(conv, after=after, limit=page, timeout=timeout)
            out += reply["msgs"]
            if reply["msgs"]:
                after = reply["msgs"][-1]["seq"]
            if not reply.get("more"):
                return out
            assert reply["msgs"], "hist page with more:true but no msgs: %s" % reply
        raise AssertionError("hist more never became false")

    async def send_many(self, conv, ids, body_of=None, window=32, timeout=RECV_TIMEOUT):
        """Send one message per id with up to `window` unacknowledged; returns {id: ack or nack}."""
        body_of = body_of or (lambda msg_id: {"text": msg_id})
        replies = {}
        pending = []
        for msg_id in ids:
            await self.send_msg(conv, msg_id, body=body_of(msg_id), wait=False)
            pending.append(msg_id)
            if len(pending) >= window:
                oldest = pending.pop(0)
                replies[oldest] = await self.recv_reply(conv, oldest, timeout=timeout)
        for msg_id in pending:
            replies[msg_id] = await self.recv_reply(conv, msg_id, timeout=timeout)
        return replies

    async def close(self):
        try:
            await asyncio.wait_for(self.ws.close(), 5)
        except (asyncio.TimeoutError, websockets.WebSocketException, OSError):
            pass
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass


def now_ms():
    return int(time.time() * 1000)


def is_traceparent(value):
    """W3C traceparent: version-traceid-parentid-flags, lowercase hex, ids not all zero."""
    if not isinstance(value, str):
        return False
    parts = value.split("-")
    if len(parts) != 4:
        return False
    version, trace_id, parent_id, flags = parts
    hexdigits = set("0123456789abcdef")
    if (len(version), len(trace_id), len(parent_id), len(flags)) != (2, 32, 16, 2):
        return False
    if not all(set(p) <= hexdigits for p in parts):
        return False
    return version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16


def make_traceparent(n):
    return "00-%032x-%016x-01" % (0x4bf92f3577b34da6a3ce929d0e0e4736 + n, 0x00f067aa0ba902b7 + n)
