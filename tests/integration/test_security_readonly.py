# Outside tests of docs/security.md "Permissions", the `read` claim: a broadcast channel
# ("news") that every reader may read and only posters may write, and a private channel
# ("board") only its members' tokens name. Each frame type naming the conversation gets what the
# table says: reading frames work with `read`, writing frames are refused as read-only (err, or
# nack retry:false for send) echoing rid, and nothing refused is stored or fanned out.
import pytest

from security_helpers import ModuleJwtEdge, login, mint, new_secret

SECRET = new_secret()
TENANT = "acme"
READ_ONLY_MSG = 'conv: "news" is read-only for this token'


@pytest.fixture(scope="module")
def channel_edge(edge_binary):
    shared = ModuleJwtEdge(edge_binary, [SECRET])
    try:
        yield shared.start()
    finally:
        shared.stop()


async def poster(edge):
    return await login(edge, mint(SECRET, sub="paula", tnt=TENANT, convs=["news", "board"]))


async def reader(edge, subs=None):
    return await login(edge, mint(SECRET, sub="rita", tnt=TENANT, convs=["team"], read=["news"]),
                       subs=subs)


async def posted(edge, count=2):
    """news holds `count` posts by paula (idempotent ids); returns paula's client, subscribed."""
    paula = await poster(edge)
    await paula.sub("news")
    for i in range(1, count + 1):
        ack = await paula.send_msg("news", "post-%d" % i)
        assert ack["t"] == "ack" and ack["seq"] == i, ack
    return paula


READS = {
    "sub": {"t": "sub", "conv": "news", "after": 0},
    "hist": {"t": "hist", "conv": "news", "limit": 10},
    "rcpt_read": {"t": "rcpt", "conv": "news", "seq": 2, "kind": "read"},
    "rcpt_delivered": {"t": "rcpt", "conv": "news", "seq": 2, "kind": "delivered"},
    "unsub": {"t": "unsub", "conv": "news"},
}
WRITES = {
    "send": {"t": "send", "conv": "news", "id": "from-rita", "body": {"text": "me too"}},
    "typing": {"t": "typing", "conv": "news", "on": True},
}


@pytest.mark.parametrize("kind", sorted(READS))
async def test_reading_frames_work_on_a_read_only_conversation(channel_edge, kind):
    paula = await posted(channel_edge)
    rita = await reader(channel_edge)
    try:
        if kind == "unsub":
            await rita.sub("news")
        rid = rita.next_rid()
        await rita.send(dict(READS[kind], rid=rid))
        await rita.barrier()
        errs = rita.take(lambda f: f.get("t") in ("err", "nack"))
        assert not errs, "%s on a conversation the read claim names: %s" % (kind, errs)
        if kind == "sub":
            msgs = rita.take(lambda f: f.get("t") == "msg")
            assert [m["id"] for m in msgs] == ["post-1", "post-2"], msgs
        elif kind == "hist":
            page = rita.take(lambda f: f.get("t") == "page")
            assert page and [m["id"] for m in page[0]["msgs"]] == ["post-1", "post-2"], page
        elif kind.startswith("rcpt"):
            # The poster sees who read (the announcement's read count comes from these).
            seen = await paula.recv_type("rcpt", conv="news", user="rita")
            assert seen["seq"] == 2 and seen["kind"] == READS[kind]["kind"], seen
    finally:
        await rita.close()
        await paula.close()


@pytest.mark.parametrize("kind", sorted(WRITES))
async def test_writing_frames_are_refused_as_read_only_and_change_nothing(channel_edge, kind):
    paula = await posted(channel_edge)
    rita = await reader(channel_edge)
    try:
        await rita.sub("news")
        await paula.barrier()
        paula.take(lambda f: True)
        rid = rita.next_rid()
        await rita.send(dict(WRITES[kind], rid=rid))
        reply = await rita.recv_match(lambda f: f.get("rid") == rid, what="reply to " + kind)
        if kind == "send":
            assert reply["t"] == "nack" and reply["code"] == "forbidden", reply
            assert reply["retry"] is False and reply["id"] == "from-rita", reply
        else:
            assert reply["t"] == "err" and reply["code"] == "forbidden", reply
        assert reply["msg"] == READ_ONLY_MSG, reply
        await paula.barrier()
        leaked = paula.take(lambda f: f.get("t") in ("msg", "typing"))
        assert not leaked, "a refused %s reached the poster: %s" % (kind, leaked)
        page = await paula.hist("news")
        assert [m["id"] for m in page["msgs"]] == ["post-1", "post-2"], page
    finally:
        await rita.close()
        await paula.close()


async def test_hello_subs_on_a_read_only_conversation_replays_it(channel_edge):
    paula = await posted(channel_edge)
    rita = await reader(channel_edge, subs=[{"conv": "news", "after": 0}])
    try:
        subd = await rita.recv_type("subd", conv="news")
        assert subd["head"] == 2, subd
        assert [m["id"] for m in rita.take_msgs("news")] == ["post-1", "post-2"]
    finally:
        await rita.close()
        await paula.close()


async def test_a_private_channel_is_closed_to_readers_of_others(channel_edge):
    paula = await poster(channel_edge)
    rita = await reader(channel_edge)
    try:
        ack = await paula.send_msg("board", "minutes-1")
        assert ack["t"] == "ack", ack
        rid = rita.next_rid()
        await rita.send({"t": "sub", "conv": "board", "after": 0, "rid": rid})
        reply = await rita.recv_match(lambda f: f.get("rid") == rid, what="reply to sub")
        assert reply["t"] == "err" and reply["code"] == "forbidden", reply
        assert reply["msg"] == 'conv: no access to "board"', reply
        assert not rita.take(lambda f: f.get("t") == "msg")
        # Her own conversation she writes.
        ack = await rita.send_msg("team", "hello-team")
        assert ack["t"] == "ack", ack
    finally:
        await rita.close()
        await paula.close()
