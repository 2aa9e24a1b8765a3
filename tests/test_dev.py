"""`make dev`: a saved edit of the app's code is running within 3 s; `make up` runs what the image baked in.
Any app: the edit appends a line to the contract's wsgi_app module that prints a marker when imported.
(The example's greeting, edited and served: tests/app/test_example_dev.py.)"""

import time

import facts
import pytest
from dockertools import (
    RUN_ID,
    LogWindow,
    docker_or_fail,
    make_in,
    save_as_editor,
    wait_for_status,
)

pytestmark = [pytest.mark.docker, pytest.mark.compose]
RELOAD_WITHIN_S = 3.0


def web_container(copy, env):
    """The id of the copy's running web container."""
    return docker_or_fail("compose", "ps", "--quiet", "web", cwd=copy, env=env).stdout.strip()


def mark(copy, marker):
    """Append a line to the wsgi_app module that prints marker whenever a worker imports it."""
    module = copy / facts.wsgi_module_file()
    save_as_editor(module, module.read_text() + f'\nprint("{marker}", flush=True)\n')


def test_dev_runs_an_edit_within_3_seconds_then_up_bakes_the_code_in(dev_copy):
    """make dev: a saved edit is imported by the workers, which serve health_path again, within 3 s.
    make up afterwards (the production shape): the image holds the edited code, and a later edit
    reaches neither the container's files nor its workers."""
    copy, env, url = dev_copy
    health = url + facts.contract()["health_path"]
    make_in(copy, env, "dev")
    wait_for_status(health, timeout=15)
    window = LogWindow(web_container(copy, env))
    mark(copy, f"edited-{RUN_ID}")
    start = time.monotonic()
    while not any(f"edited-{RUN_ID}" in line for line in window.new_lines()):
        assert time.monotonic() - start < RELOAD_WITHIN_S, f"the edit was not imported within {RELOAD_WITHIN_S} s"
        time.sleep(0.1)
    wait_for_status(health, timeout=RELOAD_WITHIN_S - (time.monotonic() - start))
    print(f"edit running after {time.monotonic() - start:.2f} s")

    make_in(copy, env, "up")
    wait_for_status(health, timeout=15)
    web = web_container(copy, env)
    in_image = f"/app/{facts.wsgi_module_file().as_posix()}"
    read = ["compose", "exec", "-T", "web", "python", "-c", f"print(open({in_image!r}).read())"]
    assert f"edited-{RUN_ID}" in docker_or_fail(*read, cwd=copy, env=env).stdout  # rebuilt with the edit
    window = LogWindow(web)
    mark(copy, f"not-running-{RUN_ID}")
    time.sleep(RELOAD_WITHIN_S + 1)
    assert f"not-running-{RUN_ID}" not in docker_or_fail(*read, cwd=copy, env=env).stdout
    assert not any(f"not-running-{RUN_ID}" in line for line in window.new_lines())
