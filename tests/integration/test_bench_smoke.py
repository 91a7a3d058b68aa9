# A small smoke run of the load harness (tests/bench/waymark-bench) against a real edge: tiny
# counts, correctness only (everything acked, no gap, no repeat). Speed lives in
# docs/benchmarks.md, never in these assertions. Rates stay far below the edge's default
# per-connection rate limit, so the edge runs with its default flags.
import json
import os
import subprocess

import pytest

HARNESS_TIMEOUT = 120  # stops a wedged run; not a timing claim


@pytest.fixture(scope="module")
def bench_binary(bench_dir):
    path = os.path.join(bench_dir, "waymark-bench")
    if not os.access(path, os.X_OK):
        pytest.skip("waymark-bench is not built (%s)" % path)
    return path


def run_bench(bench_binary, edge, scenario, *args):
    proc = subprocess.run(
        [bench_binary, scenario, "--port", str(edge.port), "--server-pid", str(edge.proc.pid),
         "--json", "--timeout", "60"] + [str(a) for a in args],
        capture_output=True, text=True, timeout=HARNESS_TIMEOUT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, "no summary (exit %d); stderr:\n%s\nedge:\n%s" % (
        proc.returncode, proc.stderr[-3000:], edge.stderr_tail())
    summary = json.loads(lines[-1])
    assert summary["ok"], "problems: %s\nsummary: %s\nstderr:\n%s" % (
        summary["problems"], summary, proc.stderr[-3000:])
    assert proc.returncode == 0, summary
    return summary


def test_ingest_every_send_acked(bench_binary, edge):
    s = run_bench(bench_binary, edge, "ingest", "--conns", 4, "--window", 4, "--rate", 200,
                  "--duration", 1, "--warmup", 0.2)
    assert s["sent"] > 0 and s["acked"] == s["sent"] and s["nacked"] == 0
    assert s["ack_samples"] > 0


def test_fanout_every_subscriber_gets_every_message_once(bench_binary, edge):
    s = run_bench(bench_binary, edge, "fanout", "--subs", 20, "--publishers", 1,
                  "--fanout-rate", 100, "--duration", 1, "--warmup", 0.2)
    assert s["published"] > 0 and s["gaps"] == 0 and s["repeats"] == 0


def test_idle_connections_subscribe(bench_binary, edge):
    s = run_bench(bench_binary, edge, "idle", "--clients", 50, "--convs", 5, "--settle", 0.2)
    assert s["ready"] == 50 and s["server_rss_after_mib"] > 0


def test_storm_reconnects_without_gap_or_repeat(bench_binary, edge):
    # Every socket is dropped a quarter of the way through; each client resumes from its cursor.
    s = run_bench(bench_binary, edge, "storm", "--clients", 60, "--convs", 5, "--messages", 200,
                  "--storm-rate", 400)
    assert s["caught_up_s"] >= 0 and s["gaps"] == 0 and s["repeats"] == 0
    assert s["delivered"] >= 200 * 60 // 5


def test_replay_pages_through_more(bench_binary, edge):
    s = run_bench(bench_binary, edge, "replay", "--replay-messages", 1500, "--replay-limit", 500,
                  "--conns", 3, "--window", 4, "--rate", 600)
    assert s["sub_rounds"] >= 3 and s["gaps"] == 0 and s["repeats"] == 0


def test_relay_ingest_ratio_and_partition_converge(bench_binary, edge_factory, tmp_path):
    # A root, relay-a linked straight to it (ingest: the same load at the root, then at the
    # relay, whose acks carry no seq) and relay-b linked through the harness's fault proxy on
    # proxy_port (cut for 1 s while 50 sends are acked and shown provisional at relay-b; after
    # the heal every one arrives sequenced at relay-b's subscriber and at the root, in one order).
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        proxy_port = s.getsockname()[1]

    def relay(node, upstream_port):
        token = tmp_path / (node + ".token")
        token.write_text("dev-node:%s\n" % node)
        return edge_factory(extra_args=["--node", node, "--upstream", "ws://127.0.0.1:%d/ws" % upstream_port,
                                        "--upstream-token-file", str(token)])

    root = edge_factory(extra_args=["--node", "root"])
    relay_a = relay("relay-a", root.port)
    relay_b = relay("relay-b", proxy_port)
    s = run_bench(bench_binary, relay_a, "relay", "--root-port", root.port, "--root-pid", root.proc.pid,
                  "--proxy-port", proxy_port, "--partition-port", relay_b.port, "--partition-mode", "cut",
                  "--partition-s", 1, "--partition-messages", 50, "--conns", 2, "--window", 4,
                  "--rate", 200, "--duration", 0.5, "--warmup", 0.2)
    print("relay smoke: direct %.0f/s, via relay %.0f/s, root sequenced all %.2f s after ingest; "
          "heal -> reconnect %.2f s, converged %.2f s" % (
              s["direct_msgs_per_s"], s["relay_msgs_per_s"], s["sequenced_after_ingest_s"],
              s["heal_to_reconnect_s"], s["converged_s"]))
    assert s["direct_acked"] > 0 and s["direct_nacked"] == 0
    assert s["relay_acked"] > 0 and s["relay_unsequenced_acks"] == s["relay_acked"]
    assert s["sequenced_after_ingest_s"] >= 0
    assert s["partition_acked"] == 50 and s["partition_sequenced_acks"] == 0
    assert s["provisional_delivered"] == 50
    assert s["converged_s"] >= 0 and s["root_stored_s"] >= 0
    assert s["relay_sub_sequenced"] == s["root_sub_sequenced"] == 70  # 20 before the cut + 50
    assert s["same_order"] == "yes" and s["gaps"] == 0 and s["repeats"] == 0
    assert s["proxy_reset"] >= 1  # the cut did reset the relay's link
