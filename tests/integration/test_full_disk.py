# Outside test of a full store against the real waymark-edge: with a tiny LMDB map cap, sends are
# refused with nack{retry:true}, never falsely acked; reads keep working; a bigger map lets them in.
import collections

from conftest import Client

CONV = "disk"
SMALL_MAP = 1024 * 1024  # startup plus roughly a hundred 4 KB messages
BIG_MAP = 64 * 1024 * 1024
BODY = {"text": "d" * 4000}
WINDOW = 4
AFTER_FIRST_NACK = 8  # keep sending a little after the store is full
MAX_SENDS = 3000


async def test_full_store_nacks_retryable_and_recovers(edge_factory):
    edge = edge_factory(extra_args=["--max-map-bytes", str(SMALL_MAP)])
    watcher = await Client.login(edge, "watcher")
    await watcher.sub(CONV)
    writer = await Client.login(edge, "writer")

    acked = {}
    nacked = []
    bad_nacks = []
    order = []
    n = 0
    pending = []
    first_nack_at = None
    while n < MAX_SENDS and (first_nack_at is None or n < first_nack_at + AFTER_FIRST_NACK):
        msg_id = "f%d" % n
        n += 1
        order.append(msg_id)
        await writer.send_msg(CONV, msg_id, body=BODY, wait=False)
        pending.append(msg_id)
        if len(pending) < WINDOW:
            continue
        reply = await writer.recv_reply(CONV, pending.pop(0))
        if reply["t"] == "ack":
            acked[reply["id"]] = reply["seq"]
        else:
            nacked.append(reply["id"])
            if first_nack_at is None:
                first_nack_at = n
            if reply.get("code") != "unavailable" or reply.get("retry") is not True \
                    or not isinstance(reply.get("msg"), str):
                bad_nacks.append(reply)
    for msg_id in pending:
        reply = await writer.recv_reply(CONV, msg_id)
        if reply["t"] == "ack":
            acked[reply["id"]] = reply["seq"]
        else:
            nacked.append(reply["id"])
            if reply.get("code") != "unavailable" or reply.get("retry") is not True:
                bad_nacks.append(reply)
    assert nacked, "the store never filled: %d sends of %d bytes all acked with --max-map-bytes %d" % (
        n, len(BODY["text"]), SMALL_MAP)
    assert not bad_nacks, "protocol.md Sending: a full store is 'store busy': nack with " \
        "retry:true (code unavailable expected); got %s" % bad_nacks[:3]
    assert acked, "nothing was acked before the store filled; pick a bigger SMALL_MAP"

    # Every ack is backed by a stored message; no nacked message was stored.
    reader = await Client.login(edge, "reader")
    stored = await reader.hist_all(CONV)
    stored_ids = [m["id"] for m in stored]
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1)), "seqs not dense"
    assert {m["id"]: m["seq"] for m in stored} == acked, \
        "protocol.md: ack only after a durable commit; acked %d, stored %d; acked-not-stored %s; " \
        "stored-not-acked %s" % (len(acked), len(stored), sorted(set(acked) - set(stored_ids))[:5],
                                 sorted(set(stored_ids) - set(acked))[:5])
    assert not set(nacked) & set(stored_ids), "nacked messages were stored: %s" % (
        sorted(set(nacked) & set(stored_ids))[:5])
    # The watcher was sent exactly the stored messages, in order.
    seen = []
    while len(seen) < len(stored):
        seen.append((await watcher.recv_type("msg", conv=CONV))["id"])
    await watcher.barrier()
    extra = watcher.take_msgs(CONV)
    assert seen == stored_ids and not extra, "fanout differs from the store: extra %s" % (
        [m["id"] for m in extra][:5],)

    # The node keeps serving reads (and a repeat of a stored id needs no space) while full.
    status, _, _ = edge.http_get("/healthz")
    assert status == 200, "/healthz while the store is full: %s" % status
    late = await Client.login(edge, "late")
    replay = []
    after = 0
    while True:
        msgs, subd = await late.sub(CONV, after=after)
        replay += msgs
        after = msgs[-1]["seq"] if msgs else after
        if not subd["more"]:
            break
    assert [m["id"] for m in replay] == stored_ids, "replay while full differs from hist"
    page = await late.hist(CONV, before=3, limit=2)
    assert [m["seq"] for m in page["msgs"]] == [1, 2], page
    first_id = stored_ids[0]
    again = await late.send_msg(CONV, first_id, body=BODY)
    assert again["t"] == "ack" and again.get("dup") is True and again["seq"] == 1, \
        "protocol.md: a repeated (conv,id) acks dup:true with its original seq (no new write " \
        "needed, even when full); got %s" % again
    for c in (watcher, writer, reader, late):
        await c.close()

    # Restart on the same data with room to grow: the refused sends can be resent, once each.
    code = edge.terminate()
    assert code == 0, "SIGTERM with a full store: exit %r\n%s" % (code, edge.stderr_tail())
    edge.restart(extra_args=["--max-map-bytes", str(BIG_MAP)])
    client = await Client.login(edge, "writer")
    assert await client.hist_all(CONV) == stored, "stored messages changed across the restart"
    head = len(stored)
    replies = await client.send_many(CONV, nacked, body_of=lambda _: BODY, window=WINDOW)
    for i, msg_id in enumerate(nacked):
        reply = replies[msg_id]
        assert reply["t"] == "ack" and not reply.get("dup"), \
            "resending a nacked message after growing the map: %s" % reply
        assert reply["seq"] == head + i + 1, reply
    replies = await client.send_many(CONV, nacked, body_of=lambda _: BODY, window=WINDOW)
    for i, msg_id in enumerate(nacked):
        assert replies[msg_id].get("dup") is True and replies[msg_id]["seq"] == head + i + 1, \
            replies[msg_id]
    final = await client.hist_all(CONV)
    counts = collections.Counter(m["id"] for m in final)
    assert all(c == 1 for c in counts.values()), [i for i, c in counts.items() if c > 1]
    assert set(counts) == set(acked) | set(nacked)
    assert [m["seq"] for m in final] == list(range(1, len(final) + 1))
    await client.close()
