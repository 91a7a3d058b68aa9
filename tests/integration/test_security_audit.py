# Outside tests of docs/security.md "Audit": auth failures, forbidden attempts, connection-limit
# closes, abusive closes and secret reloads are stored in the LMDB audit sub-database (read with
# `waymark-edge --data DIR --print-audit`, NDJSON, safe while the edge runs) and logged as JSON
# lines with "audit":true; --audit-rate caps what is stored and counts the rest.
import asyncio
import json
import subprocess
import time

from conftest import Client, now_ms
from security_helpers import (accepted, expect_forbidden, expect_unauthorized, flood_until_closed,
                              is_audit_log, jwt_edge, login, mint, new_secret, poll_until, sighup)

def print_audit(binary, data_dir, timeout=20):
    """Run --print-audit; returns the list of records (each line a JSON object)."""
    proc = subprocess.run([binary, "--data", data_dir, "--print-audit"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, "--print-audit exit %s; stderr %s" % (
        proc.returncode, proc.stderr.decode("utf-8", "replace")[-2000:])
    records = []
    for line in out.splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)  # NDJSON: every line one JSON object
        assert isinstance(rec, dict), line
        records.append(rec)
    return records, out


def of(records, event):
    return [r for r in records if r.get("event") == event]


def metric(edge, name):
    status, _, body = edge.http_get("/metrics")
    assert status == 200, status
    for line in body.decode().splitlines():
        if line.startswith(name) and (line[len(name):len(name) + 1] in (" ", "{")):
            return float(line.split()[-1])
    raise AssertionError("metric %s not in /metrics" % name)


async def test_audit_records_and_log_lines(edge_factory, tmp_path):
    started = now_ms()
    secret, added, other = new_secret(), new_secret(), new_secret()
    edge, sf = jwt_edge(edge_factory, tmp_path, [secret],
                        ["--max-conns-per-user", "1", "--rate-limit", "20", "--rate-burst", "20",
                         "--abuse-refusals", "30"])

    # 1. An auth failure (signed with a secret the edge does not have).
    await expect_unauthorized(edge, mint(other, sub="mallory", tnt="acme"))
    # 2. A forbidden attempt.
    bob = await login(edge, mint(secret, sub="bob", tnt="acme", convs=["ops"]))
    try:
        await expect_forbidden(bob, {"t": "sub", "conv": "secret-plans"}, "secret-plans")
        # 3. A connection-limit close (bob already has his one connection).
        extra = await Client.open(edge)
        await extra.send({"t": "hello", "token": mint(secret, sub="bob", tnt="acme",
                                                       convs=["ops"])})
        code, _ = await extra.wait_closed()
        await extra.close()
        assert code == 4008, code
    finally:
        await bob.close()
    # 4. An abusive close.
    flooder = await login(edge, mint(secret, sub="flood", tnt="acme"))
    await flood_until_closed(flooder)
    code, _ = await flooder.wait_closed()
    await flooder.close()
    assert code == 4008, code
    # 5. A good reload, then a bad one.
    sf.write([secret, added])
    sighup(edge)

    polls = []

    async def reloaded():  # a new user per attempt: --max-conns-per-user 1 and async closes
        polls.append(1)
        return await accepted(edge, mint(added, sub="poll-%d" % len(polls)))
    await poll_until(reloaded, timeout=10, what="SIGHUP reload")
    sf.write(["too-short"])
    sighup(edge)

    # Logged as JSON lines with "audit":true (bounded waits: stderr is read by a thread).
    for event in ("auth_failed", "forbidden", "too_many_connections", "abusive",
                  "secret_reload", "secret_reload_failed"):
        await edge.wait_log(lambda l, e=event: is_audit_log(l, e), timeout=10)

    # Stored: --print-audit while the edge runs.
    records, out = print_audit(edge.binary, edge.data_dir)
    assert secret not in out and other not in out and added not in out, \
        "the audit log must not contain secret material"
    for rec in records:
        assert isinstance(rec.get("ts"), int) and started - 5000 <= rec["ts"] <= now_ms() + 5000, \
            "audit ts must be the time in ms since the epoch: %s" % rec
        assert isinstance(rec.get("event"), str), rec

    failed = of(records, "auth_failed")
    assert failed, "no auth_failed record in %s" % records
    assert any("127.0.0.1" in str(r.get("peer", "")) for r in failed), \
        "auth_failed knows the peer: %s" % failed

    forbidden = of(records, "forbidden")
    assert [(r.get("tenant"), r.get("user"), r.get("conv"), r.get("frame")) for r in forbidden] \
        == [("acme", "bob", "secret-plans", "sub")], "forbidden record: %s" % forbidden

    too_many = of(records, "too_many_connections")
    assert [(r.get("tenant"), r.get("user")) for r in too_many] == [("acme", "bob")], too_many

    abusive = of(records, "abusive")
    assert [(r.get("tenant"), r.get("user")) for r in abusive] == [("acme", "flood")], abusive

    assert len(of(records, "secret_reload")) == 1, records
    assert len(of(records, "secret_reload_failed")) == 1, records
    # In order of occurrence (keyed by a counter).
    order = [r["event"] for r in records if r["event"] in ("secret_reload", "secret_reload_failed")]
    assert order == ["secret_reload", "secret_reload_failed"], order


async def test_audit_rate_caps_stored_records(edge_factory, tmp_path):
    secret, other = new_secret(), new_secret()
    edge, _ = jwt_edge(edge_factory, tmp_path, [secret], ["--audit-rate", "5"])
    attempts = 30

    async def fail_once(i):
        await expect_unauthorized(edge, mint(other, sub="m%d" % i))
    began = time.monotonic()
    await asyncio.gather(*(fail_once(i) for i in range(attempts)))
    elapsed = time.monotonic() - began

    async def all_counted():
        stored = len(of(print_audit(edge.binary, edge.data_dir)[0], "auth_failed"))
        return stored + metric(edge, "waymark_audit_suppressed_total") >= attempts
    await poll_until(all_counted, timeout=10, interval=0.3,
                     what="stored + suppressed audit records reaching %d" % attempts)
    stored = len(of(print_audit(edge.binary, edge.data_dir)[0], "auth_failed"))
    suppressed = metric(edge, "waymark_audit_suppressed_total")
    assert stored + suppressed == attempts, (stored, suppressed)
    assert 1 <= stored <= 5 * (elapsed + 2), \
        "--audit-rate 5: %d records stored in %.1f s" % (stored, elapsed)
    assert suppressed >= 1, suppressed
