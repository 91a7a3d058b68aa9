# Outside test of protocol.md's lagging-reader rule against the real waymark-edge: a subscriber that
# stops reading is dropped (bye, then 4008) without holding others up, and resumes losing nothing.
import socket

from conftest import Client, Closed

CONV = "firehose"
MAX_QUEUE = 65536
BODY_BYTES = 8000
WINDOW = 8


def kernel_send_buffer_max():
    """Most bytes the kernel may hold in the edge's send buffer for one socket (tcp_wmem max)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


async def resume(edge, user, cursor, attempts=20):
    """Reconnect with hello.subs from `cursor` and follow more:true to the head, as a real client
    would; a reader dropped on the way reconnects from its new cursor (bounded). Returns (every
    msg replayed, in order, and a description of each drop)."""
    replay = []
    drops = []
    for _ in range(attempts):
        back = await Client.open(edge)
        try:
            await back.hello("dev:%s" % user, subs=[{"conv": CONV, "after": cursor}])
            while True:
                subd = await back.recv_type("subd", conv=CONV)
                got = back.take_msgs(CONV)
                replay += got
                cursor = got[-1]["seq"] if got else cursor
                if not subd.get("more"):
                    break
                await back.send({"t": "sub", "conv": CONV, "after": cursor})
        except Closed as closed:
            got = back.take_msgs(CONV)
            replay += got
            cursor = got[-1]["seq"] if got else cursor
            drops.append("closed %s %r after %d replayed msgs (seqs %s..%s); welcome %s; bye %s" % (
                closed.code, closed.reason, len(got), got[0]["seq"] if got else None, cursor,
                "received" if back.welcome else "NEVER RECEIVED",
                [f for f in back.inbox if f.get("t") == "bye"]))
            continue
        await back.close()
        break
    return replay, drops


async def test_lagging_reader_dropped_others_unharmed_resume_loses_nothing(edge_factory):
    edge = edge_factory(extra_args=["--max-queue", str(MAX_QUEUE)])
    # Enough bytes to fill the stalled socket's receive buffer, the edge's kernel send buffer and
    # the edge's own queue bound, with room to spare: the edge must have dropped the reader by then.
    total = (kernel_send_buffer_max() + MAX_QUEUE + 512 * 1024) // BODY_BYTES + 1

    # The slow subscriber: a tiny receive buffer, and once subscribed we stop reading altogether
    # (the transport is paused), so TCP backs up into the edge.
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((edge.host, edge.port))
    slow = await Client.open(edge, sock=raw, max_queue=1, read_limit=4096)
    await slow.hello("dev:sloth")
    await slow.sub(CONV)
    fast = await Client.login(edge, "hare")
    await fast.sub(CONV)
    slow.ws.transport.pause_reading()

    sender = await Client.login(edge, "source")
    body = {"text": "z" * BODY_BYTES}
    fast_seqs = []
    sent = 0
    while sent < total:
        ids = ["m%d" % i for i in range(sent, min(total, sent + WINDOW))]
        for msg_id in ids:
            await sender.send_msg(CONV, msg_id, body=body, wait=False)
        for msg_id in ids:
            ack = await sender.recv_reply(CONV, msg_id)
            assert ack["t"] == "ack", "send refused while a reader lags: %s" % ack
        # The fast subscriber keeps up within one window: the stalled one does not hold it back.
        for msg_id in ids:
            msg = await fast.recv_type("msg", conv=CONV, id=msg_id)
            fast_seqs.append(msg["seq"])
        fast.take(lambda f: f.get("t") == "presence")
        sent += len(ids)
    assert fast_seqs == list(range(1, total + 1)), \
        "the reading subscriber must get every message in order: %s" % fast_seqs[:20]

    # Now read whatever the edge managed to send the stalled socket before dropping it.
    slow.ws.transport.resume_reading()
    code, reason = await slow.wait_closed(timeout=30)
    problems = []
    if code != 4008:
        problems.append("close code %s %r; protocol.md Leaving: a lagging reader is closed with "
                        "4008 (after %d msgs of %d bytes with --max-queue %d)" % (
                            code, reason, total, BODY_BYTES, MAX_QUEUE))
    byes = [f for f in slow.inbox if f.get("t") == "bye"]
    if not byes:
        problems.append("no bye before the close; protocol.md: before the edge closes a socket on "
                        "purpose (… a lagging reader …) it sends bye")
    else:
        bye = byes[-1]
        window = bye.get("retry_ms")
        if not isinstance(bye.get("reason"), str) or not (
                isinstance(window, list) and len(window) == 2
                and all(isinstance(v, int) for v in window) and 0 <= window[0] <= window[1]):
            problems.append("bad bye %s: want reason string, retry_ms [min,max]" % bye)
        if slow.inbox[-1] is not bye:
            problems.append("frames after bye: %s" % slow.inbox[slow.inbox.index(bye) + 1:][:3])
    seen = [f["seq"] for f in slow.inbox if f.get("t") == "msg" and f.get("conv") == CONV]
    if seen != list(range(1, len(seen) + 1)):
        gaps = [(a, b) for a, b in zip(seen, seen[1:]) if b != a + 1]
        problems.append("protocol.md Subscribing: on one connection msg frames arrive in seq order "
                        "with no gap; the dropped reader got %d msgs with jumps %s (last %s)" % (
                            len(seen), gaps[:5], seen[-3:]))

    # Reconnect and resume from the cursor the client holds: the last seq it received. This
    # reader reads as fast as it can; if it is dropped anyway, it reconnects from its new cursor
    # (bounded), as a real client would, and the drops are reported.
    replay, resume_drops = await resume(edge, "sloth", seen[-1] if seen else 0)
    if resume_drops:
        problems.append("a resuming reader that reads promptly was dropped during its replay "
                        "(protocol.md: 4008 is for a lagging reader): %s" % resume_drops[:5])
    replay_seqs = [m["seq"] for m in replay]
    start = seen[-1] if seen else 0
    if replay_seqs != list(range(start + 1, total + 1)):
        jumps = [(a, b) for a, b in zip(replay_seqs, replay_seqs[1:]) if b != a + 1]
        problems.append("resume after cursor %d replayed %s..%s (%d msgs, jumps %s), want %d..%d"
                        % (start, replay_seqs[:1], replay_seqs[-1:], len(replay_seqs), jumps[:5],
                           start + 1, total))
    have = sorted(set(seen) | set(replay_seqs))
    missing = sorted(set(range(1, total + 1)) - set(have))
    if missing:
        problems.append("LOST after drop + resume from the client's cursor: seqs %s (%d msgs)"
                        % (missing[:20], len(missing)))
    await fast.close()
    await sender.close()
    assert not problems, "\n".join(problems)


async def test_prompt_reader_replaying_more_than_the_queue_bound(edge_factory):
    """A replay larger than --max-queue, to a reader that reads as fast as it can: protocol.md's
    guarantee (seq order, no gap, no repeat) holds, and the reader ends with every message."""
    edge = edge_factory(extra_args=["--max-queue", str(MAX_QUEUE)])
    writer = await Client.login(edge, "source")
    count = 60  # 60 x 8 KB: several times the 64 KiB queue bound
    replies = await writer.send_many(CONV, ["b%d" % i for i in range(count)],
                                     body_of=lambda _: {"text": "y" * BODY_BYTES}, window=WINDOW)
    assert all(r["t"] == "ack" for r in replies.values()), "store refused a send"
    await writer.close()

    reader = await Client.login(edge, "reader")
    problems = []
    await reader.send({"t": "sub", "conv": CONV, "after": 0})
    subd = closed = None
    try:
        subd = await reader.recv_type("subd", conv=CONV)
        await reader.barrier()  # still open once the replay is through?
    except Closed as err:
        closed = err
    got = [m["seq"] for m in reader.take_msgs(CONV)]
    if got != list(range(1, len(got) + 1)):
        problems.append("protocol.md Subscribing: replay from after=0 must start at 1 with no gap; "
                        "got %d msgs %s..%s, jumps %s" % (
                            len(got), got[:1], got[-1:],
                            [(a, b) for a, b in zip([0] + got, got) if b != a + 1][:5]))
    if closed is not None:
        problems.append("a reader reading promptly was closed %s %r during a %d-byte replay "
                        "(--max-queue %d); protocol.md reserves 4008 for lagging/abusive "
                        "readers" % (closed.code, closed.reason, count * BODY_BYTES, MAX_QUEUE))
    if subd is not None and subd.get("more") is False and got != list(range(1, count + 1)):
        problems.append("subd said more:false (head %s) but the replay held %d msgs %s..%s: "
                        "the client believes it is caught up while missing messages" % (
                            subd.get("head"), len(got), got[:1], got[-1:]))
    await reader.close()
    # Whatever happened, resuming from the cursor the client holds must lose nothing.
    cursor = got[-1] if got else 0
    replay, drops = await resume(edge, "reader", cursor)
    have = set(got) | {m["seq"] for m in replay}
    missing = sorted(set(range(1, count + 1)) - have)
    if missing:
        problems.append("LOST for good (resumed from cursor %d; resume drops %s): seqs %s" % (
            cursor, drops[:3], missing[:20]))
    assert not problems, "\n".join(problems)
