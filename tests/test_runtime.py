"""The runtime contract under docker run, kept by the multi-stage and the distroless image alike."""

import json
import re
import time

import pytest
from dockertools import (
    EMULATION_FACTOR,
    PLATFORM,
    Container,
    docker_or_fail,
    http,
    inspect,
    no_traceback,
    shell,
    wait_for_status,
)

pytestmark = pytest.mark.docker
GREETING = "Hello from a multi-stage build"
SHIPPED = ["multi_image", "distroless_image"]
# An ELF header's e_machine (elf.h: EM_X86_64, EM_AARCH64) for each architecture the images ship for.
ELF_MACHINES = {"amd64": 62, "arm64": 183}


@pytest.fixture(params=SHIPPED, ids=["multi-stage", "distroless"])
def app_image(request):
    """Each image the template ships (the single-stage one is only a baseline)."""
    return request.getfixturevalue(request.param)


@pytest.mark.platform
def test_config_user_is_numeric_and_not_root(app_image):
    """USER is a numeric non-zero UID:GID, so runAsNonRoot can verify it without /etc/passwd."""
    user = inspect(app_image)["Config"]["User"]
    assert re.fullmatch(r"[1-9]\d*:\d+", user), user


@pytest.mark.platform
def test_image_and_venv_binaries_are_for_the_requested_platform(app_image):
    """The image is for PLATFORM (linux/arm64 under `make test-arm64`; else the engine's), and so is
    every ELF file in its venv: psycopg2 compiled for that architecture, not brought from another."""
    engine = docker_or_fail("version", "--format", "{{.Server.Arch}}").stdout.strip()
    arch = PLATFORM.split("/")[1] if PLATFORM else engine
    assert inspect(app_image)["Architecture"] == arch
    code = (
        "import os\n"
        "for root, _, names in os.walk('/opt/venv'):\n"
        "    for path in (os.path.join(root, name) for name in names):\n"
        "        head = b'' if os.path.islink(path) else open(path, 'rb').read(20)\n"
        "        if head[:4] == b'\\x7fELF':\n"
        "            print(path, int.from_bytes(head[18:20], 'little'))\n"
    )
    out = docker_or_fail("run", "--rm", "--network", "none", "--entrypoint", "python", app_image, "-c", code).stdout
    machines = {path: int(machine) for path, machine in (line.split() for line in out.splitlines())}
    assert any("/psycopg2/_psycopg" in path for path in machines), out
    assert {path: m for path, m in machines.items() if m != ELF_MACHINES[arch]} == {}


@pytest.mark.platform
def test_process_runs_as_non_root(app_image, run):
    """Every process in the container (gunicorn and its workers) runs with a non-zero uid."""
    app = run(app_image)
    wait_for_status(app.url + "/healthz")
    # docker top asks the host's ps: it works for images with no shell or `id` inside.
    rows = docker_or_fail("top", app.name, "-eo", "pid,uid,comm").stdout.splitlines()[1:]
    assert len(rows) >= 3 and all(row.split()[1] != "0" for row in rows), rows


def test_app_code_not_writable_by_app_user(multi_image):
    """The app user can read its code but not change it."""
    out = shell(
        multi_image,
        "for f in /app /app/app.py /app/gunicorn.conf.py /opt/venv/bin/gunicorn; do [ -w $f ] && echo $f; done; true",
    )
    assert out.strip() == ""
    assert shell(multi_image, "cat /app/app.py >/dev/null && echo readable").strip() == "readable"


def test_serves_root_within_2_seconds(app_image, run):
    """docker run → 200 on / with the greeting in under 2 s."""
    app = run(app_image)
    waited = wait_for_status(app.url + "/", timeout=10)
    status, _, body = http(app.url + "/")
    assert status == 200 and GREETING in body
    assert time.monotonic() - app.started < 2.0 + 1.0 and waited < 2.0, f"first 200 after {waited:.2f}s"


@pytest.mark.platform
def test_serves_when_hardened(app_image, run):
    """Still serves with a read-only root, no capabilities, no privilege gain and tight limits."""
    app = run(
        app_image,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--pids-limit",
        "64",
        "--memory",
        "256m",
    )
    wait_for_status(app.url + "/", timeout=10)
    assert GREETING in http(app.url + "/")[2]


@pytest.mark.platform
def test_healthcheck_defined(app_image):
    """The image declares a HEALTHCHECK in exec form."""
    test = inspect(app_image)["Config"]["Healthcheck"]["Test"]
    assert test[0] == "CMD", test


@pytest.mark.platform
def test_container_becomes_healthy(app_image, run):
    """Docker's own health probe turns healthy."""
    app = run(app_image)
    deadline = time.monotonic() + 20 * EMULATION_FACTOR
    while app.state()["Health"]["Status"] != "healthy":
        assert time.monotonic() < deadline, app.state()["Health"]
        time.sleep(0.25)


def test_docker_stop_is_fast_and_clean(app_image, run):
    """SIGTERM reaches gunicorn (exec form): it exits 0 in under 2 s, no SIGKILL needed."""
    app = run(app_image)
    wait_for_status(app.url + "/healthz")
    start = time.monotonic()
    docker_or_fail("stop", app.name)
    elapsed = time.monotonic() - start
    assert app.state()["ExitCode"] == 0, app.logs()
    assert elapsed < 2.0, f"docker stop took {elapsed:.2f}s"


@pytest.fixture(scope="module", params=SHIPPED, ids=["multi-stage", "distroless"])
def app_url(request):
    """One running app of each shipped image for the bad-input checks."""
    app = Container(request.getfixturevalue(request.param))
    wait_for_status(app.url + "/healthz")
    yield app.url
    app.remove()


@pytest.mark.parametrize(
    "method,path,data,expected",
    [
        ("GET", "/no-such-page", None, 404),
        ("DELETE", "/", None, 405),
        ("POST", "/visits", b"x" * (1024 * 1024), 413),
    ],
    ids=["unknown-route-404", "wrong-method-405", "oversized-body-413"],
)
def test_bad_input_never_500(app_url, method, path, data, expected):
    """Bad requests get the right 4xx, as JSON, with no traceback."""
    status, headers, body = http(app_url + path, method=method, data=data)
    assert status == expected
    assert headers["Content-Type"].startswith("application/json")
    json.loads(body)
    assert no_traceback(body)


def test_single_stage_also_serves(single_image, run):
    """The naive baseline works too: the comparison is honest."""
    app = run(single_image)
    wait_for_status(app.url + "/", timeout=15)
    assert GREETING in http(app.url + "/")[2]
