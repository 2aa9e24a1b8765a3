"""`make dev` with the example app: its edited greeting is served within 3 s; `make up` keeps serving what
the image baked in. The template's own dev test (any app) is tests/test_dev.py."""

import time

import pytest
from dockertools import RUN_ID, http, make_in, save_as_editor, wait_for_status

pytestmark = [pytest.mark.docker, pytest.mark.compose]
ORIGINAL = "Hello from a multi-stage build!"
RELOAD_WITHIN_S = 3.0


def greet(copy, text):
    """Change the greeting in the copy's app.py the way an editor saves: a new file renamed over the old."""
    source = (copy / "app.py").read_text()
    old = source.split('return "', 1)[1].split('\\n"', 1)[0]
    save_as_editor(copy / "app.py", source.replace(f'return "{old}\\n"', f'return "{text}\\n"', 1))


def body(url):
    """The text GET / answers, stripped."""
    return http(url + "/", timeout=5)[2].strip()


def test_dev_serves_an_edit_within_3_seconds_then_up_bakes_the_code_in(dev_copy):
    """make dev: a saved edit is served within 3 s. make up afterwards (the production shape): the
    code is the image's, and a later edit changes nothing."""
    copy, env, url = dev_copy
    make_in(copy, env, "dev")
    wait_for_status(url + "/", timeout=15)
    assert body(url) == ORIGINAL
    greet(copy, f"edited {RUN_ID}")
    start = time.monotonic()
    while body(url) != f"edited {RUN_ID}":
        assert time.monotonic() - start < RELOAD_WITHIN_S, f"the edit was not served within {RELOAD_WITHIN_S} s"
        time.sleep(0.1)
    print(f"edit served after {time.monotonic() - start:.2f} s")

    make_in(copy, env, "up")
    wait_for_status(url + "/", timeout=15)
    assert body(url) == f"edited {RUN_ID}"  # rebuilt with the edit, which is now baked in
    greet(copy, f"not served {RUN_ID}")
    time.sleep(RELOAD_WITHIN_S + 1)
    assert body(url) == f"edited {RUN_ID}"
