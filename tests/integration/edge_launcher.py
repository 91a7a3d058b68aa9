"""Starts and stops one real waymark-edge process on 127.0.0.1 for Python callers: the pytest
suite (conftest.py's fixtures) and the benchmark runner (tests/bench/run_bench.py). Standard
library only, so the runner needs neither pytest nor websockets. Not thread-safe: one caller
starts, restarts and stops an Edge."""
import asyncio
import json
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

# Bounds that stop hangs on a busy 2-core box; they are not timing assertions.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0  # protocol/brief: SIGTERM -> exit 0 within 5 s
WAIT_TIMEOUT = 10.0  # http_get and wait_log


class Edge:
    """One waymark-edge process on 127.0.0.1; stderr parsed as JSON logs.

    port 0 (the default) lets the edge pick one, read back from its "listening" log line. A fixed
    port is for restarting on the same address and for log levels that hide that line (warn,
    error): the edge is then ready once the port accepts a connection."""

    def __init__(self, binary, data_dir, extra_args=(), dev=True, tls_context=None, port=0,
                 log_level=None, start_timeout=START_TIMEOUT):
        self.binary = binary
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.dev = dev
        # An ssl.SSLContext when the edge serves TLS (--tls-cert/--tls-key in extra_args): the
        # URLs become wss:// and https:// and clients verify with this context.
        self.tls_context = tls_context
        self.listen_port = port
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.proc = None
        self.host = "127.0.0.1"
        self.port = None
        self.logs = []  # parsed JSON log lines, in order
        self.raw_logs = []  # every stderr line, for failure messages
        self._lines = queue.Queue()
        self._reader = None

    # -- lifecycle --
    def start(self):
        args = [self.binary, "--listen", "127.0.0.1:%d" % self.listen_port, "--data", self.data_dir]
        if self.dev:
            args.append("--dev")
        if self.log_level is not None:
            args += ["--log-level", self.log_level]
        args += self.extra_args
        self.logs = []
        self.raw_logs = []
        self._lines = queue.Queue()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        # A thread drains stderr continuously so the pipe never fills and blocks the edge.
        self._reader = threading.Thread(target=self._drain, args=(self.proc, self._lines),
                                        daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.proc.kill()
                raise AssertionError("edge did not log 'listening' within %ss; stderr:\n%s"
                                     % (self.start_timeout, "\n".join(self.raw_logs[-30:])))
            try:
                line = self._lines.get(timeout=min(remaining, 0.5 if self.listen_port == 0 else 0.1))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError("edge exited with %s before listening; stderr:\n%s"
                                         % (self.proc.returncode, "\n".join(self.raw_logs[-30:])))
                if self.listen_port != 0 and self._accepts(self.listen_port):
                    # Still running a moment later: it was this edge that answered, not some
                    # other process on the port it then failed to bind.
                    time.sleep(0.2)
                    if self.proc.poll() is None:
                        self.port = self.listen_port
                        return self
                continue
            if line is None:
                continue
            if line.get("event") == "listening":
                self.port = int(line["port"])
                assert line.get("host") == "127.0.0.1", line
                return self

    def _accepts(self, port):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _drain(self, proc, lines):
        for raw in proc.stderr:
            text = raw.decode("utf-8", "replace").rstrip("\n")
            self.raw_logs.append(text)
            try:
                obj = json.loads(text)
            except ValueError:
                continue
            if isinstance(obj, dict):
                self.logs.append(obj)
                lines.put(obj)
        lines.put(None)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout=STOP_TIMEOUT):
        """SIGTERM; returns the exit code, or None when the edge did not exit within `timeout`
        (it is then killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        self._reader.join(timeout=2)
        return code

    def stop(self, timeout=15):
        """terminate() for callers that only need the edge gone, whatever its exit code."""
        self.terminate(timeout)

    def kill(self):
        """SIGKILL: the crash under test. Waits for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self._reader.join(timeout=2)

    def restart(self, extra_args=None):
        if extra_args is not None:
            self.extra_args = list(extra_args)
        return self.start()

    # -- addresses --
    @property
    def ws_url(self):
        return "%s://%s:%d/ws" % ("wss" if self.tls_context else "ws", self.host, self.port)

    def http_get(self, path, timeout=WAIT_TIMEOUT):
        """(status, content-type, body bytes) of a plain HTTP GET on the edge's port."""
        url = "%s://%s:%d%s" % ("https" if self.tls_context else "http", self.host, self.port, path)
        try:
            with urllib.request.urlopen(url, timeout=timeout, context=self.tls_context) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("Content-Type", ""), err.read()

    def stored_logs(self):
        return [line for line in self.logs if line.get("event") == "stored"]

    async def wait_log(self, pred, timeout=WAIT_TIMEOUT):
        """The first JSON log line matching pred; stderr is read by a thread, so a line the edge
        wrote just before its ack may still be in flight: poll (bounded) until it shows up."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.logs):
                if pred(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError("no log line matched within %ss; tail:\n%s"
                                     % (timeout, self.stderr_tail()))
            await asyncio.sleep(0.02)

    def stderr_tail(self, n=40):
        return "\n".join(self.raw_logs[-n:])
