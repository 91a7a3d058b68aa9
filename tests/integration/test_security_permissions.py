# Outside tests of docs/security.md "Permissions": a token with convs ["ops","team-*"] may use
# "ops" and every "team-..." conversation of its tenant and nothing else. Each frame type naming
# a conversation outside convs gets forbidden (err, or nack retry:false for send) naming it and
# echoing rid, before the store is read: the answer for a conversation that exists (has messages)
# is identical to the one for a conversation that does not. Nothing forbidden is applied or
# fanned out.
import pytest

from security_helpers import (FORBIDDEN_MSG, ModuleJwtEdge, expect_forbidden, login, mint,
                              new_secret)

SECRET = new_secret()
TENANT = "acme"
CONVS = ["ops", "team-*"]
EXISTING = "secret"        # has messages in the tenant (written by an admin with convs ["*"])
MISSING = "no-such-conv"   # never used by anyone


@pytest.fixture(scope="module")
def perm_edge(edge_binary):
    shared = ModuleJwtEdge(edge_binary, [SECRET])
    try:
        yield shared.start()
    finally:
        shared.stop()


async def restricted(edge, sub="bob", subs=None, rid=None):
    return await login(edge, mint(SECRET, sub=sub, tnt=TENANT, convs=CONVS), subs=subs, rid=rid)


async def admin(edge):
    return await login(edge, mint(SECRET, sub="admin", tnt=TENANT, convs=["*"]))


async def ensure_existing(edge):
    """EXISTING has 3 messages (idempotent ids, so every test may call this)."""
    adm = await admin(edge)
    try:
        for i in range(1, 4):
            ack = await adm.send_msg(EXISTING, "seed-%d" % i)
            assert ack["t"] == "ack" and ack["seq"] == i, ack
    finally:
        await adm.close()


FRAMES = {
    "sub": lambda conv: {"t": "sub", "conv": conv},
    "sub_after_0": lambda conv: {"t": "sub", "conv": conv, "after": 0},
    "unsub": lambda conv: {"t": "unsub", "conv": conv},
    "hist": lambda conv: {"t": "hist", "conv": conv, "limit": 10},
    "hist_before": lambda conv: {"t": "hist", "conv": conv, "before": 2},
    "hist_after": lambda conv: {"t": "hist", "conv": conv, "after": 0},
    "send": lambda conv: {"t": "send", "conv": conv, "id": "probe-1", "body": {"text": "hi"}},
    "rcpt_read": lambda conv: {"t": "rcpt", "conv": conv, "seq": 1, "kind": "read"},
    "rcpt_delivered": lambda conv: {"t": "rcpt", "conv": conv, "seq": 2, "kind": "delivered"},
    "typing": lambda conv: {"t": "typing", "conv": conv, "on": True},
}


def normalized(reply, conv):
    """The reply with the conversation's name taken out, to compare two answers."""
    out = dict(reply)
    out.pop("rid", None)
    if out.get("conv") == conv:
        out["conv"] = "<conv>"
    if isinstance(out.get("msg"), str):
        out["msg"] = out["msg"].replace('"%s"' % conv, '"<conv>"')
    return out


@pytest.mark.parametrize("kind", sorted(FRAMES))
async def test_forbidden_frame_same_answer_existing_or_not(perm_edge, kind):
    await ensure_existing(perm_edge)
    bob = await restricted(perm_edge)
    try:
        on_existing = await expect_forbidden(bob, FRAMES[kind](EXISTING), EXISTING)
        on_missing = await expect_forbidden(bob, FRAMES[kind](MISSING), MISSING)
        assert normalized(on_existing, EXISTING) == normalized(on_missing, MISSING), \
            "security.md: the answer must not reveal whether a conversation exists: %s vs %s" \
            % (on_existing, on_missing)
        # Nothing else arrives for those conversations (no subd, page, msg, ack...).
        await bob.barrier()
        stray = bob.take(lambda f: f.get("conv") in (EXISTING, MISSING))
        assert not stray, "forbidden %s produced more frames: %s" % (kind, stray)
    finally:
        await bob.close()


@pytest.mark.parametrize("conv", ["team", "teams", "team_x", "opsx", "xops", "ops-1", "Ops",
                                  "TEAM-x", "op", "a-team-x"])
async def test_names_outside_convs_are_forbidden(perm_edge, conv):
    bob = await restricted(perm_edge)
    try:
        await expect_forbidden(bob, {"t": "sub", "conv": conv}, conv)
        await expect_forbidden(bob, {"t": "send", "conv": conv, "id": "n1", "body": 1}, conv)
    finally:
        await bob.close()


async def test_hello_subs_forbidden_entry(perm_edge):
    await ensure_existing(perm_edge)
    adm = await admin(perm_edge)
    try:
        await adm.sub(EXISTING)
        bob = await restricted(perm_edge, subs=[{"conv": "ops"}, {"conv": EXISTING, "after": 0},
                                                {"conv": "team-x"}, {"conv": MISSING}],
                               rid="h1")
        try:
            assert bob.welcome.get("rid") == "h1", "welcome echoes the hello's rid: %s" \
                % bob.welcome
            replies = []
            for _ in range(4):
                replies.append(await bob.recv_match(
                    lambda f: f.get("t") in ("subd", "err") or f.get("conv") in (EXISTING,
                                                                                  MISSING),
                    what="answers to hello.subs"))
            subds = sorted(f["conv"] for f in replies if f["t"] == "subd")
            errs = [f for f in replies if f["t"] == "err"]
            assert subds == ["ops", "team-x"], "allowed hello.subs entries get subd: %s" % replies
            assert len(errs) == 2, replies
            for conv in (EXISTING, MISSING):
                err = [e for e in errs if ('"%s"' % conv) in e.get("msg", "")]
                assert len(err) == 1, "one forbidden err naming %s: %s" % (conv, errs)
                err = err[0]
                assert err["code"] == "forbidden", err
                assert err["msg"] == FORBIDDEN_MSG % conv, \
                    "security.md: msg %r, got %r" % (FORBIDDEN_MSG % conv, err["msg"])
                # docs/protocol.md "Answers to hello.subs": an entry's err carries no rid (the
                # hello's rid is on the welcome). security.md's "err{..., rid}" is read as "the
                # rid of the frame, if it had one"; an entry has none.
                assert "rid" not in err, "hello.subs answers carry no rid: %s" % err
            await bob.barrier()
            stray = bob.take(lambda f: f.get("conv") in (EXISTING, MISSING))
            assert not stray, "forbidden hello.subs entry delivered frames: %s" % stray
            await adm.barrier()
            presence = adm.take(lambda f: f.get("t") == "presence")
            assert not presence, "a forbidden subscription must not announce presence: %s" \
                % presence
        finally:
            await bob.close()
    finally:
        await adm.close()


async def test_allowed_frames_on_ops_and_team_prefix(perm_edge):
    bob = await restricted(perm_edge, sub="bob")
    carol = await restricted(perm_edge, sub="carol")
    try:
        for conv in ("ops", "team-x", "team-", "team-a.b:c"):
            _, subd = await bob.sub(conv)
            await carol.sub(conv)
            ack = await bob.send_msg(conv, "ok-1", rid="s-" + conv)
            assert ack["t"] == "ack" and ack.get("rid") == "s-" + conv, ack
            msg = await carol.recv_type("msg", conv=conv)
            assert msg["id"] == "ok-1", msg
            page = await bob.hist(conv)
            assert [m["id"] for m in page["msgs"]][-1] == "ok-1", page
            await bob.send({"t": "rcpt", "conv": conv, "seq": ack["seq"], "kind": "read"})
            seen = await carol.recv_type("rcpt", conv=conv, user="bob")
            assert seen["seq"] == ack["seq"], seen
            await bob.send({"t": "typing", "conv": conv, "on": True})
            seen = await carol.recv_type("typing", conv=conv)
            assert seen["user"] == "bob", seen
            await bob.send({"t": "unsub", "conv": conv, "rid": "u-" + conv})
            await bob.barrier()
            errs = bob.take(lambda f: f.get("t") == "err")
            assert not errs, "allowed frames on %s got errors: %s" % (conv, errs)
    finally:
        await bob.close()
        await carol.close()


async def test_forbidden_frames_change_and_announce_nothing(perm_edge):
    await ensure_existing(perm_edge)
    adm = await admin(perm_edge)
    bob = await restricted(perm_edge)
    try:
        _, before = await adm.sub(EXISTING)
        await adm.barrier()
        adm.take(lambda f: True)
        for kind in ("sub", "send", "rcpt_read", "typing", "unsub", "hist"):
            await expect_forbidden(bob, FRAMES[kind](EXISTING), EXISTING)
        await adm.barrier()
        leaked = adm.take(lambda f: f.get("t") in ("typing", "presence", "rcpt", "msg"))
        assert not leaked, \
            "forbidden frames reached a subscriber of the conversation: %s" % leaked
        page = await adm.hist(EXISTING)
        assert [m["id"] for m in page["msgs"]] == ["seed-1", "seed-2", "seed-3"], \
            "a forbidden send was stored: %s" % page
        _, after = await adm.sub(EXISTING)
        assert after["head"] == before["head"] == 3, (before, after)
        assert "bob" not in after["present"], after
    finally:
        await bob.close()
        await adm.close()


async def test_empty_convs_grants_nothing(perm_edge):
    nobody = await login(perm_edge, mint(SECRET, sub="nobody", tnt=TENANT, convs=[]))
    try:
        await expect_forbidden(nobody, {"t": "sub", "conv": "ops"}, "ops")
        await expect_forbidden(nobody, {"t": "send", "conv": "ops", "id": "e1", "body": 1}, "ops")
    finally:
        await nobody.close()


async def test_star_in_another_tenant_grants_nothing_here(perm_edge):
    """convs ["*"] means every conversation of the token's own tenant only."""
    await ensure_existing(perm_edge)
    other = await login(perm_edge, mint(SECRET, sub="admin", tnt="other-co", convs=["*"]))
    try:
        replay, subd = await other.sub(EXISTING, after=0)
        assert replay == [] and subd["head"] == 0, \
            "a '*' token of another tenant sees this tenant's conversation: %s %s" % (replay, subd)
    finally:
        await other.close()
