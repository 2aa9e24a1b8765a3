"""`make dev`: edit the code, see it served within 3 s; `make up` keeps serving what the image baked in."""

import os
import subprocess
import time

import pytest
from dockertools import RUN_ID, copy_tracked, docker_or_fail, free_port, http, wait_for_status

pytestmark = [pytest.mark.docker, pytest.mark.compose]
ORIGINAL = "Hello from a multi-stage build!"
RELOAD_WITHIN_S = 3.0


@pytest.fixture(scope="module")
def tree(multi_image, tmp_path_factory):
    """A copy of the tracked tree to edit, and the environment make runs in for it."""
    copy = copy_tracked(tmp_path_factory.mktemp("dev"))
    copy.chmod(0o755)  # a checkout is; pytest's 0700 temp dir would hide the code from the app's user
    password = copy / "db_password"
    password.write_text(f"pw-{RUN_ID}")
    password.chmod(0o644)
    port = free_port()
    env = {
        **os.environ,
        "IMAGE": f"pyslim-test-dev-{RUN_ID}",
        "COMPOSE_PROJECT_NAME": f"pyslim-test-dev-{RUN_ID}",
        "WEB_PORT": str(port),
        "DB_PASSWORD_FILE": str(password),
    }
    yield copy, env, f"http://127.0.0.1:{port}"
    subprocess.run(
        ["docker", "compose", "down", "--volumes", "--remove-orphans"],
        cwd=copy,
        env=env,
        capture_output=True,
        timeout=120,
    )
    docker_or_fail("image", "rm", f"{env['IMAGE']}:multi-stage", check=False)


def make(tree, goal):
    """Run a make goal in the copy, as a user would."""
    copy, env, _ = tree
    proc = subprocess.run(["make", goal], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def greet(copy, text):
    """Change the greeting in the copy's app.py the way an editor saves: a new file renamed over the old."""
    app = copy / "app.py"
    source = app.read_text()
    old = source.split('return "', 1)[1].split('\\n"', 1)[0]
    (copy / "app.py.new").write_text(source.replace(f'return "{old}\\n"', f'return "{text}\\n"', 1))
    (copy / "app.py.new").chmod(0o644)
    os.replace(copy / "app.py.new", app)


def body(url):
    """The text GET / answers, stripped."""
    return http(url + "/", timeout=5)[2].strip()


def test_dev_serves_an_edit_within_3_seconds_then_up_bakes_the_code_in(tree):
    """make dev: a saved edit is served within 3 s. make up afterwards (the production shape): the
    code is the image's, and a later edit changes nothing."""
    copy, _, url = tree
    make(tree, "dev")
    wait_for_status(url + "/", timeout=15)
    assert body(url) == ORIGINAL
    greet(copy, f"edited {RUN_ID}")
    start = time.monotonic()
    while body(url) != f"edited {RUN_ID}":
        assert time.monotonic() - start < RELOAD_WITHIN_S, f"the edit was not served within {RELOAD_WITHIN_S} s"
        time.sleep(0.1)
    print(f"edit served after {time.monotonic() - start:.2f} s")

    make(tree, "up")
    wait_for_status(url + "/", timeout=15)
    assert body(url) == f"edited {RUN_ID}"  # rebuilt with the edit, which is now baked in
    greet(copy, f"not served {RUN_ID}")
    time.sleep(RELOAD_WITHIN_S + 1)
    assert body(url) == f"edited {RUN_ID}"
