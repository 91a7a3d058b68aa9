# Every binary's command line from the outside: --help prints the usage and exits 0, an unknown
# flag prints the usage and exits 2 (docs/operations.md: any bad argument exits 2). A binary
# that ignored its arguments would start serving instead: the timeout turns that into a failure.
import os
import subprocess

import pytest

CLI_TIMEOUT = 20  # stops a binary that started serving instead of answering; not a timing claim

# name, where it is built, arguments that are otherwise valid (so the unknown flag is the only
# problem); "{tmp}" is a scratch directory.
BINARIES = [
    ("waymark-edge", "edge", ["--data", "{tmp}/data"]),
    ("waymark-bench", "bench", ["ingest", "--port", "1"]),
    ("waymark-bench-echo", "bench", ["--listen", "127.0.0.1:0"]),
    ("waymark-fsync-probe", "bench", ["{tmp}"]),
]


@pytest.fixture
def binary(request, edge_binary, bench_dir, tmp_path):
    """(path, otherwise valid arguments) of one entry of BINARIES."""
    name, where, args = request.param
    path = edge_binary if where == "edge" else os.path.join(bench_dir, name)
    if not os.access(path, os.X_OK):
        pytest.skip("%s is not built (%s)" % (name, path))
    return path, [a.replace("{tmp}", str(tmp_path)) for a in args]


def run(path, args):
    try:
        return subprocess.run([path] + args, capture_output=True, text=True, timeout=CLI_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as err:
        raise AssertionError("%s %s did not exit within %ss (did it start serving?)"
                             % (os.path.basename(path), " ".join(args), CLI_TIMEOUT)) from err


def ids(entry):
    return entry[0]


@pytest.mark.parametrize("binary", BINARIES, ids=ids, indirect=True)
def test_help_prints_usage_and_exits_0(binary):
    path, _ = binary
    proc = run(path, ["--help"])
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Usage:" in proc.stdout, proc.stdout[-2000:]
    assert "--help" in proc.stdout


@pytest.mark.parametrize("binary", BINARIES, ids=ids, indirect=True)
def test_unknown_flag_prints_usage_and_exits_2(binary):
    path, valid_args = binary
    proc = run(path, valid_args + ["--no-such-flag"])
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "--no-such-flag" in proc.stderr, proc.stderr[-2000:]
    assert "Usage:" in proc.stderr, proc.stderr[-2000:]
