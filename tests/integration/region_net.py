"""Network faults for the regions test (test_regions.py): Linux network namespaces joined by veth
pairs, cut by link down, made half-open by an iptables DROP, slowed by tc netem; and a TCP fault
proxy for where namespaces (or netem) are not available. Standard library only.

Everything here is made by the test and removed by it: namespaces are named wmrg<pid>-..., so a
run killed before its cleanup is recognised (its pid is gone) and swept by the next run."""
import asyncio
import ctypes
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time

NETNS_DIR = "/var/run/netns"
CLONE_NEWNET = 0x40000000
PREFIX = "wmrg"

_libc = ctypes.CDLL(None, use_errno=True)


def _run(*cmd, check=True):
    proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=20)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), proc.returncode,
                                                    proc.stderr.decode(errors="replace").strip()))
    return proc


def enter_netns(name):
    """Move the calling thread (only it) into network namespace `name`: every socket it creates
    from now on belongs to that namespace. Call it only on a thread made for the purpose."""
    with open(os.path.join(NETNS_DIR, name)) as handle:
        if _libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (name, os.strerror(err)))


def connect_in_netns(name, host, port, timeout=10.0):
    """A TCP socket connected to host:port from inside namespace `name` (None: this one). The
    connect runs on a throwaway thread that joins the namespace, so the caller's stays put."""
    if name is None:
        return socket.create_connection((host, port), timeout=timeout)
    out = {}

    def work():
        try:
            enter_netns(name)
            out["sock"] = socket.create_connection((host, port), timeout=timeout)
        except BaseException as err:  # handed to the caller
            out["err"] = err

    thread = threading.Thread(target=work, name="netns-connect", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    if "err" in out:
        raise out["err"]
    if "sock" not in out:
        raise TimeoutError("connect to %s:%s in netns %s did not return" % (host, port, name))
    return out["sock"]


def netns_unavailable_reason():
    """None when this process can make namespaces and veth pairs; otherwise why not."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return "no `%s` command" % tool
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    try:
        _run("ip", "netns", "add", probe)
        try:
            _run("ip", "-n", probe, "link", "set", "lo", "up")
            _run("ip", "-n", probe, "link", "add", "wmprobe0", "type", "veth", "peer", "name",
                 "wmprobe1")
            # The thread switch the clients use must work too.
            reason = _probe_setns(probe)
            if reason is not None:
                return reason
        finally:
            _run("ip", "netns", "del", probe, check=False)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        return "cannot make a network namespace: %s" % err
    return None


def _probe_setns(name):
    out = {}

    def work():
        try:
            enter_netns(name)
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.close()
        except BaseException as err:
            out["err"] = err

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(10)
    if "err" in out:
        return "setns into a namespace failed: %s" % out["err"]
    return None


def sweep_stale_namespaces():
    """Delete namespaces left by an earlier run of this test whose process is gone."""
    try:
        names = os.listdir(NETNS_DIR)
    except OSError:
        return []
    swept = []
    for name in names:
        match = re.match(r"^%s(\d+)-" % PREFIX, name)
        if not match:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        _run("ip", "netns", "del", name, check=False)
        swept.append(name)
    return swept


class Topology:
    """A root namespace and one namespace per relay; relay k's uplink is a veth pair
    10.213.k.1/30 (root side) <-> 10.213.k.2/30 (relay side). Nothing is added to the host's own
    namespace: the test's clients join a namespace per socket (connect_in_netns)."""

    def __init__(self, relays):
        tag = os.getpid()
        self.root_ns = "%s%d-root" % (PREFIX, tag)
        self.relay_ns = ["%s%d-r%d" % (PREFIX, tag, k) for k in range(1, relays + 1)]
        short = tag % 100000
        # Interface names: at most 15 characters.
        self.root_dev = ["wr%du%da" % (short, k) for k in range(1, relays + 1)]
        self.relay_dev = ["wr%du%db" % (short, k) for k in range(1, relays + 1)]
        self.made = []
        self.dropping = set()

    def root_addr(self, k):
        return "10.213.%d.1" % (k + 1)

    def relay_addr(self, k):
        return "10.213.%d.2" % (k + 1)

    def create(self):
        try:
            for ns in [self.root_ns] + self.relay_ns:
                _run("ip", "netns", "add", ns)
                self.made.append(ns)
                _run("ip", "-n", ns, "link", "set", "lo", "up")
            for k, ns in enumerate(self.relay_ns):
                _run("ip", "-n", self.root_ns, "link", "add", self.root_dev[k], "type", "veth",
                     "peer", "name", self.relay_dev[k], "netns", ns)
                _run("ip", "-n", self.root_ns, "addr", "add", self.root_addr(k) + "/30", "dev",
                     self.root_dev[k])
                _run("ip", "-n", ns, "addr", "add", self.relay_addr(k) + "/30", "dev",
                     self.relay_dev[k])
                _run("ip", "-n", self.root_ns, "link", "set", self.root_dev[k], "up")
                _run("ip", "-n", ns, "link", "set", self.relay_dev[k], "up")
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self):
        """Deleting a namespace deletes its end of each veth, and with it the pair."""
        for ns in reversed(self.made):
            _run("ip", "netns", "del", ns, check=False)
        self.made = []

    def exec_prefix(self, ns):
        return ["ip", "netns", "exec", ns]

    # -- faults, all applied on the relay's side of its uplink --
    def link_down(self, k):
        _run("ip", "-n", self.relay_ns[k], "link", "set", self.relay_dev[k], "down")

    def link_up(self, k):
        _run("ip", "-n", self.relay_ns[k], "link", "set", self.relay_dev[k], "up")

    def drop_incoming(self, k):
        """Half-open: the relay's packets still reach the root, nothing from the root reaches
        the relay, and nobody is told (no RST, no ICMP)."""
        _run("ip", "netns", "exec", self.relay_ns[k], "iptables", "-w", "-A", "INPUT", "-i",
             self.relay_dev[k], "-j", "DROP")
        self.dropping.add(k)

    def stop_dropping(self, k):
        _run("ip", "netns", "exec", self.relay_ns[k], "iptables", "-w", "-D", "INPUT", "-i",
             self.relay_dev[k], "-j", "DROP")
        self.dropping.discard(k)

    def netem_unavailable_reason(self, k=0):
        proc = _run("ip", "netns", "exec", self.relay_ns[k], "tc", "qdisc", "add", "dev",
                    self.relay_dev[k], "root", "netem", "delay", "1ms", check=False)
        if proc.returncode != 0:
            return "tc netem: %s" % proc.stderr.decode(errors="replace").strip()
        _run("ip", "netns", "exec", self.relay_ns[k], "tc", "qdisc", "del", "dev",
             self.relay_dev[k], "root", check=False)
        return None

    def netem_delay(self, k, delay_ms, jitter_ms):
        """Both directions of the uplink delayed (each side's egress)."""
        for ns, dev in ((self.relay_ns[k], self.relay_dev[k]), (self.root_ns, self.root_dev[k])):
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem",
                 "delay", "%dms" % delay_ms, "%dms" % jitter_ms, "distribution", "normal")

    def netem_clear(self, k):
        for ns, dev in ((self.relay_ns[k], self.relay_dev[k]), (self.root_ns, self.root_dev[k])):
            _run("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root", check=False)


class FaultProxy:
    """A TCP proxy between a relay and its upstream, run on its own thread and event loop
    (optionally inside a network namespace, which every socket of that thread then belongs
    to). Modes: pass; cut (every connection closed at once, new ones accepted and closed);
    blackhole (connections stay open and nothing gets through either way, nor does a close: a
    half-open link; what was sent is held and arrives after the heal, as TCP's retransmissions
    would bring it); delay (each chunk held delay +- jitter ms, order kept)."""

    def __init__(self, upstream_host, upstream_port, listen_host="127.0.0.1", listen_port=0,
                 netns=None, seed=11):
        self.upstream = (upstream_host, upstream_port)
        self.listen = (listen_host, listen_port)
        self.netns = netns
        self.mode = "pass"
        self.delay_ms = 0
        self.jitter_ms = 0
        self.rng = random.Random(seed)
        self.port = None
        self.loop = None
        self.conns = set()
        self._ready = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._main, name="fault-proxy", daemon=True)
        self._stop = None

    def start(self):
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        if self.port is None:
            raise RuntimeError("fault proxy did not start")
        return self

    def _main(self):
        try:
            if self.netns is not None:
                enter_netns(self.netns)
            self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(self._serve())
        except BaseException as err:
            self._error = err
            self._ready.set()

    async def _serve(self):
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.listen[0], self.listen[1])
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for conn in list(self.conns):
            conn.abort()

    def stop(self):
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def set_mode(self, mode, delay_ms=0, jitter_ms=0):
        assert mode in ("pass", "cut", "blackhole", "delay"), mode
        done = threading.Event()

        def apply():
            self.mode = mode
            self.delay_ms = delay_ms
            self.jitter_ms = jitter_ms
            if mode == "cut":
                for conn in list(self.conns):
                    conn.abort()
            done.set()

        self.loop.call_soon_threadsafe(apply)
        done.wait(5)

    async def _handle(self, reader, writer):
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.upstream[0], self.upstream[1]), 5)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        conn = _ProxiedConn(self, writer, up_writer)
        self.conns.add(conn)
        try:
            await asyncio.gather(conn.pipe(reader, up_writer), conn.pipe(up_reader, writer))
        finally:
            conn.abort()
            self.conns.discard(conn)


class _ProxiedConn:
    def __init__(self, proxy, down_writer, up_writer):
        self.proxy = proxy
        self.writers = (down_writer, up_writer)

    def abort(self):
        for w in self.writers:
            w.transport.abort()

    async def pipe(self, reader, writer):
        """Copy one direction; chunks wait in a queue with nondecreasing release times, so a delay
        with jitter slows the stream without reordering it (TCP would not either)."""
        queue = asyncio.Queue()
        last_release = [0.0]

        async def release():
            while True:
                at, data = await queue.get()
                if data is None:
                    return
                pause = at - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                # A black hole holds what was sent, as a network that loses every packet does:
                # TCP sends it again, so after the heal it arrives, late. A cut loses it.
                while self.proxy.mode == "blackhole":
                    await asyncio.sleep(0.05)
                if self.proxy.mode == "cut":
                    continue
                writer.write(data)
                try:
                    await writer.drain()
                except (ConnectionError, OSError):
                    return

        releaser = asyncio.get_running_loop().create_task(release())
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except (ConnectionError, OSError):
                    break
                if not data:
                    break
                mode = self.proxy.mode
                if mode == "cut":
                    continue
                at = time.monotonic()
                if mode == "delay":
                    jitter = self.proxy.rng.uniform(-self.proxy.jitter_ms, self.proxy.jitter_ms)
                    at += max(0.0, self.proxy.delay_ms + jitter) / 1000.0
                at = max(at, last_release[0])
                last_release[0] = at
                queue.put_nowait((at, data))
        finally:
            queue.put_nowait((0.0, None))
            try:
                await releaser
            except (ConnectionError, OSError):
                pass
            # A black hole tells nobody: the far end closing is not passed on until it heals.
            while self.proxy.mode == "blackhole":
                await asyncio.sleep(0.05)
            self.abort()
