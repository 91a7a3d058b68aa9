"""`cmake --install` lays out a deployable edge (docs/operations.md, "Installing"): the installed
waymark-edge, started from outside the source tree, serves the prefix's web app and SDK (not the
build tree's), and its systemd unit passes `systemd-analyze verify`."""
import os
import shutil
import subprocess
import tempfile

import pytest

from edge_launcher import Edge, STOP_TIMEOUT

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Appended to the installed copies: what the edge serves must be the prefix's file, not the
# identical one in the source or build tree.
MARKER = "<!-- installed-copy-marker -->"
JS_MARKER = "// installed-copy-marker"


@pytest.fixture(scope="module")
def prefix(edge_binary):
    """The build that made --edge (two levels above it), installed into a fresh prefix."""
    build = os.path.dirname(os.path.dirname(os.path.abspath(edge_binary)))
    if not os.path.isfile(os.path.join(build, "cmake_install.cmake")):
        pytest.fail("%s is not a CMake build dir (no cmake_install.cmake)" % build)
    root = tempfile.mkdtemp(prefix="waymark-install-")
    try:
        done = subprocess.run(["cmake", "--install", build, "--prefix", root],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, "cmake --install failed:\n%s\n%s" % (done.stdout, done.stderr)
        with open(os.path.join(root, "share/waymark/web/index.html"), "a") as f:
            f.write(MARKER + "\n")
        sdk_js = os.path.join(root, "share/waymark/sdk/waymark.js")
        if os.path.isfile(sdk_js):
            with open(sdk_js, "a") as f:
                f.write(JS_MARKER + "\n")
        yield root, done.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def installed_edge(prefix):
    """P/bin/waymark-edge --dev with no --web/--sdk, started with a cwd outside the source tree."""
    root, _ = prefix
    data = tempfile.mkdtemp(prefix="waymark-install-data-")
    elsewhere = tempfile.mkdtemp(prefix="waymark-install-cwd-")
    here = os.getcwd()
    edge = Edge(os.path.join(root, "bin", "waymark-edge"), data)
    try:
        os.chdir(elsewhere)  # Edge's Popen inherits it
        try:
            edge.start()
        finally:
            os.chdir(here)
        yield edge
        code = edge.terminate()
        assert code == 0, "SIGTERM exit code %r (None = not within %ss)\n%s" % (
            code, STOP_TIMEOUT, edge.stderr_tail())
    finally:
        if edge.alive():
            edge.kill()
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(elsewhere, ignore_errors=True)


def test_the_layout(prefix):
    root, _ = prefix
    for path in ["bin/waymark-edge", "share/waymark/web/index.html",
                 "lib/systemd/system/waymark-edge.service", "lib/sysusers.d/waymark.conf",
                 "share/waymark/examples/waymark-edge.env"]:
        assert os.path.isfile(os.path.join(root, path)), path
    assert os.access(os.path.join(root, "bin/waymark-edge"), os.X_OK)
    unit = open(os.path.join(root, "lib/systemd/system/waymark-edge.service")).read()
    # The unit names the prefix given to --install, not the configured one.
    assert "ExecStart=%s/bin/waymark-edge " % root in unit
    assert "EnvironmentFile=%s/etc/waymark/waymark-edge.env" % root in unit
    for line in ["StateDirectory=waymark", "Restart=on-failure", "KillSignal=SIGTERM"]:
        assert line in unit.splitlines(), line
    env = open(os.path.join(root, "share/waymark/examples/waymark-edge.env")).read()
    assert "#WAYMARK_UPSTREAM_ARGS=--upstream ws://root.example:8080/ws --upstream-token-file" in env
    assert "@" not in env.replace("root.example", ""), "an unconfigured @VAR@ is left"


def test_serves_the_installed_web_app(installed_edge, prefix):
    root, _ = prefix
    status, ctype, body = installed_edge.http_get("/")
    assert status == 200 and ctype.startswith("text/html"), (status, ctype)
    expected = open(os.path.join(root, "share/waymark/web/index.html"), "rb").read()
    assert body == expected
    assert MARKER.encode() in body


def test_serves_the_installed_sdk(installed_edge, prefix):
    root, install_output = prefix
    sdk_js = os.path.join(root, "share/waymark/sdk/waymark.js")
    if not os.path.isfile(sdk_js):
        assert "not installing the browser SDK" in install_output, install_output
        pytest.skip("the build saw no WASM SDK (WAYMARK_SDK_DIST), so none was installed")
    for name in ["waymark.d.ts", "waymark_core.js", "waymark_core.wasm"]:
        assert os.path.isfile(os.path.join(root, "share/waymark/sdk", name)), name
    status, _, body = installed_edge.http_get("/sdk/waymark.js")
    assert status == 200
    assert body == open(sdk_js, "rb").read() and JS_MARKER.encode() in body
    status, ctype, _ = installed_edge.http_get("/sdk/waymark_core.wasm")
    assert status == 200 and ctype == "application/wasm", (status, ctype)


def test_healthz(installed_edge):
    status, _, body = installed_edge.http_get("/healthz")
    assert status == 200, (status, body)


def test_web_flag_still_overrides(prefix):
    root, _ = prefix
    with tempfile.TemporaryDirectory(prefix="waymark-install-") as tmp:
        web = os.path.join(tmp, "web")
        os.mkdir(web)
        with open(os.path.join(web, "index.html"), "w") as f:
            f.write("<!doctype html><title>other</title>\n")
        edge = Edge(os.path.join(root, "bin", "waymark-edge"), os.path.join(tmp, "data"),
                    ["--web", web]).start()
        try:
            status, _, body = edge.http_get("/")
            assert status == 200 and b"<title>other</title>" in body
        finally:
            assert edge.terminate() == 0, edge.stderr_tail()


def test_systemd_analyze_verifies_the_unit(prefix):
    root, _ = prefix
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit was not verified")
    unit = os.path.join(root, "lib/systemd/system/waymark-edge.service")
    done = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, timeout=60)
    # verify also reports on units of the host it happens to load; only this unit's lines count.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "waymark-edge" in line]
    assert done.returncode == 0 and not ours, "systemd-analyze verify:\n%s%s" % (done.stdout, done.stderr)
