#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: corpus/codec/ (one frame per file, every frame
type of shared/protocol.md, valid and malformed) and corpus/edge_node/ (scripts in the format
of fuzz_edge_node.cpp). Run it from anywhere; it rewrites only the files it names, so saved
reproducers added by hand stay. Inputs are kept small: they seed mutation, they are no suite."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def frame(**fields):
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


MSG = dict(t="msg", conv="ops", seq=42, id="01JDA", **{"from": "bob"}, ts=1700000000000,
           cts=1699999999000, trace=TRACE, body={"text": "db failover done"})

CODEC = {
    # client -> edge, valid
    "hello": frame(t="hello", token="dev:alice", device="tab-7f3a", subs=[{"conv": "ops", "after": 41}], rid="h1"),
    "hello-minimal": frame(t="hello", token="dev:bob"),
    "sub": frame(t="sub", conv="ops", after=41, limit=100, rid="s1"),
    "sub-live": frame(t="sub", conv="team.eu:x-1"),
    "unsub": frame(t="unsub", conv="ops", rid="u1"),
    "hist-before": frame(t="hist", conv="ops", before=120, limit=50, rid="h2"),
    "hist-after": frame(t="hist", conv="ops", after=3),
    "send": frame(t="send", conv="ops", id="01JDA", body={"text": "db failover done", "n": [1, 2.5, -3], "ok": True, "x": None},
                  cts=1700000000000, trace=TRACE, rid="r1"),
    "send-scalar-body": frame(t="send", conv="ops", id="f_3", body="plain \u00e9 \U0001F600"),
    "ping": frame(t="ping", ts=1700000000000, rid="p1"),
    "rcpt-client": frame(t="rcpt", conv="ops", seq=44, kind="read", rid="rc"),
    "typing-client": frame(t="typing", conv="ops", on=True),
    # edge -> client, valid
    "welcome": frame(t="welcome", session="0123abcd", node="edge-eu-1", user="alice", ts=1700000000000, hb=15000, max_frame=65536),
    "msg": frame(**MSG),
    "subd": frame(t="subd", conv="ops", head=43, read=40, present=["bob", "carol"], more=False, rid="s1"),
    "page": frame(t="page", conv="ops", msgs=[MSG, dict(MSG, seq=43, id="01JDB", body=[1, 2])], more=True, rid="h2"),
    "ack": frame(t="ack", conv="ops", id="01JDA", seq=44, ts=1700000000001, trace=TRACE, dup=True, rid="r1"),
    "ack-relayed": frame(t="ack", conv="ops", id="01JDB", ts=1700000000002),
    "nack": frame(t="nack", conv="ops", id="01JDA", code="rate_limited", msg="slow down", retry=True, rid="r1"),
    "rcpt-edge": frame(t="rcpt", conv="ops", user="alice", seq=44, kind="delivered"),
    "typing-edge": frame(t="typing", conv="ops", user="alice", on=False),
    "presence": frame(t="presence", conv="ops", user="bob", on=True),
    "pong": frame(t="pong", ts=1700000000000, rid="p1"),
    "bye": frame(t="bye", reason="shutdown", retry_ms=[500, 5500]),
    "err": frame(t="err", code="invalid", msg="conv: must be 1-128 chars", rid="r9"),
    # malformed
    "bad-not-json": '{"t":"send","conv":"ops",',
    "bad-not-object": '["t","hello"]',
    "bad-no-type": frame(conv="ops", rid="x1"),
    "bad-type-number": '{"t":7}',
    "bad-unknown-type": frame(t="nope", rid="x2"),
    "bad-conv": frame(t="sub", conv="has space", rid="x3"),
    "bad-id-too-long": frame(t="send", conv="ops", id="i" * 65, body=None),
    "bad-rid-too-long": frame(t="ping", rid="r" * 65),
    "bad-trace": frame(t="send", conv="ops", id="a", body={}, trace="00-zz"),
    "bad-numbers": '{"t":"hist","conv":"ops","before":18446744073709551616,"limit":-1}',
    "bad-non-finite": '{"t":"send","conv":"ops","id":"a","body":1e400}',
    "bad-before-and-after": frame(t="hist", conv="ops", before=5, after=2),
    "bad-kind": frame(t="rcpt", conv="ops", seq=1, kind="seen"),
    "bad-retry-window": frame(t="bye", reason="x", retry_ms=[9, 1]),
    "bad-deep": '{"t":"send","conv":"ops","id":"d","body":' + "[" * 200 + "]" * 200 + "}",
    "bad-escapes": '{"t":"send","conv":"ops","id":"e","body":"\\ud800\\u0000\\\\","rid":"\\u00e9"}',
    "spaced-fields": ' { "t" : "send" ,\n "conv":"ops", "id":"w", "body" : { } , "extra":[1,2] } ',
}


def send(conv, ident, body='{"n":1}', extra=""):
    return '{"t":"send","conv":"%s","id":"%s","body":%s%s}' % (conv, ident, body, extra)


def script(*lines):
    return "\n".join(lines) + "\n"


HELLO_A = 't0{"t":"hello","token":"dev:alice"}'
HELLO_B = 't1{"t":"hello","token":"dev:bob","subs":[{"conv":"ops","after":0}]}'
EDGE = {
    "hello-send-commit": script("c0", HELLO_A, "t0" + send("ops", "a1", extra=',"rid":"r1"'), "w"),
    "two-subscribers": script("c0", "c1", HELLO_A, HELLO_B, 't0{"t":"sub","conv":"ops"}',
                              "t0" + send("ops", "a1"), "t1" + send("ops", "b1"), "w",
                              't1{"t":"typing","conv":"ops","on":true}', "t0" + send("ops", "a1"), "w"),
    "replay-and-more": script("c0", "h0", "m0", "m0", "m0", "m0", "m0", "m0", "m0", "w", "c1", "h1",
                              't1{"t":"sub","conv":"ops","after":0,"limit":3}',
                              't1{"t":"sub","conv":"ops","after":3}', 't1{"t":"unsub","conv":"ops"}'),
    "hist-pages": script("c0", "h0", "m0", "m0", "m0", "m0", "w",
                         't0{"t":"hist","conv":"ops","before":4,"limit":2,"rid":"h"}',
                         't0{"t":"hist","conv":"ops","after":1}', 't0{"t":"hist","conv":"nowhere"}'),
    "commit-in-store-then-sub": script("c0", "c1", "h0", "h1", 't1{"t":"sub","conv":"ops"}', "m0", "m0",
                                       "s0\x01", 't1{"t":"sub","conv":"ops","after":0}', "r", "w"),
    "failed-commit": script("c0", "h0", "m0", 't0{"t":"rcpt","conv":"ops","seq":1,"kind":"read"}', "f", "m0", "w"),
    "receipts": script("c0", "c1", "h0", "h1", 't0{"t":"sub","conv":"ops"}', "m1", "w",
                       't1{"t":"rcpt","conv":"ops","seq":1,"kind":"delivered"}',
                       't1{"t":"rcpt","conv":"ops","seq":9,"kind":"read","rid":"too-far"}', "w"),
    "not-hello-first": script("c0", 't0{"t":"sub","conv":"ops","rid":"x"}', "c1", 't1{"t":"hello"}',
                              "c2", "b2", "c3", 't3{"t":"hello","token":"nope"}'),
    "bad-frames-after-hello": script("c0", "h0", "t0not json", 't0{"t":"welcome"}', "b0",
                                     't0{"t":"send","conv":"ops","id":"x","body":1e400}', 't0{"t":"hello","token":"dev:alice"}',
                                     "t0" + send("ops", "a1"), "o0", "t0" + send("ops", "a2"), "w"),
    "disconnect-pending": script("c0", "h0", "m0", "d0", "c0", "h0", "w", "m0", "w"),
    "lagging-with-pending": script("c0", "c1", "h0", "h1", 't1{"t":"sub","conv":"ops"}', "m0", "l0", "m1", "w"),
    "shutdown": script("c0", "c1", "h0", "m0", "x", "c2", 't2{"t":"hello","token":"dev:carol"}',
                       "t0" + send("ops", "late"), "w"),
    "timers": script("c0", "c1", "h1", "n500", "nd", "n20000", "m1", "w", "n3600000"),
    "presence": script("c0", "c2", "c1", "h0", "h2", "h1", 't0{"t":"sub","conv":"ops"}', 't2{"t":"sub","conv":"ops"}',
                       't1{"t":"sub","conv":"ops"}', "d0", 't2{"t":"unsub","conv":"ops"}', "d1"),
    "burst": script("c0", "h0", *(['t0{"t":"ping","ts":1}'] * 30), "n1000", 't0{"t":"ping"}'),
    "subs-limit": script("c0", "h0", *('t0{"t":"sub","conv":"c%d"}' % i for i in range(6)),
                         "c1", "h1", "c2", "h2", "c3", "h3"),
}


def write_all(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8", newline="") as out:
            out.write(text)


def main():
    write_all(os.path.join(HERE, "corpus", "codec"), CODEC)
    write_all(os.path.join(HERE, "corpus", "edge_node"), EDGE)
    print("wrote %d codec and %d edge_node inputs" % (len(CODEC), len(EDGE)), file=sys.stderr)


if __name__ == "__main__":
    main()
