"""A root and relays of real waymark-edge processes for test_regions.py, each relay behind a link
the test can cut, black-hole and slow (region_net.py), and the chatting clients that talk to
them over the protocol (conftest.Client)."""
import asyncio
import os
import queue
import socket
import subprocess
import tempfile
import threading
import time

import websockets

from conftest import Client, Closed, SUBPROTOCOL, RECV_TIMEOUT, now_ms
from edge_launcher import Edge, START_TIMEOUT, STOP_TIMEOUT
import region_net

HEARTBEAT_MS = 1000  # the smallest --heartbeat-ms: a silent link is dead after 2 x hb
ROOT_PORT = 7400     # inside the namespaces every port is free
RELAY_PORT = 7410


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Node(Edge):
    """One waymark-edge, maybe inside a network namespace (`ip netns exec` execs it, so the pid is
    the edge's own and SIGKILL hits it). Always a fixed port, so a restart keeps its address."""

    def __init__(self, binary, data_dir, name, port, listen_host="127.0.0.1", netns=None,
                 prefix=(), extra_args=()):
        super().__init__(binary, data_dir, ["--node", name] + list(extra_args), dev=True, port=port)
        self.name = name
        self.netns = netns
        self.prefix = list(prefix)
        self.listen_host = listen_host
        self.host = "127.0.0.1"  # where a client reaches it (from inside self.netns)
        self.port = port
        self.starts = 0
        self.killed_by_test = False

    def _start(self):
        listen = "%s:%d" % (self.listen_host, self.listen_port)
        args = self.prefix + [self.binary, "--listen", listen, "--data", self.data_dir,
                              "--dev"] + self.extra_args
        self.logs = []
        self.raw_logs = []
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._drain, args=(self.proc, self._lines),
                                        daemon=True)
        self._reader.start()
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.proc.kill()
                raise AssertionError("%s did not log 'listening' within %ss; stderr:\n%s"
                                     % (self.name, START_TIMEOUT, self.stderr_tail(30)))
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                line = None
            if line is None:
                if self.proc.poll() is not None:
                    raise AssertionError("%s exited with %s before listening; stderr:\n%s"
                                         % (self.name, self.proc.returncode, self.stderr_tail(30)))
                continue
            if line.get("event") == "listening":
                assert int(line["port"]) == self.listen_port, line
                return self

    def kill(self):
        self.killed_by_test = True
        super().kill()

    def start(self):
        self.killed_by_test = False
        return self._start()

    def events(self, name):
        return [line for line in list(self.logs) if line.get("event") == name]


class Cluster:
    """A root and `relays` relays. mode "netns": each in its own namespace, relay k's upstream a
    veth pair to the root's namespace; mode "proxy": all on 127.0.0.1, each relay's upstream
    through a FaultProxy. `slow_via_proxy`: (netns mode without tc netem) the last relay's
    upstream goes through a FaultProxy inside its namespace, which does the slowing."""

    def __init__(self, binary, relays=3, mode="netns"):
        self.binary = binary
        self.mode = mode
        self.n_relays = relays
        self.slow_via_proxy = False
        self.netem_reason = None  # why tc netem could not be used, if it could not
        self.tmp = tempfile.TemporaryDirectory(prefix="waymark-regions-")
        self.topology = None
        self.proxies = {}  # relay index -> FaultProxy
        self.root = None
        self.relays = []

    # -- lifecycle --
    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        common = ["--heartbeat-ms", str(HEARTBEAT_MS), "--log-level", "info"]
        if self.mode == "netns":
            self.topology = region_net.Topology(self.n_relays).create()
            t = self.topology
            self.netem_reason = t.netem_unavailable_reason(self.n_relays - 1)
            self.slow_via_proxy = self.netem_reason is not None
            # The root listens on every address of its own namespace: its loopback for its
            # clients, the root ends of the uplinks for the relays.
            self.root = Node(self.binary, self._dir("root"), "root", ROOT_PORT,
                             listen_host="0.0.0.0", netns=t.root_ns,
                             prefix=t.exec_prefix(t.root_ns), extra_args=common)
        else:
            self.root = Node(self.binary, self._dir("root"), "root", free_port(), extra_args=common)
        self.root.start()
        for k in range(self.n_relays):
            name = "relay%d" % (k + 1)
            if self.mode == "netns":
                t = self.topology
                host, port = t.root_addr(k), ROOT_PORT
                if self.slow_via_proxy and k == self.n_relays - 1:
                    proxy = region_net.FaultProxy(host, port, "127.0.0.1", RELAY_PORT + 1,
                                                  netns=t.relay_ns[k], seed=k).start()
                    self.proxies[k] = proxy
                    host, port = "127.0.0.1", proxy.port
                relay = Node(self.binary, self._dir(name), name, RELAY_PORT, netns=t.relay_ns[k],
                             prefix=t.exec_prefix(t.relay_ns[k]),
                             extra_args=common + ["--upstream", "ws://%s:%d/ws" % (host, port)])
            else:
                proxy = region_net.FaultProxy(self.root.host, self.root.port, seed=k).start()
                self.proxies[k] = proxy
                relay = Node(self.binary, self._dir(name), name, free_port(),
                             extra_args=common + ["--upstream",
                                                  "ws://127.0.0.1:%d/ws" % proxy.port])
            relay.start()
            self.relays.append(relay)

    def _dir(self, name):
        path = os.path.join(self.tmp.name, name)
        os.makedirs(path, exist_ok=True)
        return path

    def stop(self):
        """Stops every node (SIGTERM, then SIGKILL), the proxies and removes the namespaces;
        returns the problems seen (an exit code other than 0 for a node that was running)."""
        problems = []
        for node in self.relays + ([self.root] if self.root else []):
            if node.proc is not None and not node.alive() and not node.killed_by_test:
                problems.append("%s exited by itself with code %s\n%s" % (
                    node.name, node.proc.returncode, node.stderr_tail(20)))
            if node.alive():
                code = node.terminate(STOP_TIMEOUT)
                if code != 0:
                    problems.append("%s: SIGTERM exit code %r\n%s" % (node.name, code,
                                                                     node.stderr_tail(20)))
        for proxy in self.proxies.values():
            proxy.stop()
        if self.topology is not None:
            self.topology.destroy()
        self.tmp.cleanup()
        return problems

    @property
    def nodes(self):
        return [self.root] + self.relays

    # -- faults on relay k's uplink: "cut" (link down), "half_open" (root -> relay dropped),
    # "slow" (delay with jitter); heal() undoes whichever is on --
    def fault(self, k, kind, delay_ms=200, jitter_ms=50):
        if self.mode == "netns":
            t = self.topology
            if kind == "cut":
                t.link_down(k)
            elif kind == "half_open":
                t.drop_incoming(k)
            elif kind == "slow":
                if k in self.proxies:
                    self.proxies[k].set_mode("delay", delay_ms, jitter_ms)
                else:
                    t.netem_delay(k, delay_ms, jitter_ms)
            else:
                raise ValueError(kind)
        else:
            proxy = self.proxies[k]
            if kind == "cut":
                proxy.set_mode("cut")
            elif kind == "half_open":
                proxy.set_mode("blackhole")
            elif kind == "slow":
                proxy.set_mode("delay", delay_ms, jitter_ms)
            else:
                raise ValueError(kind)

    def heal(self, k, kind):
        if self.mode == "netns":
            t = self.topology
            if kind == "cut":
                t.link_up(k)
            elif kind == "half_open":
                t.stop_dropping(k)
            elif kind == "slow":
                if k in self.proxies:
                    self.proxies[k].set_mode("pass")
                else:
                    t.netem_clear(k)
        else:
            self.proxies[k].set_mode("pass")

    # -- clients --
    async def open_ws(self, node):
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(
            None, region_net.connect_in_netns, node.netns, node.host, node.port, RECV_TIMEOUT)
        sock.setblocking(False)
        ws = await websockets.connect(node.ws_url, sock=sock, subprotocols=[SUBPROTOCOL],
                                      max_size=None, open_timeout=RECV_TIMEOUT,
                                      ping_interval=None, close_timeout=2)
        return Client(ws)

    async def login(self, node, user, provisional=False):
        client = await self.open_ws(node)
        frame = {"t": "hello", "token": "dev:%s" % user}
        if provisional:
            frame["provisional"] = True
        await client.send(frame)
        client.welcome = await client.recv_type("welcome")
        client.user = client.welcome.get("user")
        return client

    async def read_log(self, node, conv):
        """A node's sequenced history of conv over the protocol (hist after:0, paged)."""
        client = await self.login(node, "auditor")
        try:
            return await client.hist_all(conv)
        finally:
            await client.close()


def body_of(msg_id):
    return {"text": "hi from " + msg_id}


class Chatter:
    """One person on one node: subscribed to a conversation from seq 0, sending with unique ids,
    reconnecting (and resending everything unacked, same ids) whenever its socket goes. Keeps
    what it saw: the acks (with seq, or without = staged at a relay), the sequenced msgs in
    arrival order, the provisional ones, and anything wrong (a repeat, a nack, a gap)."""

    def __init__(self, cluster, node, user, conv, provisional=False):
        self.cluster = cluster
        self.node = node
        self.user = user
        self.conv = conv
        self.provisional = provisional
        self.name = "%s@%s" % (user, node.name)
        self.sent = []           # ids, in the order sent
        self.sent_at = {}        # id -> monotonic time first sent
        self.acked = {}          # id -> seq (None: staged at a relay)
        self.ack_seq = {}        # id -> the seq of an ack that had one
        self.seen = []           # (seq, id) of sequenced msgs, arrival order
        self.seen_at = {}        # id -> monotonic time its sequenced msg arrived
        self.prov = {}           # id -> monotonic time its provisional msg arrived
        self.problems = []
        self.client = None
        self.connects = 0
        self.last_error = None
        self._stop = False
        self._task = None

    @property
    def last_seq(self):
        return self.seen[-1][0] if self.seen else 0

    async def start(self):
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _connect(self):
        client = await self.cluster.login(self.node, self.user, self.provisional)
        try:
            # conftest's sub_all pages by the last msg's seq; here the last ones may be
            # provisional (no seq), so page by what was seen.
            for _ in range(1000):
                replay, subd = await client.sub(self.conv, after=self.last_seq)
                for frame in replay:
                    self._on_frame(frame)
                if not subd.get("more"):
                    break
        except BaseException:
            await client.close()
            raise
        self.client = client
        self.connects += 1
        for msg_id in self.sent:  # the outbox: everything not acked yet, again, same id
            if msg_id not in self.acked:
                await self._write(msg_id)

    async def _run(self):
        while not self._stop:
            client = self.client
            try:
                while not self._stop:
                    frames, client.inbox = client.inbox, []
                    for frame in frames:
                        self._on_frame(frame)
                    if client.closed:
                        break
                    client._arrived.clear()
                    try:
                        await asyncio.wait_for(client._arrived.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            if self._stop:
                return
            self.client = None
            await client.close()
            # Reconnect until the node is back (a bounded test: the caller's wait-untils end it).
            while not self._stop:
                try:
                    await self._connect()
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # refused, reset, timed out: the node is not back yet
                    self.last_error = repr(err)
                    if self.client is not None:
                        await self.client.close()
                        self.client = None
                    await asyncio.sleep(0.2)

    def _on_frame(self, frame):
        t = frame.get("t")
        if t == "msg" and frame.get("conv") == self.conv:
            if frame.get("prov"):
                if "seq" in frame:
                    self.problems.append("prov msg with a seq: %s" % frame)
                if not self.provisional:
                    self.problems.append("provisional msg to a client that did not opt in: %s"
                                         % frame)
                self.prov.setdefault(frame["id"], time.monotonic())
                return
            seq = frame.get("seq")
            if seq is None:
                self.problems.append("msg without seq and without prov: %s" % frame)
                return
            if seq <= self.last_seq:
                self.problems.append("seq %s (%s) after seq %s: repeated or reordered"
                                     % (seq, frame.get("id"), self.last_seq))
                return
            if seq != self.last_seq + 1:
                self.problems.append("gap: seq %s (%s) after %s" % (seq, frame.get("id"),
                                                                    self.last_seq))
            self.seen.append((seq, frame["id"]))
            self.seen_at[frame["id"]] = time.monotonic()
        elif t == "ack" and frame.get("conv") == self.conv:
            msg_id = frame.get("id")
            seq = frame.get("seq")
            if seq is not None:
                if msg_id in self.ack_seq and self.ack_seq[msg_id] != seq:
                    self.problems.append("%s acked with seq %s, then %s"
                                         % (msg_id, self.ack_seq[msg_id], seq))
                self.ack_seq[msg_id] = seq
            self.acked[msg_id] = seq if seq is not None else self.acked.get(msg_id)
        elif t == "nack" and frame.get("conv") == self.conv:
            if frame.get("retry"):
                # Retryable (rate limited, a full disk): sent again on the next reconnect or
                # by flush(); not a problem in itself.
                return
            self.problems.append("nack: %s" % frame)
        elif t == "err":
            self.problems.append("err: %s" % frame)

    async def _write(self, msg_id):
        client = self.client
        if client is None:
            return
        try:
            await client.send({"t": "send", "conv": self.conv, "id": msg_id,
                               "body": body_of(msg_id), "cts": now_ms()})
        except (Closed, websockets.WebSocketException, OSError):
            pass  # sent again after the reconnect

    async def say(self, msg_id):
        self.sent.append(msg_id)
        self.sent_at[msg_id] = time.monotonic()
        await self._write(msg_id)

    def unacked(self):
        return [i for i in self.sent if i not in self.acked]

    async def resend_unacked(self):
        for msg_id in self.unacked():
            await self._write(msg_id)

    async def stop(self):
        self._stop = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.client is not None:
            frames, self.client.inbox = self.client.inbox, []
            for frame in frames:
                self._on_frame(frame)
            await self.client.close()
            self.client = None
