#!/usr/bin/python3
"""Waymark's benchmark run: the machine's limits, Waymark, Redis 7 Streams and NATS JetStream,
all on this machine over loopback, then the table in docs/benchmarks.md rewritten; and the relay
scenario (a root and two relays: ingest through a relay against direct, convergence after a
partition), whose table has its own markers in the doc's "Relay" section.

Run by `./waymark.sh bench` (which builds the binaries first); knobs scale every count up.
Every server is started here on 127.0.0.1 with a fresh data directory and stopped here.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The edge is started and stopped the way the integration tests do it (one launcher).
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from edge_launcher import Edge  # noqa: E402

DOC = os.path.join(REPO, "docs", "benchmarks.md")
BEGIN = "<!-- bench:begin (rewritten by ./waymark.sh bench) -->"
END = "<!-- bench:end -->"
RELAY_BEGIN = "<!-- bench-relay:begin (rewritten by ./waymark.sh bench --scenarios relay) -->"
RELAY_END = "<!-- bench-relay:end -->"
INGEST_WINDOWS = (1, 16)  # sends in flight per connection, besides --window
MAIN_SCENARIOS = {"ingest", "latency", "fanout", "idle", "storm", "replay", "sdk"}

REDIS_DURABILITY = "appendonly yes, appendfsync always (fsync before each reply)"
NATS_DURABILITY = ("file storage, publish ack; nats-server 2.9 has no per-message fsync "
                   "(written to the OS on each message, fsynced every 2 min)")
WAYMARK_DURABILITY = "LMDB, ack after the group commit's fsync"


def log(text):
    print("==> " + text, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """A peer's server process on loopback (the echo server, Redis, NATS): started with a fresh
    directory, stopped with SIGTERM. The edge is an edge_launcher.Edge."""

    def __init__(self, name, args, port=None, listening_json=False, cwd=None):
        self.name = name
        self.args = args
        self.port = port
        self.listening_json = listening_json
        self.cwd = cwd
        self.proc = None
        self.lines = []

    def start(self, timeout=30):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=self.cwd)
        ready = threading.Event()

        def drain():
            for raw in self.proc.stdout:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                self.lines.append(text)
                if self.listening_json and self.port is None:
                    try:
                        obj = json.loads(text)
                    except ValueError:
                        continue
                    if isinstance(obj, dict) and obj.get("event") == "listening":
                        self.port = int(obj["port"])
                        ready.set()
        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s:\n%s" % (self.name, self.proc.returncode,
                                                                "\n".join(self.lines[-20:])))
            if self.listening_json:
                if ready.wait(0.1):
                    return self
            else:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        time.sleep(0.2)
                        return self
                except OSError:
                    time.sleep(0.1)
        self.stop()
        raise RuntimeError("%s did not start:\n%s" % (self.name, "\n".join(self.lines[-20:])))

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        build = os.path.abspath(args.build_dir)
        self.edge_bin = os.path.join(build, "edge", "waymark-edge")
        self.bench_bin = os.path.join(build, "tests", "bench", "waymark-bench")
        self.echo_bin = os.path.join(build, "tests", "bench", "waymark-bench-echo")
        self.probe_bin = os.path.join(build, "tests", "bench", "waymark-fsync-probe")
        for path in (self.edge_bin, self.bench_bin, self.echo_bin, self.probe_bin):
            if not os.access(path, os.X_OK):
                sys.exit("run_bench: %s is not built (./waymark.sh bench builds it)" % path)
        self.tmp = tempfile.mkdtemp(prefix="waymark-bench-", dir=args.tmp_dir)
        self.results = []  # every summary line, with the run's settings
        self.edge_flags = self.bench_edge_flags()
        self.run_counter = 0

    def bench_edge_flags(self):
        """Limits that would throttle a load test, turned off when this edge has them."""
        text = subprocess.run([self.edge_bin, "--help"], capture_output=True, text=True).stdout
        flags = []
        if "--rate-limit" in text:
            flags += ["--rate-limit", "0"]
        if "--max-conns-per-user" in text:
            flags += ["--max-conns-per-user", "100000"]
        if "--max-subs" in text:
            flags += ["--max-subs", "0"]
        return flags

    def fresh_dir(self, name):
        path = tempfile.mkdtemp(prefix=name + "-", dir=self.tmp)
        return path

    # -- servers --
    def start_edge(self, name="edge", extra=(), port=None):
        # At info the edge logs one line per stored message; the benchmark runs it at warn
        # (which also hides the "listening" line, so the port is chosen here).
        return Edge(self.edge_bin, self.fresh_dir(name), self.edge_flags + list(extra),
                    port=port or free_port(), log_level=self.args.edge_log_level,
                    start_timeout=30).start()

    def start_relay(self, node, upstream_port, extra=()):
        """A relay (--upstream) of the root on upstream_port, with its dev node token."""
        token = os.path.join(self.fresh_dir(node + "-token"), "token")
        with open(token, "w") as f:
            f.write("dev-node:%s\n" % node)
        return self.start_edge(node, ["--node", node, "--upstream", "ws://127.0.0.1:%d/ws" % upstream_port,
                                      "--upstream-token-file", token] + list(extra))

    def start_echo(self):
        return Server("waymark-bench-echo", [self.echo_bin, "--listen", "127.0.0.1:0"],
                      listening_json=True).start()

    def start_redis(self):
        port = free_port()
        return Server("redis-server", [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", self.fresh_dir("redis"),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "no",
            "--maxclients", "20000", "--daemonize", "no", "--logfile", ""], port=port).start()

    def start_nats(self):
        port = free_port()
        store = self.fresh_dir("nats")
        config = os.path.join(store, "nats.conf")
        with open(config, "w") as f:
            f.write("listen: 127.0.0.1:%d\njetstream { store_dir: \"%s\" }\nmax_payload: 1MB\n"
                    % (port, store))
        return Server("nats-server", ["nats-server", "-c", config], port=port).start()

    # -- the harness --
    def run(self, scenario, target, server, extra, label):
        self.run_counter += 1
        cmd = [self.bench_bin, scenario, "--target", target, "--port", str(server.port),
               "--server-pid", str(server.pid), "--json",
               "--run-id", "r%d%d" % (int(time.time()), self.run_counter)] + [str(x) for x in extra]
        log("%s: %s" % (label, " ".join(cmd[1:])))
        started = time.monotonic()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True,
                              timeout=self.args.scenario_timeout)
        line = None
        for text in proc.stdout.splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                continue
        if line is None:
            line = {"scenario": scenario, "target": target, "ok": False,
                    "problems": ["the harness printed no summary (exit %d)" % proc.returncode]}
        line["label"] = label
        line["wall_s"] = round(time.monotonic() - started, 1)
        self.results.append(line)
        status = "ok" if line.get("ok") else "FAIL: " + "; ".join(line.get("problems", []))
        log("%s: %s" % (label, status))
        return line

    def relay(self, phase, mode, repeat):
        """One relay run with fresh edges. phase "ingest": a root and relay-a linked straight
        to it (the same load at both in one harness run: the ratio pays for no proxy).
        phase "partition": a root and relay-b linked through the harness's fault proxy on
        proxy_port. The phases get their own edges so a relay still draining a backlog does not
        load the other measurement."""
        a = self.args
        hb = ["--heartbeat-ms", str(a.relay_heartbeat_ms)] if a.relay_heartbeat_ms else []
        proxy_port = free_port()
        servers = []
        names = ["root"]
        try:
            root = self.start_edge("root", ["--node", "root"] + hb)
            servers.append(root)
            node = "relay-a" if phase == "ingest" else "relay-b"
            names.append(node)
            relay = self.start_relay(node, root.port if phase == "ingest" else proxy_port, hb)
            servers.append(relay)
            extra = ["--root-port", root.port, "--root-pid", root.pid, "--relay-phases", phase,
                     "--timeout", a.relay_timeout]
            if phase == "ingest":
                extra += ["--conns", a.conns, "--window", a.window, "--payload", a.payload,
                          "--duration", a.duration, "--warmup", a.warmup]
            else:
                extra += ["--proxy-port", proxy_port, "--partition-mode", mode,
                          "--partition-s", a.partition_s, "--partition-messages", a.partition_messages,
                          "--window", a.window, "--payload", a.payload]
            line = self.run("relay", "waymark", relay, extra, "relay-" + phase)
            for name, server in zip(names, servers):
                if not server.alive():
                    line["ok"] = False
                    line.setdefault("problems", []).append("%s exited with %s" % (name, server.proc.returncode))
                if not line.get("ok"):
                    log("%s (%s) log tail:\n%s" % (name, "running" if server.alive() else "exited %s"
                                                    % server.proc.returncode, server.stderr_tail(15)))
            line["mode"] = mode
            line["repeat"] = repeat
            line["heartbeat_ms"] = a.relay_heartbeat_ms or 15000
            line["relay_timeout"] = a.relay_timeout
            line["loadavg"] = round(os.getloadavg()[0], 2)
            return line
        finally:
            for server in reversed(servers):
                server.stop()

    def sdk_cold_start(self):
        """The browser SDK's cold start in Chromium (tests/bench/sdk_cold_start.mjs): fresh
        profiles, the edge serving the page and the SDK; skipped when the SDK is not built."""
        sdk = os.path.abspath(self.args.sdk_dir or os.path.join(os.path.dirname(
            os.path.abspath(self.args.build_dir)), "wasm", "wasm", "dist"))
        line = {"scenario": "sdk_cold_start", "target": "waymark", "ok": False, "label": "sdk"}
        if not os.path.exists(os.path.join(sdk, "waymark_core.wasm")):
            line["problems"] = ["no browser SDK at %s (build it: ./waymark.sh bench builds it)" % sdk]
        else:
            log("sdk: node tests/bench/sdk_cold_start.mjs %d (SDK %s)" % (self.args.sdk_runs, sdk))
            env = dict(os.environ, WAYMARK_EDGE=self.edge_bin, WAYMARK_SDK_DIR=sdk)
            proc = subprocess.run(["node", os.path.join(REPO, "tests", "bench", "sdk_cold_start.mjs"),
                                   str(self.args.sdk_runs)], env=env, stdout=subprocess.PIPE, text=True,
                                  timeout=self.args.scenario_timeout)
            for text in proc.stdout.splitlines():
                try:
                    line = dict(json.loads(text), label="sdk")
                except ValueError:
                    continue
        log("sdk: %s" % ("ok" if line.get("ok") else "FAIL: " + "; ".join(line.get("problems", []))))
        self.results.append(line)

    @staticmethod
    def disk_per_message(edge, line):
        """Bytes the edge's data dir holds on disk (allocated blocks) per acked message."""
        total = 0
        for root, _, files in os.walk(edge.data_dir):
            for name in files:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
        acked = line.get("acked") or 0
        line["disk_bytes"] = total
        line["disk_bytes_per_msg"] = round(total / acked, 1) if acked else None
        return line

    def with_server(self, start, fn):
        server = start()
        try:
            return fn(server)
        finally:
            server.stop()

    # -- the run --
    def machine(self):
        probe = subprocess.run([self.probe_bin, self.fresh_dir("probe"), str(self.args.fsync_count)],
                               capture_output=True, text=True, check=True)
        fsync = json.loads(probe.stdout.strip().splitlines()[-1])
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for text in f:
                    if text.startswith("model name"):
                        model = text.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
                "loadavg_at_start": os.getloadavg()[0], "fdatasync": fsync,
                "filesystem": self.filesystem()}

    def filesystem(self):
        out = subprocess.run(["df", "-T", self.tmp], capture_output=True, text=True).stdout.splitlines()
        return out[-1].split()[1] if len(out) > 1 else "?"

    def all(self):
        a = self.args
        want = set(a.scenarios.split(","))
        peers = [] if a.no_peers else [("redis", self.start_redis), ("nats", self.start_nats)]
        ingest = ["--conns", a.conns, "--window", a.window, "--payload", a.payload,
                  "--duration", a.duration, "--warmup", a.warmup]
        if "ingest" in want:
            self.with_server(self.start_edge, lambda s: self.disk_per_message(
                s, self.run("ingest", "waymark", s, ingest, "ingest")))
            for name, start in peers:
                self.with_server(start, lambda s: self.run("ingest", name, s, ingest, "ingest"))
            self.with_server(self.start_echo, lambda s: self.run("ingest", "echo", s, ingest, "ingest"))
            # The same connections with 1 and with 16 sends in flight each, every system alike.
            for window in INGEST_WINDOWS:
                load = ingest[:]
                load[load.index("--window") + 1] = window
                label = "ingest-w%d" % window
                self.with_server(self.start_edge, lambda s: self.run("ingest", "waymark", s, load, label))
                for name, start in peers:
                    self.with_server(start, lambda s: self.run("ingest", name, s, load, label))
                self.with_server(self.start_echo, lambda s: self.run("ingest", "echo", s, load, label))
        if "latency" in want:
            paced = ingest + ["--rate", a.latency_rate]
            self.with_server(self.start_edge, lambda s: self.run("ingest", "waymark", s, paced, "latency"))
            for name, start in peers:
                self.with_server(start, lambda s: self.run("ingest", name, s, paced, "latency"))
            self.with_server(self.start_echo, lambda s: self.run("ingest", "echo", s, paced, "latency"))
        if "fanout" in want:
            fan = ["--subs", a.subs, "--publishers", a.publishers, "--fanout-rate", a.fanout_rate,
                   "--payload", a.payload, "--duration", a.duration, "--warmup", a.warmup]
            self.with_server(self.start_edge, lambda s: self.run("fanout", "waymark", s, fan, "fanout"))
            for name, start in peers:
                self.with_server(start, lambda s: self.run("fanout", name, s, fan, "fanout"))
        if "idle" in want:
            idle = ["--clients", a.idle_clients, "--settle", 2, "--timeout", a.connect_timeout]
            self.with_server(self.start_edge, lambda s: self.run("idle", "waymark", s, idle, "idle"))
            self.with_server(self.start_echo, lambda s: self.run("idle", "echo", s, idle, "idle"))
        if "storm" in want:
            storm = ["--clients", a.storm_clients, "--convs", a.storm_convs, "--messages", a.storm_messages,
                     "--storm-rate", a.storm_rate, "--timeout", a.connect_timeout]
            self.with_server(self.start_edge, lambda s: self.run("storm", "waymark", s, storm, "storm"))
        if "replay" in want:
            replay = ["--replay-messages", a.replay_messages, "--conns", a.conns, "--window", a.window,
                      "--payload", a.payload, "--timeout", 600]
            self.with_server(self.start_edge, lambda s: self.run("replay", "waymark", s, replay, "replay"))
        if "sdk" in want:
            self.sdk_cold_start()
        if "relay" in want:
            phases = a.relay_phases.split(",")
            for repeat in range(1, a.relay_repeats + 1):
                if "ingest" in phases:
                    self.relay("ingest", "-", repeat)
                if "partition" in phases:
                    for mode in a.relay_modes.split(","):
                        self.relay("partition", mode, repeat)

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- the table ---------------------------------------------------------------------------------

def find(results, label, target):
    for line in results:
        if line.get("label") == label and line.get("target") == target:
            return line
    return None


def fmt(value, unit=""):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        text = "{:,.0f}".format(value)
    elif abs(value) >= 10:
        text = "{:.1f}".format(value)
    else:
        text = "{:.2f}".format(value)
    return text + unit


def ratio(a, b):
    if a is None or b in (None, 0):
        return "—"
    return "{:.2f}×".format(a / b)


def value(line, key):
    if line is None or not line.get("ok", False) and key not in line:
        return None
    return line.get(key)


def marked(line, text):
    """A cell; a run that failed a correctness check is flagged, never shown as a clean number."""
    if line is None:
        return "—"
    return text if line.get("ok") else text + " (FAIL)"


def table(results, machine, args):
    rows = []
    fs = machine["fdatasync"]

    def row(scenario, metric, label, key, unit, target_text, met, limit=None, limit_text=None,
            lower_is_better=False, peers=True):
        w = find(results, label, "waymark")
        r = find(results, label, "redis") if peers else None
        n = find(results, label, "nats") if peers else None
        wv, rv, nv = value(w, key), value(r, key), value(n, key)
        if lower_is_better:
            rr, rn = ratio(rv, wv), ratio(nv, wv)
            rl = ratio(limit, wv) if limit is not None else "—"
        else:
            rr, rn = ratio(wv, rv), ratio(wv, nv)
            rl = ratio(wv, limit) if limit is not None else "—"
        ok = met(wv) if wv is not None and w is not None and w.get("ok") else False
        rows.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            scenario, metric, marked(w, fmt(wv, unit)), marked(r, fmt(rv, unit)) if peers else "—",
            marked(n, fmt(nv, unit)) if peers else "—", rr if peers else "—", rn if peers else "—",
            limit_text or "—", rl, target_text,
            "—" if target_text == "—" else "yes" if ok else "**no**"))

    echo_ingest = value(find(results, "ingest", "echo"), "msgs_per_s")
    redis_ingest = value(find(results, "ingest", "redis"), "msgs_per_s")
    row("ingest: %s conns × %s in flight, %s B" % (args.conns, args.window, args.payload),
        "acked msgs/s", "ingest", "msgs_per_s", "",
        "≥ 100,000 and > Redis",
        lambda v: v >= 100000 and (redis_ingest is None or v > redis_ingest),
        limit=echo_ingest, limit_text="lws echo %s/s" % fmt(echo_ingest))
    row("ingest: same load", "send→ack p99", "ingest", "ack_p99_ms", " ms", "—", lambda v: True,
        limit=fs["p99_ms"], limit_text="fdatasync p99 %s ms" % fmt(fs["p99_ms"]), lower_is_better=True)
    row("ingest: same load", "bytes on disk per msg", "ingest", "disk_bytes_per_msg", " B", "≤ 300 B",
        lambda v: v <= 300, lower_is_better=True, peers=False)
    for window in INGEST_WINDOWS:
        label = "ingest-w%d" % window
        echo = value(find(results, label, "echo"), "msgs_per_s")
        redis = value(find(results, label, "redis"), "msgs_per_s")
        nats = value(find(results, label, "nats"), "msgs_per_s")
        if window == 1:
            target, met = "≥ 100,000 and > Redis", (
                lambda v, redis=redis: v >= 100000 and (redis is None or v > redis))
        else:
            target, met = "> NATS", lambda v, nats=nats: nats is None or v > nats
        row("ingest: %s conns × %d in flight, %s B" % (args.conns, window, args.payload),
            "acked msgs/s", label, "msgs_per_s", "", target, met,
            limit=echo, limit_text="lws echo %s/s" % fmt(echo))
        row("ingest: same load", "send→ack p50", label, "ack_p50_ms", " ms", "—", lambda v: True,
            lower_is_better=True)
    row("latency: %s msgs/s paced" % fmt(float(args.latency_rate)), "send→ack p99", "latency",
        "ack_p99_ms", " ms", "≤ 5 ms", lambda v: v <= 5,
        limit=fs["p99_ms"], limit_text="fdatasync p99 %s ms" % fmt(fs["p99_ms"]), lower_is_better=True)
    row("fanout: %s subscribers, %s msgs/s" % (args.subs, fmt(float(args.fanout_rate))),
        "deliveries/s", "fanout", "deliveries_per_s", "", "≥ 500,000", lambda v: v >= 500000)
    row("fanout: same load", "send→deliver p99", "fanout", "deliver_p99_ms", " ms", "—", lambda v: True,
        lower_is_better=True)
    echo_idle = value(find(results, "idle", "echo"), "server_rss_per_conn_kib")
    row("idle: %s connections subscribed" % args.idle_clients, "server RSS per conn", "idle",
        "server_rss_per_conn_kib", " KiB", "≤ 8 KiB", lambda v: v <= 8, limit=echo_idle,
        limit_text="lws echo %s KiB" % fmt(echo_idle), lower_is_better=True, peers=False)
    row("storm: %s clients, sockets dropped, %s msgs" % (args.storm_clients, args.storm_messages),
        "drop → all caught up", "storm", "caught_up_s", " s", "≤ 2 s, no gap/repeat",
        lambda v: 0 <= v <= 2, lower_is_better=True, peers=False)
    row("replay: one client %s behind" % fmt(float(args.replay_messages)), "msgs/s replayed", "replay",
        "msgs_per_s", "", "—", lambda v: True, peers=False)
    row("browser SDK cold start in Chromium, fresh profile (median of %d)" % args.sdk_runs,
        "navigation → `online`", "sdk", "online_ms", " ms", "—", lambda v: True, lower_is_better=True,
        peers=False)

    head = ("| scenario | metric | Waymark | Redis 7 Streams | NATS JetStream | Waymark vs Redis | "
            "Waymark vs NATS | limit | Waymark vs limit | target | met |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|")
    return head + "\n" + "\n".join(rows)


def details(results):
    out = ["| run | target | ok | numbers |", "|---|---|---|---|"]
    skip = {"scenario", "target", "ok", "problems", "label"}
    for line in results:
        numbers = ", ".join("%s=%s" % (k, fmt(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                            for k, v in line.items() if k not in skip)
        problems = "; ".join(line.get("problems", []))
        out.append("| %s | %s | %s | %s |" % (line.get("label"), line.get("target"),
                                             "yes" if line.get("ok") else "**no**: " + problems, numbers))
    return "\n".join(out)


def render(results, machine, args, command):
    fs = machine["fdatasync"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([
        BEGIN,
        "Measured %s with `%s` (%.0f s wall). Machine: %d cores (%s), Linux %s, %s; "
        "fdatasync of 4 KiB in place: p50 %.2f ms, p99 %.2f ms (%d samples). Load average when the "
        "run started: %.2f (above ~0.5 means other work shared the cores and the numbers are low)."
        % (when, command, machine["wall_s"], machine["cores"], machine["cpu"] or "?", machine["kernel"],
           machine["filesystem"], fs["p50_ms"], fs["p99_ms"], fs["count"], machine["loadavg_at_start"]),
        "",
        "Everything ran on this one machine over loopback, the load generator included. Durability "
        "behind each ack: **Waymark** %s; **Redis 7** %s; **NATS JetStream** %s. Ratios above 1× "
        "favour Waymark (for latency and memory rows the peer's or the limit's value is divided by "
        "Waymark's)." % (WAYMARK_DURABILITY, REDIS_DURABILITY, NATS_DURABILITY),
        "",
        table(results, machine, args),
        "",
        "<details><summary>Every run's numbers (server/bench CPU is % of one core during the "
        "measured window)</summary>",
        "",
        details(results),
        "",
        "</details>",
        END,
    ])


def seconds(value):
    if value is None:
        return "—"
    if value < 0:
        return "never"
    return "%.2f s" % value


def relay_tables(results):
    """The ingest runs and the partition runs, one row each; a failed check says so in its row."""
    ingest = ["| run | direct msgs/s (ack p99) | via relay msgs/s (ack p99) | relay / direct | "
              "relay CPU | root CPU while relayed | outbox at the end | root sequenced all, after ingest | ok |",
              "|---|---|---|---|---|---|---|---|---|"]
    partition = ["| run | partition | root hb | acked at the relay during it | heal → relay reconnects | "
                 "heal → first sequenced at relay | heal → converged (all at relay's sub) | "
                 "heal → all stored at root | ok |",
                 "|---|---|---|---|---|---|---|---|---|"]
    for line in results:
        ok = "yes" if line.get("ok") else "**no**: " + "; ".join(line.get("problems", []))
        if line.get("label") == "relay-ingest":
            ratio_value = line.get("relay_vs_direct")
            after = seconds(line.get("sequenced_after_ingest_s"))
            if line.get("outbox_left"):
                after = "not within %s s (%s left)" % (fmt(line.get("relay_timeout")), fmt(line.get("outbox_left")))
            ingest.append("| %s | %s (%s) | %s (%s) | %s | %s | %s | %s | %s | %s |" % (
                line.get("repeat", "?"), fmt(line.get("direct_msgs_per_s")), fmt(line.get("direct_ack_p99_ms"), " ms"),
                fmt(line.get("relay_msgs_per_s")), fmt(line.get("relay_ack_p99_ms"), " ms"),
                "—" if ratio_value is None else "{:.0%}".format(ratio_value),
                fmt(line.get("relay_server_cpu_pct"), "%"), fmt(line.get("relay_root_cpu_pct"), "%"),
                fmt(line.get("relay_outbox_at_end")), after, ok))
        elif line.get("label") == "relay-partition":
            partition.append("| %s | %s %s s, %s msgs | %s ms | %s in %s | %s | %s | %s | %s | %s |" % (
                line.get("repeat", "?"), line.get("partition_mode", "?"), fmt(line.get("partition_s")),
                fmt(line.get("partition_messages")), fmt(line.get("heartbeat_ms")),
                fmt(line.get("partition_acked")), seconds(line.get("partition_acked_s")),
                "none (link kept)" if line.get("heal_to_reconnect_s", 0) < 0 and line.get("partition_mode") == "stall"
                else seconds(line.get("heal_to_reconnect_s")), seconds(line.get("heal_to_first_sequenced_s")),
                seconds(line.get("converged_s")), seconds(line.get("root_stored_s")), ok))
    return "\n".join(ingest) + "\n\n" + "\n".join(partition)


def render_relay(results, machine, args, command):
    fs = machine["fdatasync"]
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    relay_results = [r for r in results if r.get("label", "").startswith("relay")]
    return "\n".join([
        RELAY_BEGIN,
        "Measured %s with `%s` (%.0f s wall). Machine: %d cores (%s), Linux %s, %s; fdatasync p50 "
        "%.2f ms, p99 %.2f ms. Load average when the run started: %.2f; at the end of each run: %s. "
        "Ingest: %s connections × %s in flight, %s B, %s s measured after %s s, first straight at "
        "the root, then the same load at relay-a (acks without seq: staged), in one harness run. "
        "Partition: relay-b behind the harness's fault proxy; %s. CPU is %% of one core."
        % (when, command, machine["wall_s"], machine["cores"], machine["cpu"] or "?", machine["kernel"],
           machine["filesystem"], fs["p50_ms"], fs["p99_ms"], machine["loadavg_at_start"],
           ", ".join("%.2f" % r.get("loadavg", 0) for r in relay_results) or "—",
           args.conns, args.window, args.payload, fmt(args.duration), fmt(args.warmup),
           "cut: the proxy resets the link and every reconnect until the heal; stall: it holds the "
           "link and new connections and passes nothing"),
        "",
        relay_tables(results),
        "",
        "<details><summary>Every relay run's numbers</summary>",
        "",
        details(relay_results),
        "",
        "</details>",
        RELAY_END,
    ])


def replace_block(text, begin, end, block):
    if begin in text and end in text:
        start = text.index(begin)
        stop = text.index(end) + len(end)
        return text[:start] + block + text[stop:]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def rewrite_doc(block, begin=BEGIN, end=END):
    with open(DOC) as f:
        text = f.read()
    text = replace_block(text, begin, end, block)
    with open(DOC, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build-dir", default=os.path.join(REPO, "build", "release"))
    p.add_argument("--tmp-dir", default=None, help="where servers keep their data (default: $TMPDIR)")
    p.add_argument("--scenarios", default="ingest,latency,fanout,idle,storm,replay,sdk,relay")
    p.add_argument("--no-peers", action="store_true", help="skip Redis and NATS")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    p.add_argument("--results", default=None, help="also write every summary as JSON here")
    p.add_argument("--duration", type=float, default=10, help="measured seconds per throughput run")
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--payload", type=int, default=128)
    p.add_argument("--latency-rate", type=int, default=10000)
    p.add_argument("--sdk-dir", default=None, help="the browser SDK (default: build/wasm/wasm/dist "
                   "next to --build-dir)")
    p.add_argument("--sdk-runs", type=int, default=5)
    p.add_argument("--subs", type=int, default=1000)
    p.add_argument("--publishers", type=int, default=2)
    p.add_argument("--fanout-rate", type=int, default=500)
    # The targets' sizes: 10,000 for the storm; 19,000 rather than 20,000 idle because this
    # container caps open files at 20,000 per process (docs/benchmarks.md).
    p.add_argument("--idle-clients", type=int, default=19000)
    p.add_argument("--storm-clients", type=int, default=10000)
    p.add_argument("--storm-convs", type=int, default=100)
    p.add_argument("--storm-messages", type=int, default=5000)
    p.add_argument("--storm-rate", type=int, default=5000)
    p.add_argument("--replay-messages", type=int, default=1000000)
    p.add_argument("--relay-modes", default="cut",
                   help="relay: partition kinds, each one run: cut (reset, reconnects refused), stall (held)")
    p.add_argument("--relay-repeats", type=int, default=1, help="relay: runs of each mode")
    p.add_argument("--relay-phases", default="ingest,partition")
    p.add_argument("--partition-s", type=float, default=10)
    p.add_argument("--partition-messages", type=int, default=1000)
    p.add_argument("--relay-timeout", type=float, default=180,
                   help="relay: seconds a phase may take (the drain after ingest, the convergence)")
    p.add_argument("--relay-heartbeat-ms", type=int, default=0,
                   help="relay: --heartbeat-ms of the root and relays (0: the edge's default, 15000)")
    p.add_argument("--fsync-count", type=int, default=1000)
    p.add_argument("--edge-log-level", default="warn", help="the edge's --log-level (info logs every message)")
    p.add_argument("--scenario-timeout", type=float, default=900)
    p.add_argument("--connect-timeout", type=float, default=120,
                   help="idle/storm: seconds a phase may take before the run counts as failed")
    args = p.parse_args()

    limit = raise_fd_limit(4 * max(args.idle_clients, args.storm_clients, args.subs) + 4096)
    log("open files limit %d" % limit)
    started = time.monotonic()
    bench = Bench(args)
    try:
        machine = bench.machine()
        log("machine: %d cores, Linux %s, fdatasync p50 %.2f ms p99 %.2f ms, load %.2f"
            % (machine["cores"], machine["kernel"], machine["fdatasync"]["p50_ms"],
               machine["fdatasync"]["p99_ms"], machine["loadavg_at_start"]))
        bench.all()
    finally:
        bench.cleanup()
    machine["wall_s"] = time.monotonic() - started
    if args.results:
        with open(args.results, "w") as f:
            json.dump({"machine": machine, "results": bench.results}, f, indent=1)
    command = os.environ.get("WAYMARK_BENCH_COMMAND", "./waymark.sh bench")
    ran = set(args.scenarios.split(","))
    if ran & MAIN_SCENARIOS:
        block = render([r for r in bench.results if not r.get("label", "").startswith("relay")],
                       machine, args, command)
        print(block)
        if not args.no_doc:
            rewrite_doc(block)
            log("rewrote the table in %s" % DOC)
    if "relay" in ran:
        block = render_relay(bench.results, machine, args, command)
        print(block)
        if not args.no_doc:
            rewrite_doc(block, RELAY_BEGIN, RELAY_END)
            log("rewrote the relay table in %s" % DOC)
    log("done in %.0f s" % machine["wall_s"])
    failed = [r for r in bench.results if not r.get("ok")]
    for r in failed:
        log("FAILED %s %s: %s" % (r.get("label"), r.get("target"), "; ".join(r.get("problems", []))))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
