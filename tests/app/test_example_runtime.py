"""The example app under docker run, in the multi-stage and the distroless image alike: its greeting, its
JSON error bodies, its compiled psycopg2. The template's runtime contract is tests/test_runtime.py."""

import json
import time

import pytest
from dockertools import (
    HARDENED,
    Container,
    http,
    no_traceback,
    platform_elf_machine,
    venv_elf_machines,
    wait_for_status,
)

pytestmark = pytest.mark.docker
GREETING = "Hello from a multi-stage build"
SHIPPED = ["multi_image", "distroless_image"]


@pytest.fixture(params=SHIPPED, ids=["multi-stage", "distroless"])
def app_image(request):
    """Each image the template ships (the single-stage one is only a baseline)."""
    return request.getfixturevalue(request.param)


@pytest.mark.platform
def test_psycopg2_is_compiled_for_the_requested_platform(app_image):
    """psycopg2's C extension is in the venv, an ELF file for PLATFORM's architecture (else the engine's)."""
    _, machine = platform_elf_machine()
    machines = venv_elf_machines(app_image)
    psycopg = {path: m for path, m in machines.items() if "/psycopg2/_psycopg" in path}
    assert psycopg and set(psycopg.values()) == {machine}, machines


def test_serves_root_within_2_seconds(app_image, run):
    """docker run → 200 on / with the greeting in under 2 s."""
    app = run(app_image)
    waited = wait_for_status(app.url + "/", timeout=10)
    status, _, body = http(app.url + "/")
    assert status == 200 and GREETING in body
    assert time.monotonic() - app.started < 2.0 + 1.0 and waited < 2.0, f"first 200 after {waited:.2f}s"


@pytest.mark.platform
def test_serves_root_when_hardened(app_image, run):
    """Still serves the greeting with a read-only root, no capabilities, no privilege gain and tight limits."""
    app = run(
        app_image,
        *HARDENED,
    )
    wait_for_status(app.url + "/", timeout=10)
    assert GREETING in http(app.url + "/")[2]


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


def test_single_stage_serves_the_greeting(single_image, run):
    """The naive baseline serves the same app: the comparison is honest."""
    app = run(single_image)
    wait_for_status(app.url + "/", timeout=15)
    assert GREETING in http(app.url + "/")[2]
