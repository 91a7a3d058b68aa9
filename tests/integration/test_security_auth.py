# Outside tests of docs/security.md "Authentication": HS256 JWTs verified with the secrets file,
# every refusal (err unauthorized "token: ..." + close 4001), secret rotation by SIGHUP, expiry in
# the middle of a session, and the start-up refusals (exit 2). Tokens are minted with PyJWT or
# assembled by hand; the edge runs without --dev.
import asyncio
import hashlib
import time

import pytest

from security_helpers import (DROP, ModuleJwtEdge, SecretsFile, accepted, b64url, claims, craft,
                              expect_unauthorized, is_audit_log, jwt_edge, login, mint, new_secret,
                              poll_until, run_edge_expect_exit, sighup)

SECRET = new_secret()  # the one line of the module edge's secrets file
OTHER = new_secret()   # a well-formed secret the edge has never seen


@pytest.fixture(scope="module")
def auth_edge(edge_binary):
    shared = ModuleJwtEdge(edge_binary, [SECRET])
    try:
        yield shared.start()
    finally:
        shared.stop()


# ----------------------------------------------------------------------------------------------
# Accepted tokens

async def test_valid_token_welcome_user_is_sub(auth_edge):
    client = await login(auth_edge, mint(SECRET, sub="alice.k@ops-1", tnt="acme"))
    try:
        assert client.welcome["user"] == "alice.k@ops-1", \
            "protocol.md: welcome.user is the token's sub: %s" % client.welcome
        await client.barrier()  # the session works
    finally:
        await client.close()


ACCEPTED = {
    # security.md: exp above 10^11 is read as milliseconds
    "exp_in_milliseconds": lambda: mint(SECRET, exp=(int(time.time()) + 3600) * 1000),
    # nbf, if present, must not be in the future: a past one is fine
    "nbf_in_the_past": lambda: mint(SECRET, nbf=int(time.time()) - 60),
    # other claims are ignored
    "extra_claims_ignored": lambda: mint(SECRET, iat=int(time.time()), iss="issuer", aud="x",
                                         role=["admin"]),
    "empty_convs_grants_none_but_is_valid": lambda: mint(SECRET, convs=[]),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
async def test_token_accepted(auth_edge, case):
    client = await login(auth_edge, ACCEPTED[case]())
    try:
        assert client.welcome["user"] == "alice", client.welcome
    finally:
        await client.close()


# ----------------------------------------------------------------------------------------------
# Refused tokens: each gets err unauthorized ("token: ...") and close 4001

def _tampered_payload():
    head, _, sig = mint(SECRET).split(".")
    return head + "." + b64url(claims(sub="mallory")) + "." + sig


def _wrong_signature():
    head, body, _ = mint(SECRET).split(".")
    return head + "." + body + "." + b64url(hashlib.sha256(b"not the signature").digest())


REFUSED = {
    "bad_signature": _wrong_signature,
    "payload_changed_after_signing": _tampered_payload,
    "alg_none_empty_signature": lambda: craft({"alg": "none", "typ": "JWT"}, claims(), None),
    # security.md: none is refused "whatever the signature"
    "alg_none_with_valid_hmac": lambda: craft({"alg": "none", "typ": "JWT"}, claims(), SECRET),
    "alg_HS384": lambda: mint(SECRET, alg="HS384"),
    "alg_HS512": lambda: mint(SECRET, alg="HS512"),
    "alg_RS256_header_hmac_signature": lambda: craft({"alg": "RS256", "typ": "JWT"}, claims(),
                                                     SECRET),
    "alg_missing": lambda: craft({"typ": "JWT"}, claims(), SECRET),
    "unknown_secret": lambda: mint(OTHER),
    "missing_sub": lambda: mint(SECRET, sub=DROP),
    "missing_tnt": lambda: mint(SECRET, tnt=DROP),
    "missing_exp": lambda: mint(SECRET, exp=DROP),
    "missing_convs": lambda: mint(SECRET, convs=DROP),
    "sub_empty": lambda: mint(SECRET, sub=""),
    "sub_bad_char": lambda: mint(SECRET, sub="al ice"),
    "sub_too_long": lambda: mint(SECRET, sub="a" * 65),
    "sub_not_string": lambda: mint(SECRET, sub=42),
    "tnt_bad_char": lambda: mint(SECRET, tnt="ac/me"),
    "tnt_at_sign": lambda: mint(SECRET, tnt="ac@me"),  # @ is allowed in sub, not in tnt
    "tnt_empty": lambda: mint(SECRET, tnt=""),
    "tnt_too_long": lambda: mint(SECRET, tnt="t" * 65),
    "convs_not_array": lambda: mint(SECRET, convs="ops"),
    "convs_object": lambda: mint(SECRET, convs={"ops": True}),
    "convs_element_not_string": lambda: mint(SECRET, convs=["ops", 7]),
    "exp_string": lambda: mint(SECRET, exp=str(int(time.time()) + 3600)),
    "exp_not_integer": lambda: mint(SECRET, exp=int(time.time()) + 3600.5),  # "an integer"
    "expired": lambda: mint(SECRET, exp_in=-60),
    "expired_in_milliseconds": lambda: mint(SECRET, exp=(int(time.time()) - 60) * 1000),
    "nbf_in_the_future": lambda: mint(SECRET, nbf=int(time.time()) + 3600),
    "not_a_jwt": lambda: "not-a-token",
    "two_segments": lambda: ".".join(mint(SECRET).split(".")[:2]),
    "header_not_json": lambda: b64url(b"{nope") + "." + mint(SECRET).split(".", 1)[1],
    "dev_token_without_dev": lambda: "dev:alice",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_token_refused(auth_edge, case):
    await expect_unauthorized(auth_edge, REFUSED[case](), secret_material=(SECRET,), what=case)


async def test_refusal_does_not_harm_other_sessions(auth_edge):
    alice = await login(auth_edge, mint(SECRET))
    try:
        await alice.sub("ops")
        for case in ("bad_signature", "alg_none_empty_signature", "expired"):
            await expect_unauthorized(auth_edge, REFUSED[case](), what=case)
        await alice.barrier()
        ack = await alice.send_msg("ops", "after-refusals")
        assert ack["t"] == "ack", ack
    finally:
        await alice.close()


# ----------------------------------------------------------------------------------------------
# Secrets file: format, rotation by SIGHUP, a bad file on SIGHUP

async def test_secrets_file_comments_blank_lines_trailing_space_and_cr(edge_factory, tmp_path):
    s1, s2 = new_secret(), new_secret()
    edge, _ = jwt_edge(edge_factory, tmp_path,
                       ["# issued 2024-01", "", s1 + "   \r", "   ", "#" + OTHER, s2 + "\r"])
    assert await accepted(edge, mint(s1)), "a line with trailing spaces and \\r must verify"
    assert await accepted(edge, mint(s2)), "a line ending in \\r must verify"
    assert not await accepted(edge, mint(OTHER)), "a commented-out secret must not verify"


async def test_secret_exactly_32_bytes_is_accepted(edge_factory, tmp_path):
    secret = "0123456789abcdefghijklmnopqrstuv"
    assert len(secret) == 32
    edge, _ = jwt_edge(edge_factory, tmp_path, [secret])
    assert await accepted(edge, mint(secret))


async def test_rotation_by_sighup(edge_factory, tmp_path):
    s1, s2, s3 = new_secret(), new_secret(), new_secret()
    edge, sf = jwt_edge(edge_factory, tmp_path, [s1, s2])
    assert await accepted(edge, mint(s1, sub="u1")), "every line of the file verifies (line 1)"
    assert await accepted(edge, mint(s2, sub="u2")), "every line of the file verifies (line 2)"
    assert not await accepted(edge, mint(s3)), "s3 is not in the file yet"
    # A session opened with the old secret keeps running after the reload (until its exp).
    old = await login(edge, mint(s1, sub="old"))
    try:
        await old.sub("ops")
        sf.write([s2, s3])
        sighup(edge)

        async def s3_verifies():
            return await accepted(edge, mint(s3, sub="u3"))
        await poll_until(s3_verifies, timeout=10, what="token signed with the new secret accepted "
                         "after SIGHUP")
        assert not await accepted(edge, mint(s1, sub="u1")), \
            "after SIGHUP the removed secret must no longer verify"
        assert await accepted(edge, mint(s2, sub="u2")), "the kept secret still verifies"
        await old.barrier()
        ack = await old.send_msg("ops", "still-open")
        assert ack["t"] == "ack", "security.md: open sessions keep running after a reload: %s" % ack
    finally:
        await old.close()


async def test_bad_file_on_sighup_keeps_old_set(edge_factory, tmp_path):
    s1, s_new = new_secret(), new_secret()
    edge, sf = jwt_edge(edge_factory, tmp_path, [s1])
    assert await accepted(edge, mint(s1))
    sf.write([s_new, "too-short-31-bytes-xxxxxxxxxxxxx"[:31]])
    sighup(edge)
    # The failed reload is logged (security.md: both outcomes are logged and audited); wait for
    # that line so the checks below run after the edge has read the file.
    log_problem = None
    try:
        await edge.wait_log(lambda l: is_audit_log(l, "secret_reload_failed"), timeout=10)
    except AssertionError as err:
        log_problem = str(err)
        await asyncio.sleep(1.0)
    assert await accepted(edge, mint(s1)), "a bad file on SIGHUP must keep the old set"
    assert not await accepted(edge, mint(s_new)), \
        "a bad file on SIGHUP must not apply, not even its good lines"
    assert log_problem is None, \
        "security.md: a failed reload is logged (event secret_reload_failed): %s" % log_problem
    # The edge still reloads a good file afterwards.
    sf.write([s_new])
    sighup(edge)

    async def s_new_verifies():
        return await accepted(edge, mint(s_new))
    await poll_until(s_new_verifies, timeout=10, what="good file reloaded after a bad one")
    assert not await accepted(edge, mint(s1))


# ----------------------------------------------------------------------------------------------
# Expiry in the middle of a session

@pytest.mark.parametrize("unit", ["seconds", "milliseconds"])
async def test_token_expiring_mid_session_gets_bye_and_4001(edge_factory, tmp_path, unit):
    secret = new_secret()
    edge, _ = jwt_edge(edge_factory, tmp_path, [secret])
    exp = int(time.time()) + 3  # 2..3 s from now
    # exp is in seconds (RFC 7519); a value above 10^11 is read as milliseconds.
    claim = exp if unit == "seconds" else exp * 1000
    client = await login(edge, mint(secret, exp=claim))
    try:
        await client.sub("ops")
        await client.barrier()  # works before exp
        wait = max(exp - time.time(), 0) + 8.0
        bye = await client.recv_type("bye", timeout=wait)
        seen_at = time.time()
        assert bye == {"t": "bye", "reason": "token_expired", "retry_ms": [0, 1000]}, \
            "security.md Expiry: %s" % bye
        assert seen_at >= exp - 0.5, "bye came %.2f s before exp" % (exp - seen_at)
        code, _ = await client.wait_closed()
        assert code == 4001, "close code %r after bye token_expired, want 4001" % code
    finally:
        await client.close()


# ----------------------------------------------------------------------------------------------
# Start-up refusals

def test_no_dev_and_no_secret_file_exits_2(edge_binary):
    code, err = run_edge_expect_exit(edge_binary, [])
    assert code == 2, "no --dev and no --auth-secret-file: exit %r (None = it started), want 2\n%s" \
        % (code, err[-2000:])


def test_dev_with_secret_file_exits_2(edge_binary, tmp_path):
    sf = SecretsFile([new_secret()], tmp_path)
    code, err = run_edge_expect_exit(edge_binary, ["--dev", "--auth-secret-file", sf.path])
    assert code == 2, "--dev with --auth-secret-file: exit %r (None = it started), want 2\n%s" \
        % (code, err[-2000:])


@pytest.mark.parametrize("lines", [["x" * 31], [new_secret(), "y" * 31], ["# only a comment", ""],
                                   []], ids=["short", "one_good_one_short", "comments_only",
                                             "empty"])
def test_bad_secret_file_at_start_exits_2(edge_binary, tmp_path, lines):
    sf = SecretsFile(lines, tmp_path)
    code, err = run_edge_expect_exit(edge_binary, ["--auth-secret-file", sf.path])
    assert code == 2, "secrets file %r: exit %r (None = it started), want 2\n%s" \
        % (lines, code, err[-2000:])
    for line in lines:
        if len(line) >= 16:
            assert line not in err, "stderr echoes secret material"


def test_missing_secret_file_refuses_to_start(edge_binary, tmp_path):
    code, err = run_edge_expect_exit(edge_binary,
                                     ["--auth-secret-file", str(tmp_path / "does-not-exist")])
    assert code is not None and code != 0, \
        "a missing secrets file must stop the start: exit %r (None = it started)\n%s" \
        % (code, err[-2000:])
