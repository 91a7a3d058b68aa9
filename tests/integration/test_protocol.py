# Outside tests of /work/shared/protocol.md against the real waymark-edge: every section of the page,
# one behaviour per test, through a client that shares no code with Waymark.
import asyncio
import os
import re
import signal
import tempfile

from conftest import Client, STOP_TIMEOUT, is_traceparent, make_traceparent, now_ms

TRACE_RE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def seqs(msgs):
    return [m["seq"] for m in msgs]


def ids(msgs):
    return [m["id"] for m in msgs]


async def fill(client, conv, count, prefix="m"):
    """Store `count` messages in conv (ids prefix0..); returns their acks in send order."""
    msg_ids = ["%s%d" % (prefix, i) for i in range(count)]
    replies = await client.send_many(conv, msg_ids, window=64)
    for msg_id in msg_ids:
        assert replies[msg_id]["t"] == "ack", "send %s/%s refused: %s" % (conv, msg_id,
                                                                         replies[msg_id])
    return [replies[msg_id] for msg_id in msg_ids]


async def assert_no_msgs_until_barrier(client, conv, why):
    await client.barrier()
    stray = client.take_msgs(conv)
    assert not stray, "%s, but got %s" % (why, stray)


# ---------------------------------------------------------------------------------------------
# Transport

async def test_ws_path_and_subprotocol(edge):
    client = await Client.open(edge)
    assert client.ws.subprotocol == "waymark.v1", \
        "protocol.md Transport: /ws speaks subprotocol waymark.v1; server chose %r" % (
            client.ws.subprotocol,)
    await client.hello("dev:alice")
    await client.close()


def test_http_healthz_metrics_and_web_root(edge_factory):
    with tempfile.TemporaryDirectory(prefix="waymark-web-") as web:
        marker = "waymark-integration-web-root-%d" % os.getpid()
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<!doctype html><html><head><title>t</title></head><body>%s</body></html>\n"
                    % marker)
        edge = edge_factory(extra_args=["--web", web])

        status, _, _ = edge.http_get("/healthz")
        assert status == 200, "protocol.md Transport: /healthz must answer 200, got %s" % status

        status, ctype, body = edge.http_get("/metrics")
        assert status == 200, "/metrics answered %s" % status
        assert ctype.startswith("text/plain"), \
            "Prometheus text format is served as text/plain; got %r" % ctype
        text = body.decode("utf-8")
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples, "/metrics has no samples"
        sample_re = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfINFaN]+( -?\d+)?$')
        bad = [line for line in samples if not sample_re.match(line)]
        assert not bad, "lines not in Prometheus text format: %s" % bad[:5]
        waymark = [line for line in samples if line.startswith("waymark_")]
        assert waymark, "no waymark_ metrics in /metrics:\n%s" % text[:2000]
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                parts = line.split()
                assert len(parts) == 4 and parts[3] in (
                    "counter", "gauge", "histogram", "summary", "untyped"), line

        status, ctype, body = edge.http_get("/")
        assert status == 200, "protocol.md Transport: / serves the web app; got %s" % status
        assert ctype.startswith("text/html"), "/ content type %r" % ctype
        assert marker.encode() in body, "/ did not serve --web DIR/index.html: %r" % body[:200]


# ---------------------------------------------------------------------------------------------
# Session

async def test_hello_welcome_fields(edge_factory):
    edge = edge_factory(extra_args=["--node", "it-node-7", "--heartbeat-ms", "7000",
                                    "--max-frame", "32768"])
    client = await Client.open(edge)
    before = now_ms()
    welcome = await client.hello("dev:alice", device="tab-7f3a")
    after = now_ms()
    assert welcome["t"] == "welcome"
    assert isinstance(welcome.get("session"), str) and welcome["session"], welcome
    assert welcome.get("node") == "it-node-7", "welcome.node should be --node: %s" % welcome
    assert welcome.get("user") == "alice", "dev:alice must log in as alice: %s" % welcome
    assert isinstance(welcome.get("ts"), int), "times are integer ms: %s" % welcome
    # Same machine, same clock: the edge's ts lies within our before/after window (loosely).
    assert before - 60000 <= welcome["ts"] <= after + 60000, welcome
    assert welcome.get("hb") == 7000, "welcome.hb should be --heartbeat-ms: %s" % welcome
    assert welcome.get("max_frame") == 32768, "welcome.max_frame should be --max-frame: %s" % welcome
    other = await Client.login(edge, "alice")
    assert other.welcome["session"] != welcome["session"], "two connections share a session id"
    await client.close()
    await other.close()


async def test_hello_must_be_first(edge):
    for first in ({"t": "ping", "ts": 1}, {"t": "sub", "conv": "ops"},
                  {"t": "send", "conv": "ops", "id": "x", "body": 1}):
        client = await Client.open(edge)
        await client.send(first)
        err = await client.recv_any()
        assert err.get("t") == "err" and err.get("code") == "unauthorized", \
            "protocol.md Session: %s before hello must get err unauthorized, got %s" % (first, err)
        code, _ = await client.wait_closed()
        assert code == 4001, "hello-not-first must close with 4001, closed with %s" % code
    # Nothing was stored by the refused send.
    reader = await Client.login(edge, "alice")
    page = await reader.hist("ops")
    assert page["msgs"] == [], page
    await reader.close()


async def test_bad_token_is_unauthorized(edge):
    for token in ("nope", "", "dev:", "dev:has space", "Bearer abc.def.ghi"):
        client = await Client.open(edge)
        await client.send({"t": "hello", "token": token})
        err = await client.recv_any()
        assert err.get("t") == "err" and err.get("code") == "unauthorized", \
            "protocol.md Session: bad token %r must get err unauthorized, got %s" % (token, err)
        code, _ = await client.wait_closed()
        assert code == 4001, "bad token %r: close code %s, want 4001" % (token, code)


async def test_ping_pong(edge):
    client = await Client.login(edge, "alice")
    await client.send({"t": "ping", "ts": 123456, "rid": "p1"})
    pong = await client.recv_type("pong", rid="p1")
    assert isinstance(pong.get("ts"), int), pong
    await client.close()


async def test_hello_subs_same_as_sub_frames(edge):
    writer = await Client.login(edge, "writer")
    await fill(writer, "hs.x", 5, "x")
    await fill(writer, "hs.y", 3, "y")

    via_hello = await Client.open(edge)
    await via_hello.hello("dev:carol", subs=[{"conv": "hs.x", "after": 2}, {"conv": "hs.y"}])
    subd_x = await via_hello.recv_type("subd", conv="hs.x")
    subd_y = await via_hello.recv_type("subd", conv="hs.y")
    replay_hello_x = via_hello.take_msgs("hs.x")
    replay_hello_y = via_hello.take_msgs("hs.y")

    via_frames = await Client.login(edge, "carol")
    replay_x, frame_subd_x = await via_frames.sub("hs.x", after=2)
    replay_y, frame_subd_y = await via_frames.sub("hs.y")

    assert seqs(replay_hello_x) == [3, 4, 5] == seqs(replay_x), (replay_hello_x, replay_x)
    assert replay_hello_y == [] == replay_y, "no after: no replay (%s, %s)" % (replay_hello_y,
                                                                             replay_y)
    for a, b in ((subd_x, frame_subd_x), (subd_y, frame_subd_y)):
        for key in ("conv", "head", "read", "more"):
            assert a.get(key) == b.get(key), \
                "protocol.md: subs in hello mean the same as sub frames; %s differs: %s vs %s" % (
                    key, a, b)
        assert "carol" in a["present"] and "carol" in b["present"], (a, b)

    # Both are live afterwards.
    await writer.send_msg("hs.y", "y-live")
    assert (await via_hello.recv_type("msg", conv="hs.y"))["id"] == "y-live"
    assert (await via_frames.recv_type("msg", conv="hs.y"))["id"] == "y-live"
    for c in (writer, via_hello, via_frames):
        await c.close()


# ---------------------------------------------------------------------------------------------
# Subscribing, resuming, history

async def test_sub_with_after_replays_then_subd_then_live(edge):
    writer = await Client.login(edge, "alice")
    acks = await fill(writer, "ops", 5)
    await writer.send({"t": "rcpt", "conv": "ops", "seq": 2, "kind": "read"})
    await writer.barrier()

    reader = await Client.login(edge, "bob")
    await reader.send({"t": "sub", "conv": "ops", "after": 3, "rid": "s1"})
    subd = await reader.recv_type("subd", conv="ops")
    replay = reader.take_msgs("ops")
    assert seqs(replay) == [4, 5], "replay of everything after the cursor 3: %s" % replay
    assert ids(replay) == [acks[3]["id"], acks[4]["id"]]
    assert subd.get("head") == 5, subd
    assert subd.get("read") == 0, "bob has read nothing: %s" % subd
    assert subd.get("more") is False, subd
    # present lists users with a connection subscribed: bob is, alice (who only sent) is not.
    assert subd.get("present") == ["bob"], subd
    # Replayed msgs carry the full msg shape.
    for m in replay:
        for key in ("conv", "seq", "id", "from", "ts", "trace", "body"):
            assert key in m, "msg lacks %s: %s" % (key, m)
        assert m["from"] == "alice"

    await writer.send_msg("ops", "live-1")
    live = await reader.recv_type("msg", conv="ops")
    assert live["seq"] == 6 and live["id"] == "live-1", live
    await writer.close()
    await reader.close()


async def test_sub_default_after_is_head_no_replay(edge):
    writer = await Client.login(edge, "alice")
    await fill(writer, "ops", 3)
    reader = await Client.login(edge, "bob")
    replay, subd = await reader.sub("ops")
    assert replay == [], "protocol.md: after defaults to head (no replay); got %s" % replay
    assert subd["head"] == 3 and subd["more"] is False, subd
    await writer.send_msg("ops", "next")
    live = await reader.recv_type("msg", conv="ops")
    assert live["seq"] == 4, live
    await writer.close()
    await reader.close()


async def test_replay_cap_default_500_max_1000_and_resub(edge):
    writer = await Client.login(edge, "alice")
    await fill(writer, "big", 1003)
    reader = await Client.login(edge, "bob")

    replay, subd = await reader.sub("big", after=0)
    assert seqs(replay) == list(range(1, 501)), \
        "protocol.md: replay capped at limit (default 500); got %d msgs %s..%s" % (
            len(replay), replay[:1], replay[-1:])
    assert subd["more"] is True and subd["head"] == 1003, subd

    replay, subd = await reader.sub("big", after=500)
    assert seqs(replay) == list(range(501, 1001)), len(replay)
    assert subd["more"] is True, subd
    replay, subd = await reader.sub("big", after=1000)
    assert seqs(replay) == [1001, 1002, 1003] and subd["more"] is False, (seqs(replay), subd)

    replay, subd = await reader.sub("big", after=10, limit=2)
    assert seqs(replay) == [11, 12] and subd["more"] is True, (seqs(replay), subd)

    # Over the max: either refused as invalid (naming limit) or capped at 1000 with more:true.
    await reader.send({"t": "sub", "conv": "big", "after": 0, "limit": 5000, "rid": "over"})
    reply = await reader.recv_match(
        lambda f: f.get("rid") == "over" or (f.get("t") == "subd" and f.get("conv") == "big"))
    if reply["t"] == "err":
        assert reply["code"] == "invalid" and "limit" in reply["msg"], reply
    else:
        replay = reader.take_msgs("big")
        assert len(replay) <= 1000, "protocol.md: replay limit max 1000; got %d" % len(replay)
        assert seqs(replay) == list(range(1, len(replay) + 1)), "replay not dense from 1"
        assert reply["more"] is True, reply
    await writer.close()
    await reader.close()


async def test_replay_live_boundary_no_gap_no_repeat(edge):
    """A subscriber catching up through several more:true pages while a sender keeps sending sees
    every seq exactly once, in order, on its one connection."""
    writer = await Client.login(edge, "alice")
    await fill(writer, "bnd", 120, "pre")
    reader = await Client.login(edge, "bob")

    async def keep_sending():
        await fill(writer, "bnd", 80, "during")

    sender = asyncio.ensure_future(keep_sending())
    cursor = 0
    for _ in range(100):
        await reader.send({"t": "sub", "conv": "bnd", "after": cursor, "limit": 50})
        subd = await reader.recv_type("subd", conv="bnd")
        arrived = [f for f in reader.inbox if f.get("t") == "msg" and f.get("conv") == "bnd"]
        if arrived:
            cursor = arrived[-1]["seq"]
        if not subd["more"]:
            break
    await sender
    # Everything up to the head (200) must now arrive live; msgs stay in arrival order.
    got = seqs(reader.take_msgs("bnd"))
    while (got[-1] if got else 0) < 200 and len(got) < 400:
        got.append((await reader.recv_type("msg", conv="bnd"))["seq"])
    assert got == list(range(1, 201)), \
        "protocol.md Subscribing: msg frames in seq order, no gap, no repeat across the " \
        "replay/live boundary; got %s" % got
    await writer.close()
    await reader.close()


async def test_unsub_stops_delivery(edge):
    writer = await Client.login(edge, "alice")
    await writer.sub("ops")
    quitter = await Client.login(edge, "bob")
    await quitter.sub("ops")
    await writer.send_msg("ops", "before")
    assert (await quitter.recv_type("msg", conv="ops"))["id"] == "before"

    await quitter.send({"t": "unsub", "conv": "ops"})
    await quitter.barrier()  # the unsub has been processed once its later ping is answered
    ack = await writer.send_msg("ops", "after-unsub")
    assert ack["t"] == "ack"
    # The writer, still subscribed, gets it: proof it was fanned out.
    assert (await writer.recv_type("msg", conv="ops", id="after-unsub"))["seq"] == ack["seq"]
    await assert_no_msgs_until_barrier(quitter, "ops", "protocol.md: unsub stops delivery")

    # An unsubscribed sender does not get its own message back either.
    await quitter.send_msg("ops", "from-unsubscribed")
    await assert_no_msgs_until_barrier(quitter, "ops", "unsubscribed sender got a msg")
    await writer.close()
    await quitter.close()


async def test_hist_before_after_default(edge):
    client = await Client.login(edge, "alice")
    await fill(client, "h", 12)

    page = await client.hist("h", before=5, limit=3)
    assert page["conv"] == "h" and seqs(page["msgs"]) == [2, 3, 4] and page["more"] is True, \
        "protocol.md hist: messages just below before, ascending; got %s more=%s" % (
            seqs(page["msgs"]), page.get("more"))
    page = await client.hist("h", before=3, limit=5)
    assert seqs(page["msgs"]) == [1, 2] and page["more"] is False, page
    page = await client.hist("h", after=5, limit=3)
    assert seqs(page["msgs"]) == [6, 7, 8] and page["more"] is True, \
        "hist after: just above after, ascending; got %s" % seqs(page["msgs"])
    page = await client.hist("h", after=10, limit=5)
    assert seqs(page["msgs"]) == [11, 12] and page["more"] is False, page
    page = await client.hist("h", limit=3)
    assert seqs(page["msgs"]) == [10, 11, 12] and page["more"] is True, \
        "hist with neither before nor after: the latest page (assumed); got %s" % seqs(
            page["msgs"])
    page = await client.hist("h")
    assert seqs(page["msgs"]) == list(range(1, 13)) and page["more"] is False, page
    page = await client.hist("never-written")
    assert page["msgs"] == [] and page["more"] is False, page
    full = await client.hist_all("h", page=5)
    assert seqs(full) == list(range(1, 13)) and ids(full) == ["m%d" % i for i in range(12)]
    await client.close()


# ---------------------------------------------------------------------------------------------
# Sending

async def test_send_ack_then_msg_to_all_subscribers(edge):
    alice = await Client.login(edge, "alice")
    bob = await Client.login(edge, "bob")
    await alice.sub("ops")
    await bob.sub("ops")
    trace = make_traceparent(1)
    sent_at = now_ms()
    await alice.send({"t": "send", "conv": "ops", "id": "01JD-a", "body": {"text": "db failover"},
                      "cts": sent_at, "trace": trace, "rid": "s1"})
    ack = await alice.recv_type("ack", id="01JD-a")
    assert ack["conv"] == "ops" and ack["seq"] == 1, ack
    assert isinstance(ack.get("ts"), int), ack
    assert ack.get("trace") == trace, "protocol.md: ack carries the client's trace: %s" % ack
    assert ack.get("rid") == "s1", ack
    assert not ack.get("dup"), ack
    # The sender's msg must come after its ack.
    mine = await alice.recv_type("msg", conv="ops")
    theirs = await bob.recv_type("msg", conv="ops")
    for m in (mine, theirs):
        assert m["seq"] == 1 and m["id"] == "01JD-a" and m["from"] == "alice", m
        assert m["body"] == {"text": "db failover"} and m["cts"] == sent_at, m
        assert m["trace"] == trace and m["ts"] == ack["ts"], (m, ack)
    logged = await edge.wait_log(lambda l: l.get("event") == "stored" and l.get("id") == "01JD-a")
    assert logged.get("trace") == trace, "protocol.md: trace carried into logs: %s" % logged
    # body is any JSON value.
    for i, body in enumerate([0, "s", [1, {"a": []}], True, {"deep": {"x": [None]}}]):
        await alice.send({"t": "send", "conv": "ops", "id": "raw-%d" % i, "body": body})
        assert (await alice.recv_reply("ops", "raw-%d" % i))["t"] == "ack"
        got = await bob.recv_type("msg", conv="ops", id="raw-%d" % i)
        assert got["body"] == body, (body, got)
    await alice.send({"t": "send", "conv": "ops", "id": "raw-null", "body": None})
    reply = await alice.recv_reply("ops", "raw-null")
    got = await bob.recv_type("msg", conv="ops", id="raw-null")
    assert reply["t"] == "ack" and got["body"] is None, (reply, got)
    await alice.close()
    await bob.close()


async def test_ack_is_seen_before_own_msg(edge):
    alice = await Client.login(edge, "alice")
    await alice.sub("ops")
    await alice.send_msg("ops", "order-1", wait=False)
    first = await alice.recv_match(lambda f: f.get("t") in ("ack", "msg"))
    assert first["t"] == "ack", "protocol.md Sending: ack then msg; got %s first" % first
    await alice.recv_type("msg", conv="ops", id="order-1")
    await alice.close()


async def test_duplicate_id_acked_with_original_seq_not_redelivered(edge):
    alice = await Client.login(edge, "alice")
    bob = await Client.login(edge, "bob")
    await bob.sub("ops")
    first = await alice.send_msg("ops", "dup-1", body={"v": 1})
    await alice.send_msg("ops", "other")
    again = await alice.send_msg("ops", "dup-1", body={"v": 1}, rid="again")
    assert again["t"] == "ack" and again.get("dup") is True, \
        "protocol.md: repeated (conv,id) acked with dup:true; got %s" % again
    assert again["seq"] == first["seq"] == 1, (first, again)
    assert again.get("rid") == "again", again
    # Even with a different body it is the same message.
    changed = await alice.send_msg("ops", "dup-1", body={"v": 2})
    assert changed.get("dup") is True and changed["seq"] == 1, changed
    # Same id in another conversation is a different message.
    elsewhere = await alice.send_msg("ops2", "dup-1")
    assert elsewhere["t"] == "ack" and not elsewhere.get("dup") and elsewhere["seq"] == 1, elsewhere

    await alice.send_msg("ops", "marker")
    got = []
    while not got or got[-1]["id"] != "marker":
        got.append(await bob.recv_type("msg", conv="ops"))
    assert ids(got) == ["dup-1", "other", "marker"], \
        "protocol.md: same (conv,id) delivered once; bob got %s" % ids(got)
    assert seqs(got) == [1, 2, 3]
    full = await alice.hist_all("ops")
    assert ids(full) == ["dup-1", "other", "marker"] and full[0]["body"] == {"v": 1}, full
    await alice.close()
    await bob.close()


async def test_edge_creates_traceparent_when_none_sent(edge):
    alice = await Client.login(edge, "alice")
    await alice.sub("ops")
    traces = set()
    for i in range(5):
        ack = await alice.send_msg("ops", "nt-%d" % i)
        msg = await alice.recv_type("msg", conv="ops", id="nt-%d" % i)
        assert is_traceparent(ack.get("trace")) and TRACE_RE.match(ack["trace"]), \
            "protocol.md: edge creates a W3C traceparent when none sent; ack: %s" % ack
        assert msg.get("trace") == ack["trace"], (ack, msg)
        traces.add(ack["trace"].split("-")[1])
        logged = await edge.wait_log(lambda l, i=i: l.get("event") == "stored"
                                     and l.get("id") == "nt-%d" % i)
        assert logged.get("trace") == ack["trace"], \
            "protocol.md: the created trace is carried in logs: %s vs %s" % (logged, ack)
    assert len(traces) == 5, "each message should get its own trace id: %s" % traces
    await alice.close()


async def test_rid_echoed_on_replies_and_errors(edge):
    client = await Client.login(edge, "alice")
    cases = [
        ({"t": "ping", "ts": 1}, "pong"),
        ({"t": "sub", "conv": "r"}, "subd"),
        ({"t": "hist", "conv": "r"}, "page"),
        ({"t": "send", "conv": "r", "id": "r1", "body": 1}, "ack"),
        ({"t": "no-such-type"}, "err"),
        ({"t": "sub"}, "err"),
        ({"t": "send", "conv": "bad conv", "id": "x", "body": 1}, "err"),
    ]
    for i, (frame, reply_type) in enumerate(cases):
        rid = "rid-%d-%s" % (i, "x" * 40)
        frame = dict(frame, rid=rid)
        await client.send(frame)
        reply = await client.recv_match(lambda f: f.get("t") == reply_type
                                        and f.get("rid") == rid,
                                        what="%s echoing rid for %s" % (reply_type, frame))
        assert reply["rid"] == rid
    await client.close()


async def test_seq_dense_and_same_order_for_every_subscriber(edge):
    subscribers = [await Client.login(edge, "sub%d" % i) for i in range(3)]
    for s in subscribers:
        await s.sub("ord")
    senders = [await Client.login(edge, "snd%d" % i) for i in range(4)]
    per_sender = 30

    async def run(k):
        return await senders[k].send_many("ord", ["s%d-%d" % (k, n) for n in range(per_sender)],
                                          window=8)

    results = await asyncio.gather(*(run(k) for k in range(4)))
    acked = {}
    for replies in results:
        for msg_id, reply in replies.items():
            assert reply["t"] == "ack", reply
            acked[msg_id] = reply["seq"]
    total = 4 * per_sender
    assert sorted(acked.values()) == list(range(1, total + 1)), \
        "protocol.md: seq dense 1,2,3… no holes; acked seqs %s" % sorted(acked.values())
    orders = []
    for s in subscribers:
        got = []
        while len(got) < total:
            got.append(await s.recv_type("msg", conv="ord"))
        assert seqs(got) == list(range(1, total + 1)), \
            "subscriber %s got seqs out of order or with gaps: %s" % (s.user, seqs(got))
        for m in got:
            assert acked[m["id"]] == m["seq"], "msg seq differs from ack seq: %s" % m
        orders.append(ids(got))
    assert orders[0] == orders[1] == orders[2], "subscribers saw different orders"
    # Each sender's pipelined messages keep their relative order (one connection, one conv).
    for k in range(4):
        mine = [acked["s%d-%d" % (k, n)] for n in range(per_sender)]
        assert mine == sorted(mine), "sender %d's messages reordered: %s" % (k, mine)
    for c in subscribers + senders:
        await c.close()


async def test_resume_from_cursor_gets_exactly_missed(edge):
    writer = await Client.login(edge, "alice")
    reader = await Client.login(edge, "bob")
    await reader.sub("res")
    await fill(writer, "res", 5, "a")
    got = [await reader.recv_type("msg", conv="res") for _ in range(5)]
    cursor = got[-1]["seq"]
    assert cursor == 5
    await reader.close()

    await fill(writer, "res", 7, "b")
    back = await Client.open(edge)
    await back.hello("dev:bob", subs=[{"conv": "res", "after": cursor}])
    subd = await back.recv_type("subd", conv="res")
    missed = back.take_msgs("res")
    assert seqs(missed) == list(range(6, 13)), \
        "protocol.md resume: exactly the missed messages after the cursor; got %s" % seqs(missed)
    assert ids(missed) == ["b%d" % i for i in range(7)]
    assert subd["head"] == 12 and subd["more"] is False, subd
    await writer.send_msg("res", "c0")
    live = await back.recv_type("msg", conv="res")
    assert live["seq"] == 13, live
    await assert_no_msgs_until_barrier(back, "res", "a repeat after resume")
    await writer.close()
    await back.close()


# ---------------------------------------------------------------------------------------------
# Receipts, typing, presence

async def test_rcpt_stored_monotonic_fanned_out_and_in_subd_read(edge):
    alice = await Client.login(edge, "alice")
    bob = await Client.login(edge, "bob")
    await fill(alice, "rc", 10)
    await alice.sub("rc")
    await bob.sub("rc")

    await alice.send({"t": "rcpt", "conv": "rc", "seq": 6, "kind": "read"})
    seen = await bob.recv_type("rcpt", conv="rc")
    assert seen == {"t": "rcpt", "conv": "rc", "user": "alice", "seq": 6, "kind": "read"}, \
        "protocol.md: rcpt fanned out with user; got %s" % seen

    # Moving backwards is not a move: no fanout, cursor stays.
    await alice.send({"t": "rcpt", "conv": "rc", "seq": 3, "kind": "read"})
    await alice.barrier()
    await bob.barrier()
    backwards = bob.take(lambda f: f.get("t") == "rcpt")
    assert not backwards, "protocol.md: receipts only ever move forward; bob saw %s" % backwards

    # A delivered receipt past the read cursor is forward under any reading of the page (whether
    # read implies delivered or the two kinds move separately).
    await alice.send({"t": "rcpt", "conv": "rc", "seq": 8, "kind": "delivered"})
    seen = await bob.recv_type("rcpt", conv="rc")
    assert seen["kind"] == "delivered" and seen["seq"] == 8 and seen["user"] == "alice", seen

    # The read cursor survives reconnect as subd.read; a delivered receipt does not move it.
    await alice.close()
    again = await Client.login(edge, "alice")
    _, subd = await again.sub("rc")
    assert subd["read"] == 6, "protocol.md: subd.read is the user's read cursor; got %s" % subd
    _, bob_subd = await bob.sub("rc")
    assert bob_subd["read"] == 0, "read cursor is per user: %s" % bob_subd
    await again.close()
    await bob.close()


async def test_rcpt_read_cursor_survives_restart(edge_factory):
    edge = edge_factory()
    alice = await Client.login(edge, "alice")
    await fill(alice, "rc", 4)
    await alice.send({"t": "rcpt", "conv": "rc", "seq": 3, "kind": "read"})
    await alice.barrier()
    await alice.close()
    assert edge.terminate() == 0
    edge.start()
    again = await Client.login(edge, "alice")
    _, subd = await again.sub("rc")
    assert subd["read"] == 3, "protocol.md: rcpt is stored; after restart subd.read=%s" % subd
    await again.close()


async def test_typing_fanned_out_not_stored(edge):
    alice = await Client.login(edge, "alice")
    bob = await Client.login(edge, "bob")
    await fill(alice, "ty", 2)
    await alice.sub("ty")
    await bob.sub("ty")
    await alice.send({"t": "typing", "conv": "ty", "on": True})
    seen = await bob.recv_type("typing", conv="ty")
    assert seen == {"t": "typing", "conv": "ty", "user": "alice", "on": True}, seen
    await alice.send({"t": "typing", "conv": "ty", "on": False})
    seen = await bob.recv_type("typing", conv="ty")
    assert seen["on"] is False and seen["user"] == "alice", seen
    page = await bob.hist("ty")
    assert seqs(page["msgs"]) == [1, 2], "protocol.md: typing is never stored; hist %s" % page
    _, subd = await bob.sub("ty")
    assert subd["head"] == 2, subd
    await assert_no_msgs_until_barrier(bob, "ty", "typing produced a msg")
    await alice.close()
    await bob.close()


async def test_presence_first_subscribe_and_last_leave(edge):
    alice = await Client.login(edge, "alice")
    await alice.sub("pr")

    bob1 = await Client.login(edge, "bob")
    _, subd = await bob1.sub("pr")
    assert sorted(subd["present"]) == ["alice", "bob"], subd
    on = await alice.recv_type("presence", conv="pr")
    assert on == {"t": "presence", "conv": "pr", "user": "bob", "on": True}, on

    bob2 = await Client.login(edge, "bob")
    await bob2.sub("pr")
    await alice.barrier()
    extra = alice.take(lambda f: f.get("t") == "presence")
    assert not extra, "bob's second connection is not his first: no presence, got %s" % extra

    await bob1.close()
    await bob2.barrier()
    await alice.barrier()
    early = alice.take(lambda f: f.get("t") == "presence")
    assert not early, "protocol.md: off only when the user's LAST connection leaves; got %s" % early

    await bob2.send({"t": "unsub", "conv": "pr"})
    off = await alice.recv_type("presence", conv="pr")
    assert off == {"t": "presence", "conv": "pr", "user": "bob", "on": False}, off

    # Leaving by closing the socket counts too.
    carol = await Client.login(edge, "carol")
    await carol.sub("pr")
    assert (await alice.recv_type("presence", conv="pr"))["on"] is True
    await carol.close()
    off = await alice.recv_type("presence", conv="pr")
    assert off["user"] == "carol" and off["on"] is False, off
    _, subd = await alice.sub("pr")
    assert subd["present"] == ["alice"], subd
    await alice.close()
    await bob2.close()


# ---------------------------------------------------------------------------------------------
# Errors, leaving, durability

async def test_unknown_type_and_binary_frame(edge):
    client = await Client.login(edge, "alice")
    await client.send({"t": "frobnicate", "rid": "u1", "extra": [1, 2]})
    err = await client.recv_type("err", rid="u1")
    assert err["code"] == "unknown_type", err
    await client.send_raw(b"\x00\x01binary")
    err = await client.recv_type("err")
    assert err["code"] == "bad_frame", "protocol.md: binary frames get bad_frame; got %s" % err
    # Unknown fields are ignored.
    await client.send({"t": "ping", "ts": 5, "rid": "u2", "whatever": {"x": 1}})
    await client.recv_type("pong", rid="u2")
    ack = await client.send_msg("ops", "with-extra", future_field=[1, 2, 3])
    assert ack["t"] == "ack", ack
    await client.close()


async def test_sigterm_sends_bye_then_1001_and_exits_0(edge_factory):
    edge = edge_factory()
    clients = [await Client.login(edge, "u%d" % i) for i in range(3)]
    for c in clients:
        await c.sub("ops")
    edge.proc.send_signal(signal.SIGTERM)
    for c in clients:
        code, _ = await c.wait_closed(timeout=STOP_TIMEOUT + 1)
        byes = [f for f in c.inbox if f.get("t") == "bye"]
        assert byes, "protocol.md: bye before a deliberate close; frames: %s" % c.inbox
        bye = byes[-1]
        assert bye.get("reason") == "shutdown", bye
        window = bye.get("retry_ms")
        assert isinstance(window, list) and len(window) == 2 and all(
            isinstance(v, int) for v in window) and 0 <= window[0] <= window[1], \
            "retry_ms must be [min,max] ms: %s" % bye
        assert c.inbox[-1] is bye, "nothing after bye: %s" % c.inbox
        assert code == 1001, "protocol.md: shutdown closes with 1001, got %s" % code
    code = edge.terminate(timeout=STOP_TIMEOUT)
    assert code == 0, "SIGTERM: exit code %r (None = still running after 5 s)" % code


async def test_messages_survive_clean_restart(edge_factory):
    edge = edge_factory()
    client = await Client.login(edge, "alice")
    await fill(client, "keep", 25)
    await client.send_msg("keep2", "solo", body={"nested": [1, 2, {"k": "v"}]},
                          trace=make_traceparent(9))
    before = await client.hist_all("keep")
    before2 = await client.hist_all("keep2")
    await client.close()
    assert edge.terminate() == 0
    edge.start()
    client = await Client.login(edge, "bob")
    assert await client.hist_all("keep") == before, "messages changed across a clean restart"
    assert await client.hist_all("keep2") == before2
    replay, subd = await client.sub("keep", after=20)
    assert seqs(replay) == [21, 22, 23, 24, 25] and subd["head"] == 25, (replay, subd)
    ack = await client.send_msg("keep", "m0")
    assert ack.get("dup") is True and ack["seq"] == 1, \
        "idempotency key must survive restart: %s" % ack
    ack = await client.send_msg("keep", "after-restart")
    assert ack["seq"] == 26, "seq continues densely after restart: %s" % ack
    await client.close()
