# A relay's operations, from docs/regions.md and shared/protocol.md alone: the node token
# re-read on SIGHUP, /healthz and /metrics of the link (replication lag included), and a send the
# root refuses for good becoming a dead letter and a failed row. Real binaries on loopback, JWT
# auth (the root verifies the relay's node token; both edges verify users with one secret).
import asyncio
import json
import os
import signal
import time

import jwt

from conftest import Client
from security_helpers import mint, new_secret, write_secrets

TENANT = "acme"
WAIT = 20.0  # bounds for things that happen in well under a second here


def node_token(secret, node="relay-a", tenants=(TENANT,)):
    return jwt.encode({"sub": node, "node": True, "tnts": list(tenants),
                       "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def healthz(edge):
    status, _, body = edge.http_get("/healthz")
    assert status == 200, body
    return json.loads(body)


def metric(edge, name):
    """The value of one sample line `name value` of /metrics (name with its labels), or None."""
    _, _, body = edge.http_get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def until(what, check, timeout=WAIT):
    """Polls check() (bounded) until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        await asyncio.sleep(0.05)


def link_of(edge):
    return healthz(edge)["upstream"]["links"].get(TENANT, {})


class Tree:
    """A JWT root and one relay below it; users sign in on either with one secret."""

    def __init__(self, edge_factory, tmp_path, relay_token=None, root_args=(), relay_args=()):
        self.secret = new_secret()
        self.secrets = str(tmp_path / "secrets")
        write_secrets(self.secrets, [self.secret])
        self.token_file = str(tmp_path / "node.token")
        write_file(self.token_file, relay_token or node_token(self.secret))
        self.root = edge_factory(dev=False, extra_args=[
            "--auth-secret-file", self.secrets, "--node", "root", *root_args])
        self.relay = edge_factory(dev=False, extra_args=[
            "--auth-secret-file", self.secrets, "--node", "relay-a",
            "--upstream", "ws://127.0.0.1:%d/ws" % self.root.port,
            "--upstream-token-file", self.token_file, *relay_args])

    async def user(self, edge, name, **hello):
        client = await Client.open(edge)
        await client.hello(mint(self.secret, sub=name, tnt=TENANT))
        return client


async def test_sighup_rereads_the_node_token_and_the_refused_link_comes_back(edge_factory, tmp_path):
    # The relay starts with a node token the root cannot verify (signed with another secret).
    tree = Tree(edge_factory, tmp_path, relay_token=node_token(new_secret()))
    bob = await tree.user(tree.root, "bob")
    await bob.send({"t": "sub", "conv": "ops"})
    await bob.recv_type("subd", conv="ops")
    alice = await tree.user(tree.relay, "alice")
    await alice.send({"t": "send", "conv": "ops", "id": "held-1", "body": {"text": "hi"}})
    ack = await alice.recv_type("ack", id="held-1")
    assert "seq" not in ack, ack  # stored at the relay, to be relayed

    link = await until("the root refusing the node token", lambda: link_of(tree.relay).get(
        "state") == "stopped" and link_of(tree.relay))
    assert "unauthorized" in link.get("reason", ""), link
    assert healthz(tree.relay)["upstream"]["outbox"] == 1
    await tree.relay.wait_log(lambda l: l.get("event") == "upstream_down")

    # An unreadable token file: logged, the old token stays, nothing else changes.
    write_file(tree.token_file, "")
    os.kill(tree.relay.pid, signal.SIGHUP)
    bad = await tree.relay.wait_log(lambda l: l.get("event") == "upstream_token_reload"
                                    and "error" in l)
    assert "cannot read a token" in bad["error"], bad

    # The right token and SIGHUP: the link comes back and the held send is sequenced once.
    write_file(tree.token_file, node_token(tree.secret))
    os.kill(tree.relay.pid, signal.SIGHUP)
    await tree.relay.wait_log(lambda l: l.get("event") == "upstream_token_reload"
                              and "error" not in l)
    await until("the link online", lambda: link_of(tree.relay).get("state") == "online")
    msg = await bob.recv_type("msg", id="held-1", timeout=WAIT)
    assert msg["seq"] == 1 and msg["from"] == "alice", msg
    await until("an empty outbox", lambda: healthz(tree.relay)["upstream"]["outbox"] == 0)
    await asyncio.sleep(0.3)
    assert bob.take(lambda f: f.get("t") == "msg") == []  # once
    for c in (alice, bob):
        await c.ws.close()


async def test_link_health_and_replication_lag_reach_zero_once_the_log_holds_the_roots(
        edge_factory, tmp_path):
    tree = Tree(edge_factory, tmp_path)
    bob = await tree.user(tree.root, "bob")
    count = 40
    for i in range(count):
        await bob.send({"t": "send", "conv": "ops", "id": "r%d" % i, "body": {"n": i}})
    for i in range(count):
        await bob.recv_type("ack", id="r%d" % i)

    # A user at the relay follows "ops" from the start: the relay pulls the root's 40.
    carol = await tree.user(tree.relay, "carol")
    await carol.send({"t": "sub", "conv": "ops", "after": 0})
    seqs = []
    while len(seqs) < count:
        frame = await carol.recv_type("msg", conv="ops", timeout=WAIT)
        seqs.append(frame["seq"])
    assert seqs == list(range(1, count + 1)), seqs

    label = '{tenant="%s"}' % TENANT
    await until("lag 0", lambda: link_of(tree.relay).get("replication_lag") == 0)
    link = link_of(tree.relay)
    assert link["state"] == "online" and link["reconnects"] == 0, link
    assert metric(tree.relay, "waymark_upstream_up" + label) == 1
    assert metric(tree.relay, "waymark_upstream_replication_lag" + label) == 0
    assert metric(tree.relay, "waymark_relay_replicated_total") == count
    assert metric(tree.relay, "waymark_upstream_outbox") == 0
    # The root is no relay: no upstream object, no link metrics.
    assert "upstream" not in healthz(tree.root)
    assert metric(tree.root, "waymark_upstream_up" + label) is None
    for c in (bob, carol):
        await c.ws.close()


async def test_a_send_the_root_refuses_for_good_is_a_dead_letter_and_a_failed_row(
        edge_factory, tmp_path):
    # The root takes frames of at most 1 KiB; the relay 64 KiB: a 4 KiB send is stored at the
    # relay and can never go upstream.
    tree = Tree(edge_factory, tmp_path, root_args=["--max-frame", "1024"])
    alice = await tree.user(tree.relay, "alice")
    await alice.send({"t": "sub", "conv": "ops"})
    await alice.recv_type("subd", conv="ops")
    await alice.send({"t": "send", "conv": "ops", "id": "big-1", "body": {"text": "x" * 4096}})
    ack = await alice.recv_type("ack", id="big-1")
    assert "seq" not in ack, ack
    nack = await alice.recv_type("nack", id="big-1", timeout=WAIT)
    assert nack["retry"] is False and nack["msg"].startswith("upstream: "), nack

    # A small one after it still goes through: one dead letter does not stop the link.
    await alice.send({"t": "send", "conv": "ops", "id": "small-1", "body": {"text": "ok"}})
    msg = await alice.recv_match(lambda f: f.get("t") == "msg" and f.get("id") == "small-1"
                                 and "seq" in f, timeout=WAIT)
    assert msg["seq"] == 1, msg
    assert metric(tree.relay, "waymark_relay_dead_letters_total") == 1
    assert healthz(tree.relay)["upstream"]["outbox"] == 0
    await alice.ws.close()
