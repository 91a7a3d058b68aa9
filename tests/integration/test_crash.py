# Outside crash test: SIGKILL the real edge at seeded random moments while 4 connections pipeline
# sends; restart on the same data dir and check protocol.md's durability and idempotency promises.
import asyncio
import collections
import os
import random

import websockets

from conftest import Client, Closed

CONV = "crash.log"
WRITERS = 4
WINDOW = 6  # unacked sends in flight per connection
ROUNDS = 6


def body_of(msg_id):
    return {"text": msg_id, "pad": "p" * (len(msg_id) * 37 % 300)}


class Ledger:
    """What the clients know: every id sent, and the seq of every id an ack was seen for."""

    def __init__(self):
        self.sent = []
        self.acked = {}
        self.problems = []
        self.acks_this_round = 0

    def record(self, reply):
        msg_id = reply.get("id")
        if reply.get("t") != "ack":
            self.problems.append("send refused: %s" % reply)
            return
        seq = reply.get("seq")
        if msg_id in self.acked and self.acked[msg_id] != seq:
            self.problems.append("id %s acked with seq %s and later %s" % (msg_id,
                                                                          self.acked[msg_id], seq))
        self.acked[msg_id] = seq
        self.acks_this_round += 1


async def write_until_killed(edge, k, round_no, ledger, kill_at, rng_delay):
    """Pipeline sends from one connection; the writer whose ack reaches kill_at SIGKILLs the edge
    right there, with every connection's window still in flight."""
    try:
        client = await Client.login(edge, "writer%d" % k)
    except (OSError, Closed, websockets.WebSocketException, asyncio.TimeoutError):
        assert not edge.alive(), "could not connect to a live edge"
        return  # another writer reached kill_at before this one got in
    inflight = set()
    n = 0

    def is_reply(f):
        return f.get("t") in ("ack", "nack") and f.get("id") in inflight

    try:
        while edge.alive():
            while len(inflight) < WINDOW:
                msg_id = "r%d-w%d-%d" % (round_no, k, n)
                n += 1
                ledger.sent.append(msg_id)
                inflight.add(msg_id)
                await client.send_msg(CONV, msg_id, body=body_of(msg_id), wait=False)
            reply = await client.recv_match(is_reply, what="ack for writer %d" % k)
            inflight.discard(reply["id"])
            ledger.record(reply)
            if ledger.acks_this_round >= kill_at and edge.alive():
                for _ in range(rng_delay):
                    await asyncio.sleep(0)  # let a seeded number of loop turns pass: vary the instant
                edge.kill()
    except (Closed, websockets.ConnectionClosed):
        pass
    await client.wait_closed()
    # Acks that reached the socket before the kill are acks all the same.
    for frame in client.take(is_reply):
        ledger.record(frame)
    await client.close()


async def check_log(edge, ledger, round_no):
    client = await Client.login(edge, "checker")
    msgs = await client.hist_all(CONV)
    await client.close()
    problems = []
    seqs = [m["seq"] for m in msgs]
    if seqs != list(range(1, len(msgs) + 1)):
        problems.append("seqs not dense 1..head: %s" % seqs)
    counts = collections.Counter(m["id"] for m in msgs)
    twice = [i for i, c in counts.items() if c > 1]
    if twice:
        problems.append("stored more than once: %s" % twice[:10])
    by_id = {m["id"]: m for m in msgs}
    sent = set(ledger.sent)
    for msg_id, seq in ledger.acked.items():
        m = by_id.get(msg_id)
        if m is None:
            problems.append("ACKED %s (seq %s) missing after SIGKILL+restart" % (msg_id, seq))
        elif m["seq"] != seq:
            problems.append("ACKED %s had seq %s, now %s" % (msg_id, seq, m["seq"]))
        elif m["body"] != body_of(msg_id):
            problems.append("ACKED %s body changed: %s" % (msg_id, m["body"]))
    strangers = [i for i in by_id if i not in sent]
    if strangers:
        problems.append("stored ids nobody sent: %s" % strangers[:10])
    assert not problems, "round %d (protocol.md Sending: ack only after durable commit; " \
        "seq dense, never changed; (conv,id) stored once):\n%s" % (round_no, "\n".join(problems))
    return by_id


async def test_acked_messages_survive_sigkill(edge_factory):
    seed = int(os.environ.get("WAYMARK_CRASH_SEED", "7031"))
    print("crash seed=%d (set WAYMARK_CRASH_SEED to replay)" % seed)
    rng = random.Random(seed)
    edge = edge_factory()
    ledger = Ledger()
    resent_total = 0
    resent_dup = 0
    for round_no in range(ROUNDS):
        kill_at = rng.randint(5, 150)
        delay = rng.randint(0, 20)
        ledger.acks_this_round = 0
        await asyncio.gather(*(write_until_killed(edge, k, round_no, ledger, kill_at, delay)
                               for k in range(WRITERS)))
        assert not edge.alive()
        assert not ledger.problems, "\n".join(ledger.problems)

        edge.start()  # same data dir, new port
        stored = await check_log(edge, ledger, round_no)

        # Resend everything still unacked: each is either already there (dup:true with its stored
        # seq) or gets a new seq; never a second copy.
        client = await Client.login(edge, "resender")
        unacked = [i for i in ledger.sent if i not in ledger.acked]
        replies = await client.send_many(CONV, unacked, body_of=body_of, window=16)
        await client.close()
        for msg_id in unacked:
            reply = replies[msg_id]
            assert reply["t"] == "ack", "resend after restart refused: %s" % reply
            if msg_id in stored:
                assert reply.get("dup") is True and reply["seq"] == stored[msg_id]["seq"], \
                    "protocol.md: a stored (conv,id) resent must ack dup:true with its original " \
                    "seq; stored %s, reply %s" % (stored[msg_id], reply)
                resent_dup += 1
            else:
                assert not reply.get("dup"), \
                    "dup:true for an id that hist does not have: %s" % reply
            ledger.record(reply)
        resent_total += len(unacked)
        final = await check_log(edge, ledger, round_no)
        assert set(final) == set(ledger.sent), "after resending, every sent id is stored once"
    print("crash: %d rounds, %d messages sent, %d resent after restarts (%d were stored "
          "unacked: dup)" % (ROUNDS, len(ledger.sent), resent_total, resent_dup))
