# Outside tests of protocol.md "Errors and bad input": malformed, mistyped, incomplete, unknown,
# binary, oversized and 10,000 randomly mutated frames against the real waymark-edge.
import asyncio
import json
import os
import random
import re

import websockets

from conftest import Client, Closed

GUARDED = "guard-7Qx.kept_apart"  # no seed frame names it, so mutations cannot reach it


async def expect_err(client, raw, code, rid=None):
    """Send raw text/bytes; the next reply must be err{code}; the socket must stay usable."""
    await client.send_raw(raw)
    if rid is not None:
        err = await client.recv_match(lambda f: f.get("rid") == rid, what="reply to %r" % (raw,))
    else:
        err = await client.recv_match(lambda f: f.get("t") in ("err", "pong", "ack", "subd",
                                                               "page", "nack"),
                                      what="err for %r" % (raw,))
    assert err.get("t") == "err" and err.get("code") == code, \
        "protocol.md Errors: %r should get err{code:%s}, got %s" % (raw, code, err)
    assert isinstance(err.get("msg"), str), err
    await client.barrier()  # still serving this socket
    return err


def names_field(msg, field):
    return re.search(r"(^|[^A-Za-z0-9_])%s([^A-Za-z0-9_]|$)" % re.escape(field), msg) is not None


# ---------------------------------------------------------------------------------------------
# Table-driven single frames

NOT_JSON = ["", " ", "{", "}", '{"t":', "nul", "tru", "[", "{'t':'ping'}", '{"t":"ping",}',
            '{"t":"ping"} {"t":"ping"}', '{"t":"ping","ts":NaN}', '{"t":"ping","ts":01}',
            '{"t":"ping" "ts":1}', "\x00", '{"t":"ping","ts":1', "\ufeff{\"t\":\"ping\"}",
            '{"t":"ping","ts":Infinity}', "/* c */ {\"t\":\"ping\"}"]

NOT_OBJECT = ["[]", '[{"t":"ping"}]', '"ping"', "1", "-0.5", "null", "true", "false"]


async def test_malformed_json_is_bad_frame(shared_edge):
    client = await Client.login(shared_edge, "alice")
    for raw in NOT_JSON:
        await expect_err(client, raw, "bad_frame")
    await client.close()


async def test_non_object_json_is_bad_frame(shared_edge):
    client = await Client.login(shared_edge, "alice")
    for raw in NOT_OBJECT:
        await expect_err(client, raw, "bad_frame")
    await client.close()


MISSING = [
    ({"t": "sub"}, "conv"),
    ({"t": "unsub"}, "conv"),
    ({"t": "hist"}, "conv"),
    ({"t": "hist", "before": 3}, "conv"),
    ({"t": "send", "id": "m", "body": 1}, "conv"),
    ({"t": "send", "conv": "c", "body": 1}, "id"),
    ({"t": "send", "conv": "c", "id": "m"}, "body"),
    ({"t": "rcpt", "seq": 1, "kind": "read"}, "conv"),
    ({"t": "rcpt", "conv": "c", "kind": "read"}, "seq"),
    ({"t": "rcpt", "conv": "c", "seq": 1}, "kind"),
    ({"t": "typing", "on": True}, "conv"),
    ({"t": "typing", "conv": "c"}, "on"),
    ({"conv": "c"}, "t"),
]

WRONG_TYPE = [
    ({"t": "sub", "conv": 5}, "conv"),
    ({"t": "sub", "conv": ""}, "conv"),
    ({"t": "sub", "conv": "has space"}, "conv"),
    ({"t": "sub", "conv": "x" * 129}, "conv"),
    ({"t": "sub", "conv": "slash/no"}, "conv"),
    ({"t": "sub", "conv": None}, "conv"),
    ({"t": "sub", "conv": "c", "after": "3"}, "after"),
    ({"t": "sub", "conv": "c", "after": -1}, "after"),
    ({"t": "sub", "conv": "c", "after": 1.5}, "after"),
    ({"t": "sub", "conv": "c", "after": True}, "after"),
    ({"t": "sub", "conv": "c", "after": [1]}, "after"),
    ({"t": "sub", "conv": "c", "limit": "5"}, "limit"),
    ({"t": "sub", "conv": "c", "limit": 0}, "limit"),
    ({"t": "sub", "conv": "c", "limit": -4}, "limit"),
    ({"t": "unsub", "conv": []}, "conv"),
    ({"t": "hist", "conv": "c", "before": "9"}, "before"),
    ({"t": "hist", "conv": "c", "after": {}}, "after"),
    ({"t": "hist", "conv": "c", "limit": None}, "limit"),
    ({"t": "hist", "conv": {"a": 1}}, "conv"),
    ({"t": "send", "conv": "c", "id": 5, "body": 1}, "id"),
    ({"t": "send", "conv": "c", "id": "", "body": 1}, "id"),
    ({"t": "send", "conv": "c", "id": "a b", "body": 1}, "id"),
    ({"t": "send", "conv": "c", "id": "dot.not.allowed", "body": 1}, "id"),
    ({"t": "send", "conv": "c", "id": "x" * 65, "body": 1}, "id"),
    ({"t": "send", "conv": 7, "id": "m", "body": 1}, "conv"),
    ({"t": "send", "conv": "c", "id": "m", "body": 1, "cts": "now"}, "cts"),
    ({"t": "send", "conv": "c", "id": "m", "body": 1, "trace": 5}, "trace"),
    ({"t": "rcpt", "conv": "c", "seq": "1", "kind": "read"}, "seq"),
    ({"t": "rcpt", "conv": "c", "seq": 0, "kind": "read"}, "seq"),
    ({"t": "rcpt", "conv": "c", "seq": 1, "kind": "seen"}, "kind"),
    ({"t": "rcpt", "conv": "c", "seq": 1, "kind": 1}, "kind"),
    ({"t": "typing", "conv": "c", "on": "yes"}, "on"),
    ({"t": "typing", "conv": "c", "on": 1}, "on"),
    ({"t": "ping", "ts": "x"}, "ts"),
    ({"t": 5}, "t"),
    ({"t": None}, "t"),
    ({"t": ["send"]}, "t"),
]


async def check_invalid_table(edge, table, what):
    client = await Client.login(edge, "alice")
    failures = []
    for i, (frame, field) in enumerate(table):
        rid = "%s-%d" % (what, i)
        frame = dict(frame, rid=rid)
        await client.send(frame)
        reply = await client.recv_match(lambda f: f.get("rid") == rid, what="reply to %s" % frame)
        if reply.get("t") != "err" or reply.get("code") != "invalid":
            failures.append("%s -> %s (want err invalid)" % (frame, reply))
        elif not names_field(reply.get("msg", ""), field):
            failures.append("%s -> msg %r does not name %r" % (frame, reply.get("msg"), field))
    # None of the refused sends were stored.
    page = await client.hist("c")
    if page["msgs"]:
        failures.append("refused sends were stored: %s" % page["msgs"])
    await client.close()
    assert not failures, "protocol.md Errors: invalid (a field missing or malformed; msg names " \
        "it):\n" + "\n".join(failures)


async def test_missing_fields_are_invalid_naming_the_field(shared_edge):
    await check_invalid_table(shared_edge, MISSING, "missing")


async def test_wrong_types_are_invalid_naming_the_field(shared_edge):
    await check_invalid_table(shared_edge, WRONG_TYPE, "wrong")


async def test_bad_rid_is_invalid(shared_edge):
    client = await Client.login(shared_edge, "alice")
    for rid in (5, "x" * 65, ["a"], None):
        await client.send({"t": "ping", "ts": 1, "rid": rid})
        reply = await client.recv_match(lambda f: f.get("t") in ("err", "pong"))
        assert reply.get("t") == "err" and reply.get("code") == "invalid" \
            and names_field(reply.get("msg", ""), "rid"), \
            "protocol.md: rid is a string of at most 64 chars; rid=%r got %s" % (rid, reply)
    await client.send({"t": "ping", "ts": 1, "rid": "y" * 64})
    await client.recv_type("pong", rid="y" * 64)
    await client.close()


UNKNOWN = ["frobnicate", "PING", "Send", "welcome", "msg", "ack", "nack", "pong", "subd", "page",
           "err", "bye", "presence", "x" * 300, "send ", "\u00e9"]


async def test_unknown_types(shared_edge):
    client = await Client.login(shared_edge, "alice")
    for i, t in enumerate(UNKNOWN):
        rid = "u%d" % i
        await client.send({"t": t, "rid": rid, "conv": "c"})
        reply = await client.recv_match(lambda f: f.get("rid") == rid)
        assert reply.get("t") == "err" and reply.get("code") == "unknown_type", \
            "protocol.md: unknown type %r must get err unknown_type; got %s" % (t[:40], reply)
    await client.close()


async def test_binary_frames_are_bad_frame(shared_edge):
    client = await Client.login(shared_edge, "alice")
    for data in (b"", b"\x00", b'{"t":"ping","ts":1}', bytes(range(256)) * 4):
        await expect_err(client, data, "bad_frame")
    assert not client.closed
    await client.close()
    # Before hello, too: the frame is refused (as bad_frame or as not-a-hello), never accepted.
    early = await Client.open(shared_edge)
    await early.send_raw(b'{"t":"hello","token":"dev:alice"}')
    reply = await early.recv_any()
    assert reply.get("t") == "err" and reply.get("code") in ("bad_frame", "unauthorized"), reply
    await early.close()


async def test_oversized_frame_closes_1009_others_unharmed(edge_factory):
    edge = edge_factory(extra_args=["--max-frame", "4096"])
    bystander = await Client.login(edge, "bob")
    await bystander.sub("big")
    client = await Client.login(edge, "alice")
    assert client.welcome["max_frame"] == 4096

    def frame_of_size(n, msg_id):
        base = json.dumps({"t": "send", "conv": "big", "id": msg_id, "body": ""},
                          separators=(",", ":"))
        text = json.dumps({"t": "send", "conv": "big", "id": msg_id, "body": "x" * (n - len(base))},
                          separators=(",", ":"))
        assert len(text.encode()) == n
        return text

    # Exactly max_frame is allowed ("may not exceed").
    await client.send_raw(frame_of_size(4096, "fits"))
    ack = await client.recv_reply("big", "fits")
    assert ack["t"] == "ack", "a frame of exactly max_frame bytes must be accepted: %s" % ack

    await client.send_raw(frame_of_size(4097, "over"))
    code, _ = await client.wait_closed()
    assert code == 1009, "protocol.md: a frame over max_frame closes with 1009; got %s (%s)" % (
        code, client.inbox)
    errs = [f for f in client.inbox if f.get("t") == "err"]
    assert all(e.get("code") == "too_large" for e in errs), errs

    # Much bigger than max_frame, from another connection: same.
    other = await Client.login(edge, "carol")
    await other.send_raw(frame_of_size(200000, "huge"))
    code, _ = await other.wait_closed()
    assert code == 1009, code

    # The bystander saw only the fitting message and can keep working.
    await bystander.send_msg("big", "after")
    got = [await bystander.recv_type("msg", conv="big") for _ in range(2)]
    assert [m["id"] for m in got] == ["fits", "after"], got
    page = await bystander.hist("big")
    assert [m["id"] for m in page["msgs"]] == ["fits", "after"], page
    await bystander.close()


# ---------------------------------------------------------------------------------------------
# 10,000 mutated frames

SEED_FRAMES = [
    {"t": "send", "conv": "ops", "id": "fz1", "body": {"text": "hi", "n": [1, 2]},
     "cts": 1700000000000},
    {"t": "send", "conv": "fz.b", "id": "fz2", "body": "plain",
     "trace": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    {"t": "send", "conv": "ops", "id": "fz3", "body": [None, True, 1.5], "rid": "s"},
    {"t": "sub", "conv": "ops", "after": 3, "limit": 5},
    {"t": "sub", "conv": "fz.b"},
    {"t": "unsub", "conv": "ops"},
    {"t": "hist", "conv": "ops", "before": 10, "limit": 3},
    {"t": "hist", "conv": "fz.b", "after": 0},
    {"t": "rcpt", "conv": "ops", "seq": 2, "kind": "read"},
    {"t": "typing", "conv": "ops", "on": True},
    {"t": "ping", "ts": 1},
    {"t": "hello", "token": "dev:mallory", "subs": [{"conv": "ops"}]},
]

WEIRD_VALUES = [None, True, False, 0, -1, 1.5, 2 ** 63, 2 ** 64, -(2 ** 63) - 1, 1e308, "",
                "x" * 300, [], {}, [1, "a", None], {"t": "send"}, "\u0000", "ops", "\U0001F600",
                "00-zz", -0.0]
PALETTE = list('{}[]":,\\ 0123456789-+.eEtrufalsn') + ["\u00e9", "\u0000", "\x7f", "\U0001F600",
                                                      "\n", "\t"]
KNOWN_TYPES = ["hello", "sub", "unsub", "hist", "send", "rcpt", "typing", "ping", "bye", "msg"]


def mutate_structure(rng, frame):
    frame = json.loads(json.dumps(frame))
    keys = list(frame.keys())
    op = rng.randrange(6)
    if op == 0 and keys:
        del frame[rng.choice(keys)]
    elif op == 1 and keys:
        frame[rng.choice(keys)] = rng.choice(WEIRD_VALUES)
    elif op == 2:
        frame[rng.choice(["x", "rid", "after", "before", "limit", "seq", "body", "on", "id"])] = \
            rng.choice(WEIRD_VALUES)
    elif op == 3:
        frame["t"] = rng.choice(KNOWN_TYPES)
    elif op == 4:
        frame = {"t": "send", "conv": "ops", "id": "nest%d" % rng.randrange(50), "body": frame}
    else:
        frame["rid"] = "".join(rng.choice("abc-_%") for _ in range(rng.randrange(0, 80)))
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)


def mutate_text(rng, text):
    if not text:
        return rng.choice(PALETTE)
    op = rng.randrange(6)
    i = rng.randrange(len(text))
    if op == 0:
        return text[:i] + rng.choice(PALETTE) + text[i + 1:]
    if op == 1:
        return text[:i] + rng.choice(PALETTE) + text[i:]
    if op == 2:
        return text[:i] + text[i + 1:]
    if op == 3:
        return text[:i]
    if op == 4:
        j = rng.randrange(i, min(len(text), i + 40) + 1)
        return text[:j] + text[i:j] + text[j:]
    j = rng.randrange(len(text))
    a, b = sorted((i, j))
    return text[:a] + text[b:] + text[a:b]


def make_garbage(rng):
    frame = rng.choice(SEED_FRAMES)
    if rng.random() < 0.4:
        text = mutate_structure(rng, frame)
    else:
        text = json.dumps(frame, separators=(",", ":"))
    for _ in range(rng.randrange(0, 4)):
        text = mutate_text(rng, text)
    return text[:3000]


def canon(value):
    """A body as a JSON text with every number as an IEEE double: the edge may hold numbers
    outside int64/uint64 as doubles (as any JavaScript client would), which is not harm."""
    def walk(v):
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, (int, float)):
            try:
                return float(v)
            except OverflowError:
                return v
        if isinstance(v, list):
            return [walk(x) for x in v]
        return {k: walk(x) for k, x in v.items()}
    return json.dumps(walk(value), sort_keys=True)


CONV_RE = re.compile(r'"conv"\s*:\s*"([^"\\]*)"')
ID_RE = re.compile(r'"id"\s*:\s*"([^"\\]*)"')


def possible_sends(text):
    """Every (conv, id) this frame could name if the edge took it as a send, and its body when
    it parses; generous on purpose (a permissive parse plus a regex) so a lenient edge is not
    blamed for storing something it was really sent."""
    pairs = {}
    try:
        obj = json.loads(text, strict=False)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj.get("t") == "send" and isinstance(obj.get("conv"), str) \
            and isinstance(obj.get("id"), str):
        pairs.setdefault((obj["conv"], obj["id"]), []).append(canon(obj.get("body")))
    if "send" in text:
        for conv in CONV_RE.findall(text):
            for msg_id in ID_RE.findall(text):
                pairs.setdefault((conv, msg_id), [])
    return pairs


async def test_mutated_frames_barrage(edge):
    seed = int(os.environ.get("WAYMARK_FUZZ_SEED", "424242"))
    print("mutation seed=%d (set WAYMARK_FUZZ_SEED to replay)" % seed)
    rng = random.Random(seed)
    total_frames = 10000
    connections = 4
    batch = 100

    good = await Client.login(edge, "goodwin")
    await good.sub(GUARDED)
    setup = await Client.login(edge, "setup")
    for i in range(5):
        assert (await setup.send_msg(GUARDED, "pre%d" % i))["t"] == "ack"
        assert (await setup.send_msg("ops", "pre%d" % i))["t"] == "ack"
    guarded_before = await setup.hist_all(GUARDED)
    ops_before = await setup.hist_all("ops")
    good.take_msgs(GUARDED)
    setup_pairs = {(conv, "pre%d" % i) for conv in (GUARDED, "ops") for i in range(5)}

    allowed = {}  # (conv, id) -> [json body, ...] for every frame that might be a send
    closes = []
    done = asyncio.Event()
    good_sent = []

    async def well_behaved():
        # Opened before the barrage and used throughout: acks and msgs keep coming (bounded waits).
        n = 0
        while not done.is_set() or n < 3:
            msg_id = "good%d" % n
            ack = await good.send_msg(GUARDED, msg_id, body={"n": n})
            assert ack["t"] == "ack", "well-behaved send refused during barrage: %s" % ack
            msg = await good.recv_type("msg", conv=GUARDED, id=msg_id)
            assert msg["seq"] == ack["seq"], (ack, msg)
            good_sent.append(msg_id)
            n += 1

    async def garbage(k, frames):
        client = await Client.login(edge, "mallory%d" % k)
        sent = 0
        while sent < len(frames):
            chunk = frames[sent:sent + batch]
            try:
                for text in chunk:
                    for pair, bodies in possible_sends(text).items():
                        allowed.setdefault(pair, []).extend(bodies)
                    await client.send_raw(text)
                await client.barrier()
                client.inbox.clear()
            except (Closed, websockets.ConnectionClosed):
                await client.wait_closed()
                closes.append((client.close_code, [f for f in client.inbox if f.get("t") == "bye"]))
                client = await Client.login(edge, "mallory%d" % k)
            sent += len(chunk)
        await client.close()

    per_conn = total_frames // connections
    all_frames = [make_garbage(rng) for _ in range(total_frames)]
    worker = asyncio.ensure_future(well_behaved())
    try:
        await asyncio.gather(*(garbage(k, all_frames[k * per_conn:(k + 1) * per_conn])
                               for k in range(connections)))
    finally:
        done.set()
    await worker

    assert edge.alive(), "edge died during the barrage:\n%s" % edge.stderr_tail()
    for code, byes in closes:
        assert code == 4008 and byes, \
            "protocol.md: bad input may close only with 4008 (after a bye); got %s %s" % (code,
                                                                                         byes)

    checker = await Client.login(edge, "checker")
    guarded_after = await checker.hist_all(GUARDED)
    assert guarded_after[:len(guarded_before)] == guarded_before, \
        "the guarded conversation's old messages changed"
    assert [m["id"] for m in guarded_after[len(guarded_before):]] == good_sent, \
        "guarded conversation holds something other than the well-behaved sends"

    ops_after = await checker.hist_all("ops")
    assert ops_after[:len(ops_before)] == ops_before, "stored messages in ops changed"
    problems = []
    for m in ops_after[len(ops_before):]:
        bodies = allowed.get(("ops", m["id"]))
        if bodies is None:
            problems.append("ops seq %d id %r was never sent" % (m["seq"], m["id"]))
        elif bodies and canon(m["body"]) not in bodies:
            problems.append("ops seq %d body %r matches no frame sent with that id" % (
                m["seq"], m["body"]))
    if [m["seq"] for m in ops_after] != list(range(1, len(ops_after) + 1)):
        problems.append("ops seqs not dense: %s" % [m["seq"] for m in ops_after])

    # Every message stored during the barrage came from a frame that named it as a send. The
    # last well-behaved send was stored after the barrage: once its log line is read, so are all.
    await edge.wait_log(lambda l: l.get("event") == "stored" and l.get("conv") == GUARDED
                        and l.get("id") == good_sent[-1])
    stored = [line for line in edge.stored_logs() if not line.get("dup")
              and (line.get("conv"), line.get("id")) not in setup_pairs]
    for line in stored:
        pair = (line.get("conv"), line.get("id"))
        if line.get("conv") == GUARDED:
            if line.get("id") not in good_sent:
                problems.append("guarded stored %s" % line)
        elif pair not in allowed:
            problems.append("stored a message no frame sent: %s" % line)
    await checker.close()
    await good.close()
    assert not problems, "protocol.md: bad input never harms stored data:\n" + "\n".join(
        problems[:20])
    print("barrage: %d frames, %d stored as valid sends, %d closes, %d good sends" % (
        total_frames, len(stored), len(closes), len(good_sent)))
