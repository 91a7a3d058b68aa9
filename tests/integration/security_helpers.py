# Helpers for the outside security tests (docs/security.md): secrets files, HS256 tokens minted
# with PyJWT (and hand-crafted bad ones), a JWT-mode edge, and the checks every refusal shares.
# Written from docs/security.md and shared/protocol.md alone; nothing here comes from the edge.
import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets as _secrets
import signal
import subprocess
import tempfile
import time

import jwt  # PyJWT

from conftest import Client, Closed, Edge, RECV_TIMEOUT, START_TIMEOUT, STOP_TIMEOUT, short

FORBIDDEN_MSG = 'conv: no access to "%s"'


# ----------------------------------------------------------------------------------------------
# Secrets and tokens

def new_secret():
    """What docs/security.md tells operators to use: 32 random bytes as 64 hex chars."""
    return _secrets.token_hex(32)


def write_secrets(path, lines):
    """One secret per line (docs/security.md "Secrets file"). Written to a temp name and renamed,
    so a SIGHUP never reads a half-written file."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
    os.replace(tmp, path)


def claims(sub="alice", tnt="acme", convs=("*",), exp_in=3600, **extra):
    """A claim set; exp in seconds from now (RFC 7519). extra overrides or adds claims;
    a value of DROP removes that claim."""
    body = {"sub": sub, "tnt": tnt, "exp": int(time.time()) + exp_in,
            "convs": list(convs) if isinstance(convs, (list, tuple)) else convs}
    body.update(extra)
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()


def mint(secret, sub="alice", tnt="acme", convs=("*",), exp_in=3600, alg="HS256", **extra):
    """A token signed by PyJWT."""
    return jwt.encode(claims(sub, tnt, convs, exp_in, **extra), secret, algorithm=alg)


def b64url(data):
    if not isinstance(data, bytes):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def craft(header, payload, secret=None, digest=hashlib.sha256):
    """A JWT assembled by hand: base64url(header).base64url(payload).signature, where the
    signature is HMAC(digest) with `secret`, or empty when secret is None (alg:none style)."""
    signing_input = b64url(header) + "." + b64url(payload)
    if secret is None:
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + b64url(sig)


# ----------------------------------------------------------------------------------------------
# A JWT-mode edge

class SecretsFile:
    """A secrets file; in `directory` when given, else in its own temp dir removed by cleanup()."""

    def __init__(self, lines, directory=None):
        self._dir = None
        if directory is None:
            self._dir = tempfile.TemporaryDirectory(prefix="waymark-secrets-")
            directory = self._dir.name
        self.path = os.path.join(str(directory), "secrets")
        self.write(lines)

    def write(self, lines):
        write_secrets(self.path, lines)

    def cleanup(self):
        if self._dir is not None:
            self._dir.cleanup()


def jwt_edge(edge_factory, tmp_path, secret_lines, extra_args=(), **kwargs):
    """Start an edge WITHOUT --dev, verifying tokens with a secrets file of `secret_lines` in
    pytest's tmp_path. Returns (edge, SecretsFile); edge_factory stops the edge."""
    sf = SecretsFile(secret_lines, tmp_path)
    edge = edge_factory(extra_args=["--auth-secret-file", sf.path] + list(extra_args), dev=False,
                        **kwargs)
    return edge, sf


class ModuleJwtEdge:
    """A JWT-mode edge for a whole module (like conftest's shared_edge), with its secrets file."""

    def __init__(self, binary, secret_lines, extra_args=()):
        self.sf = SecretsFile(secret_lines)
        self._data = tempfile.TemporaryDirectory(prefix="waymark-it-")
        self.edge = Edge(binary, self._data.name,
                         ["--auth-secret-file", self.sf.path] + list(extra_args), dev=False)

    def start(self):
        self.edge.start()
        return self.edge

    def stop(self):
        code = self.edge.terminate()
        self._data.cleanup()
        self.sf.cleanup()
        assert code == 0, "SIGTERM exit code %r (None = not within %ss)\n%s" % (
            code, STOP_TIMEOUT, self.edge.stderr_tail())


def is_audit_log(line, event):
    """A JSON log line of an audit record (docs/security.md Audit: logged as JSON lines with
    "audit":true). The record's `event` may sit in the line's `event` field or, when the log
    line's own `event` is a generic one such as "audit", in `kind`."""
    return line.get("audit") is True and event in (line.get("event"), line.get("kind"))


def sighup(edge):
    edge.proc.send_signal(signal.SIGHUP)


# ----------------------------------------------------------------------------------------------
# Sessions

async def login(edge, token, subs=None, rid=None):
    """Open a socket and say hello with `token`; fails the test unless welcome arrives."""
    client = await Client.open(edge)
    frame = {"t": "hello", "token": token}
    if subs is not None:
        frame["subs"] = subs
    if rid is not None:
        frame["rid"] = rid
    await client.send(frame)
    reply = await client.recv_match(lambda f: f.get("t") in ("welcome", "err", "bye"),
                                    what="welcome")
    assert reply["t"] == "welcome", "hello with a valid token answered with %s" % reply
    client.welcome = reply
    client.user = reply.get("user")
    return client


async def try_hello(edge, token, timeout=RECV_TIMEOUT):
    """hello with `token`; returns (client, first reply: welcome or err). Never raises on a
    close: an err that arrived before the close is still returned."""
    client = await Client.open(edge)
    await client.send({"t": "hello", "token": token})
    try:
        reply = await client.recv_match(lambda f: f.get("t") in ("welcome", "err", "bye"), timeout,
                                        what="welcome or err")
    except Exception as err:  # Closed without any reply
        reply = {"t": "<closed>", "detail": str(err)}
    return client, reply


async def expect_unauthorized(edge, token, secret_material=(), what="token"):
    """docs/security.md Refusals: err{code:"unauthorized", msg:"token: <what>"} then close 4001;
    the msg never echoes secret material."""
    client, reply = await try_hello(edge, token)
    try:
        assert reply.get("t") == "err" and reply.get("code") == "unauthorized", \
            "%s: hello should get err unauthorized, got %s" % (what, short(reply))
        msg = reply.get("msg")
        assert isinstance(msg, str) and msg.startswith("token:"), \
            "%s: security.md says msg is \"token: <what>\", got %r" % (what, msg)
        for s in secret_material:
            assert s not in msg, "%s: err msg echoes secret material: %r" % (what, msg)
        code, _ = await client.wait_closed()
        assert code == 4001, "%s: close code %r, want 4001 after err unauthorized" % (what, code)
        return reply
    finally:
        await client.close()


async def accepted(edge, token):
    """True when hello with `token` is welcomed (the socket is closed again), False on err."""
    client, reply = await try_hello(edge, token)
    await client.close()
    if reply.get("t") == "welcome":
        return True
    assert reply.get("t") == "err" and reply.get("code") == "unauthorized", \
        "hello answered with neither welcome nor err unauthorized: %s" % short(reply)
    return False


async def poll_until(cond, timeout=10.0, interval=0.1, what="condition"):
    """Await cond() (an async callable returning bool) until true; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        if await cond():
            return
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %ss" % (what, timeout))
        await asyncio.sleep(interval)


async def expect_forbidden(client, frame, conv):
    """Send `frame` (given a fresh rid) naming a conversation outside the token's convs; the
    reply must be err forbidden (nack forbidden retry:false for send) naming it and echoing rid."""
    rid = client.next_rid()
    frame = dict(frame, rid=rid)
    await client.send(frame)
    reply = await client.recv_match(lambda f: f.get("rid") == rid, what="reply to %s" % frame)
    if frame["t"] == "send":
        assert reply.get("t") == "nack" and reply.get("code") == "forbidden", \
            "security.md Permissions: %s should get nack forbidden, got %s" % (frame, reply)
        assert reply.get("retry") is False, "forbidden nack must be retry:false: %s" % reply
        assert reply.get("conv") == conv and reply.get("id") == frame["id"], reply
    else:
        assert reply.get("t") == "err" and reply.get("code") == "forbidden", \
            "security.md Permissions: %s should get err forbidden, got %s" % (frame, reply)
    assert reply.get("msg") == FORBIDDEN_MSG % conv, \
        "security.md: msg should be %r, got %r" % (FORBIDDEN_MSG % conv, reply.get("msg"))
    return reply


async def flood_until_closed(client, limit=600):
    """Send pings one at a time, each waiting for its answer (pong or err), until the edge closes
    the socket or `limit` frames were sent; returns the answers taken from the inbox. Lock-step so that the
    edge has read everything we sent when it closes: a close with unread input makes the kernel
    answer with RST, and an RST may discard the bye and close frame before we read them."""
    answers = []
    try:
        for i in range(limit):
            rid = "flood-%d" % i
            await client.send({"t": "ping", "rid": rid})
            answers.append(await client.recv_match(lambda f, rid=rid: f.get("rid") == rid or f.get("t") == "bye",
                                    what="answer to %s" % rid))
            if any(f.get("t") == "bye" for f in client.inbox + answers):
                break
    except (Closed, OSError):
        pass
    return answers


def run_edge_expect_exit(binary, args, timeout=START_TIMEOUT):
    """Run waymark-edge with `args` and return (exit code, stderr text). A process that logs
    'listening' (it started when it should have refused) or is still running after `timeout` is
    killed and reported as None."""
    with tempfile.TemporaryDirectory(prefix="waymark-it-") as tmp:
        full = [binary, "--listen", "127.0.0.1:0", "--data", os.path.join(tmp, "data")] + list(args)
        err_path = os.path.join(tmp, "stderr.txt")
        with open(err_path, "wb") as err_file:
            proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err_file)
        deadline = time.monotonic() + timeout
        code = None
        while True:
            code = proc.poll()
            if code is not None:
                break
            with open(err_path, "rb") as f:
                started = b'"listening"' in f.read()
            if started or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                code = None
                break
            time.sleep(0.05)
        with open(err_path, "rb") as f:
            return code, f.read().decode("utf-8", "replace")
