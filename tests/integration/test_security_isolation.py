# Outside tests of docs/security.md "Tenant isolation": tenant A's and tenant B's conversation of
# the same name share nothing: not a message (live, replay or hist), not a head, not a read
# cursor, not a receipt, not presence, not typing; the same message id is stored in each.
# Both tenants have a user called "alice" with convs ["*"], so nothing but the tenant separates
# them. Each test uses its own conversation name on one module-wide JWT edge.
import pytest

from security_helpers import ModuleJwtEdge, login, mint, new_secret

SECRET = new_secret()
A, B = "acme", "globex"


@pytest.fixture(scope="module")
def iso_edge(edge_binary):
    shared = ModuleJwtEdge(edge_binary, [SECRET])
    try:
        yield shared.start()
    finally:
        shared.stop()


async def user(edge, tenant, sub="alice"):
    return await login(edge, mint(SECRET, sub=sub, tnt=tenant, convs=["*"]))


async def close_all(*clients):
    for c in clients:
        await c.close()


def seqs(msgs):
    return [m["seq"] for m in msgs]


async def no_frames(client, pred, why):
    """Everything the edge queued for `client` has arrived after a ping round trip; then no
    frame may match pred."""
    await client.barrier()
    leaked = client.take(pred)
    assert not leaked, "tenant isolation: %s; got %s" % (why, leaked)


async def test_sends_never_reach_other_tenant(iso_edge):
    conv = "ops"
    a = await user(iso_edge, A)
    b_live = await user(iso_edge, B)
    try:
        await b_live.sub(conv, after=0)
        await a.sub(conv, after=0)
        for i in range(1, 4):
            ack = await a.send_msg(conv, "a-%d" % i, body={"text": "acme secret %d" % i})
            assert ack["t"] == "ack" and ack["seq"] == i, ack
        a_msgs = []
        for _ in range(3):
            a_msgs.append(await a.recv_type("msg", conv=conv))
        assert seqs(a_msgs) == [1, 2, 3], "control: tenant A's own subscriber gets its messages"
        await no_frames(b_live, lambda f: f.get("t") == "msg", "A's live sends reached B")

        # Replay, head, read cursor and history on a fresh B connection.
        b2 = await user(iso_edge, B)
        try:
            replay, subd = await b2.sub(conv, after=0)
            assert replay == [], "A's messages replayed to B: %s" % replay
            assert subd["head"] == 0 and subd["read"] == 0, \
                "B's subd.head/read reflect A's conversation: %s" % subd
            assert subd["more"] is False, subd
            page = await b2.hist(conv)
            assert page["msgs"] == [] and page.get("more") is False, \
                "A's messages in B's hist: %s" % page
            page = await b2.hist(conv, after=0)
            assert page["msgs"] == [], "A's messages in B's hist after=0: %s" % page
            page = await b2.hist(conv, before=3)
            assert page["msgs"] == [], "A's messages in B's hist before=3: %s" % page

            # B's own first message is seq 1 of B's conversation, not seq 4 of A's.
            ack = await b2.send_msg(conv, "b-1", body={"text": "globex"})
            assert ack["t"] == "ack" and ack["seq"] == 1 and not ack.get("dup"), \
                "B's first message must be seq 1 in B's conversation: %s" % ack
            got = await b_live.recv_type("msg", conv=conv)
            assert got["seq"] == 1 and got["body"] == {"text": "globex"}, got
            await no_frames(a, lambda f: f.get("t") == "msg", "B's send reached A")
            page = await a.hist(conv)
            assert seqs(page["msgs"]) == [1, 2, 3] and \
                [m["body"]["text"] for m in page["msgs"]] == ["acme secret 1", "acme secret 2",
                                                             "acme secret 3"], page
            _, a_subd = await a.sub(conv)
            assert a_subd["head"] == 3, a_subd
        finally:
            await b2.close()
    finally:
        await close_all(a, b_live)


async def test_same_message_id_is_stored_once_per_tenant(iso_edge):
    conv = "dup-ops"
    a = await user(iso_edge, A)
    b = await user(iso_edge, B)
    try:
        ack_a = await a.send_msg(conv, "same-id-1", body={"from": "acme"})
        ack_b = await b.send_msg(conv, "same-id-1", body={"from": "globex"})
        for ack in (ack_a, ack_b):
            assert ack["t"] == "ack" and ack["seq"] == 1 and ack.get("dup", False) is False, \
                "the same id in another tenant is a new message (dup:false, seq 1): %s" % ack
        # A real duplicate inside a tenant is still a duplicate (the id index works).
        again = await a.send_msg(conv, "same-id-1", body={"from": "acme"})
        assert again["t"] == "ack" and again["seq"] == 1 and again.get("dup") is True, again
        page_a = await a.hist(conv)
        page_b = await b.hist(conv)
        assert [m["body"] for m in page_a["msgs"]] == [{"from": "acme"}], page_a
        assert [m["body"] for m in page_b["msgs"]] == [{"from": "globex"}], page_b
    finally:
        await close_all(a, b)


async def test_receipts_and_read_cursor_do_not_cross_tenants(iso_edge):
    conv = "rc-ops"
    a = await user(iso_edge, A)
    a_watch = await user(iso_edge, A, sub="bob")
    b = await user(iso_edge, B)  # the same user name "alice", in tenant B
    try:
        for i in range(1, 4):
            assert (await a.send_msg(conv, "m%d" % i))["seq"] == i
        ack = await b.send_msg(conv, "m1")  # B's conversation has a head too, so rcpt seq 1 is valid
        assert ack["seq"] == 1, ack
        await a_watch.sub(conv)
        await b.sub(conv)
        await a.send({"t": "rcpt", "conv": conv, "seq": 3, "kind": "read"})
        seen = await a_watch.recv_type("rcpt", conv=conv)
        assert seen["user"] == "alice" and seen["seq"] == 3, "control: A's subscriber sees it"
        await no_frames(b, lambda f: f.get("t") == "rcpt", "A's receipt was fanned out to B")
        b2 = await user(iso_edge, B)
        try:
            _, subd = await b2.sub(conv)
            assert subd["read"] == 0 and subd["head"] == 1, \
                "alice@B's read cursor/head show alice@A's: %s" % subd
        finally:
            await b2.close()
        a2 = await user(iso_edge, A)
        try:
            _, subd = await a2.sub(conv)
            assert subd["read"] == 3 and subd["head"] == 3, "control: A's cursor: %s" % subd
        finally:
            await a2.close()
    finally:
        await close_all(a, a_watch, b)


async def test_presence_does_not_cross_tenants(iso_edge):
    conv = "pr-ops"
    a_watch = await user(iso_edge, A, sub="watcher")
    b_watch = await user(iso_edge, B, sub="watcher")
    try:
        await a_watch.sub(conv)
        await b_watch.sub(conv)
        a_bob = await user(iso_edge, A, sub="bob")
        _, subd = await a_bob.sub(conv)
        assert sorted(subd["present"]) == ["bob", "watcher"], subd
        on = await a_watch.recv_type("presence", conv=conv)
        assert on["user"] == "bob" and on["on"] is True, "control: A sees A's presence: %s" % on
        await no_frames(b_watch, lambda f: f.get("t") == "presence",
                        "B got presence of A's user")
        b_carol = await user(iso_edge, B, sub="carol")
        try:
            _, b_subd = await b_carol.sub(conv)
            assert sorted(b_subd["present"]) == ["carol", "watcher"], \
                "B's subd.present lists A's users: %s" % b_subd
        finally:
            await b_carol.close()
        await a_bob.close()
        off = await a_watch.recv_type("presence", conv=conv, user="bob")
        assert off["on"] is False, off
        await no_frames(b_watch, lambda f: f.get("t") == "presence" and f.get("user") == "bob",
                        "B got A's leave")
    finally:
        await close_all(a_watch, b_watch)


async def test_typing_does_not_cross_tenants(iso_edge):
    conv = "ty-ops"
    a = await user(iso_edge, A)
    a_watch = await user(iso_edge, A, sub="bob")
    b_watch = await user(iso_edge, B, sub="bob")
    b_same_user = await user(iso_edge, B)  # alice of tenant B
    try:
        for c in (a, a_watch, b_watch, b_same_user):
            await c.sub(conv)
        await a.send({"t": "typing", "conv": conv, "on": True})
        seen = await a_watch.recv_type("typing", conv=conv)
        assert seen == {"t": "typing", "conv": conv, "user": "alice", "on": True}, \
            "control: A's subscriber sees A's typing: %s" % seen
        for c in (b_watch, b_same_user):
            await no_frames(c, lambda f: f.get("t") == "typing", "B got A's typing")
    finally:
        await close_all(a, a_watch, b_watch, b_same_user)
