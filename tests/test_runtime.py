"""The runtime contract under docker run, kept by the multi-stage and the distroless image alike. Only the
app contract's health_path is requested: the example's pages are tested in tests/app/test_example_runtime.py."""

import re
import time

import facts
import pytest
from dockertools import (
    EMULATION_FACTOR,
    HARDENED,
    RUN_ID,
    docker_or_fail,
    inspect,
    platform_elf_machine,
    shell,
    venv_elf_machines,
    wait_for_status,
)

pytestmark = pytest.mark.docker
SHIPPED = ["multi_image", "distroless_image"]


def health_path():
    """The contract's liveness path, read when a test runs: collection never needs the app."""
    return facts.contract()["health_path"]


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
    every ELF file in its venv: compiled for that architecture, not brought from another. (That the
    example's psycopg2 is among them: tests/app/test_example_runtime.py.)"""
    arch, machine = platform_elf_machine()
    assert inspect(app_image)["Architecture"] == arch
    assert {path: m for path, m in venv_elf_machines(app_image).items() if m != machine} == {}


@pytest.mark.platform
def test_process_runs_as_non_root(app_image, run):
    """Every process in the container (gunicorn and its workers) runs with a non-zero uid."""
    app = run(app_image)
    wait_for_status(app.url + health_path())
    # docker top asks the host's ps: it works for images with no shell or `id` inside. The first answer
    # can come before the last worker has booted: wait for the master and both workers.
    deadline = time.monotonic() + 10 * EMULATION_FACTOR
    while len(rows := docker_or_fail("top", app.name, "-eo", "pid,uid,comm").stdout.splitlines()[1:]) < 3:
        assert time.monotonic() < deadline, f"gunicorn's workers did not all start: {rows}"
        time.sleep(0.2)
    assert all(row.split()[1] != "0" for row in rows), rows


def image_env(image):
    """The image's ENV, as a dict."""
    return dict(entry.split("=", 1) for entry in inspect(image)["Config"]["Env"])


@pytest.mark.platform
def test_data_dir_ships_empty_and_owned_by_the_app_user(app_image):
    """$DATA_DIR is in the image, owned by its USER and empty: the warm-up ran the app, and left no state."""
    assert image_env(app_image).get("DATA_DIR"), "the image sets no DATA_DIR"
    code = "import os; d = os.environ['DATA_DIR']; s = os.stat(d); print(s.st_uid, s.st_gid, sorted(os.listdir(d)))"
    out = docker_or_fail("run", "--rm", "--network", "none", app_image, "python", "-c", code).stdout.split(" ", 2)
    assert ":".join(out[:2]) == inspect(app_image)["Config"]["User"] and out[2].strip() == "[]", out


@pytest.mark.platform
def test_app_user_writes_data_dir_on_a_new_volume_under_a_read_only_root(app_image):
    """A fresh named volume at $DATA_DIR takes the image's directory's owner, so the app's user can write
    its state there while everything else is read-only (compose's app-data volume)."""
    volume = f"pyslim-test-data-{RUN_ID}"
    code = (
        "import os; p = os.path.join(os.environ['DATA_DIR'], 'state'); open(p, 'w').write('x'); print(open(p).read())"
    )
    try:
        proc = docker_or_fail(
            "run", "--rm", "--network", "none", "--read-only", "--volume", f"{volume}:{image_env(app_image)['DATA_DIR']}",
            app_image, "python", "-c", code, check=False,
        )  # fmt: skip
    finally:
        docker_or_fail("volume", "rm", "--force", volume, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "x", proc.stderr


def test_app_code_not_writable_by_app_user(multi_image):
    """The app user can read its code but not change it: /app and everything in it, whatever the app's files."""
    out = shell(
        multi_image,
        'find /app /opt/venv/bin/gunicorn | while read -r f; do [ -w "$f" ] && echo "writable $f";'
        ' [ -r "$f" ] || echo "unreadable $f"; echo "seen $f"; done',
    )
    assert "seen /app/gunicorn.conf.py" in out.splitlines(), out
    assert [line for line in out.splitlines() if not line.startswith("seen ")] == []


def test_serves_health_path_within_2_seconds(app_image, run):
    """docker run → 200 on health_path in under 2 s."""
    app = run(app_image)
    waited = wait_for_status(app.url + health_path(), timeout=10)
    assert time.monotonic() - app.started < 2.0 + 1.0 and waited < 2.0, f"first 200 after {waited:.2f}s"


@pytest.mark.platform
def test_serves_when_hardened(app_image, run):
    """Still serves with a read-only root, no capabilities, no privilege gain and tight limits."""
    app = run(
        app_image,
        *HARDENED,
    )
    wait_for_status(app.url + health_path(), timeout=10)


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
    wait_for_status(app.url + health_path())
    start = time.monotonic()
    docker_or_fail("stop", app.name)
    elapsed = time.monotonic() - start
    assert app.state()["ExitCode"] == 0, app.logs()
    assert elapsed < 2.0, f"docker stop took {elapsed:.2f}s"


def test_single_stage_also_serves(single_image, run):
    """The naive baseline works too: the comparison is honest."""
    app = run(single_image)
    wait_for_status(app.url + health_path(), timeout=15)
