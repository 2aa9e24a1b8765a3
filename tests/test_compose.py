"""The compose stack, as the app contract knows it: the setup step runs first, the app serves its pages
through the proxy only, and its state ($DATA_DIR) survives the stack. The example's database is tested
in tests/app/test_example_compose.py."""

import datetime
import json
import re
import uuid

import facts
import pytest
from dockertools import docker_or_fail, http

pytestmark = [pytest.mark.docker, pytest.mark.compose]


@pytest.fixture(params=["multi-stage", "distroless"])
def stack(request):
    """The stack (`make up VARIANT=...`): every test below runs against each web image."""
    return request.getfixturevalue("multi_stack" if request.param == "multi-stage" else "distroless_stack")


def state(container):
    """The container's .State from docker inspect."""
    return json.loads(docker_or_fail("inspect", "--format", "{{json .State}}", container).stdout)


def moment(timestamp):
    """A Docker timestamp (RFC 3339, nanoseconds) as a datetime: fromisoformat takes microseconds at most."""
    return datetime.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", timestamp).replace("Z", "+00:00"))


def test_web_runs_the_chosen_variant(stack):
    """VARIANT picks the web image: the stack really runs the image under test."""
    image = docker_or_fail("inspect", "--format", "{{.Config.Image}}", stack.container("web")).stdout.strip()
    assert image.endswith(":" + stack.env["VARIANT"]), image


@pytest.mark.platform
def test_web_and_proxy_healthy(stack):
    """compose up --wait left web and proxy healthy."""
    for service in ("web", "proxy"):
        health = docker_or_fail("inspect", "--format", "{{.State.Health.Status}}", stack.container(service)).stdout
        assert health.strip() == "healthy", service


def test_setup_exited_0_before_web_started(stack):
    """The one-off setup step ran to success, and web started only after it had finished."""
    setup, web = state(stack.container("setup")), state(stack.container("web"))
    assert setup["Status"] == "exited" and setup["ExitCode"] == 0, setup
    assert moment(setup["FinishedAt"]) <= moment(web["StartedAt"]), (setup, web)


def test_health_path_answers_200_through_the_proxy(stack):
    """The contract's health_path answers 200 on the stack's published port."""
    path = facts.contract()["health_path"]
    assert http(stack.url + path)[0] == 200


def test_ready_path_answers_200_through_the_proxy(stack):
    """Once up --wait returns (setup done, services healthy), the app is ready: ready_path answers 200."""
    path = facts.contract()["ready_path"]
    status, _, body = http(stack.url + path, timeout=10)
    assert status == 200, body


def test_warm_paths_answer_below_500_through_the_proxy(stack):
    """Every page the app serves (warm_paths) answers below 500 once setup has run."""
    statuses = {path: http(stack.url + path, timeout=10)[0] for path in facts.contract()["warm_paths"]}
    assert statuses and all(status < 500 for status in statuses.values()), statuses


def test_only_the_proxy_publishes_a_port(stack):
    """Clients reach the app through the proxy alone: no other service (web, the example's database,
    whatever yours adds) publishes a port."""
    published = {}
    for container in stack.compose("ps", "--all", "--quiet").stdout.split():
        found = docker_or_fail(
            "inspect",
            "--format",
            '{{index .Config.Labels "com.docker.compose.service"}} {{json .NetworkSettings.Ports}}',
            container,
        ).stdout
        service, ports = found.split(" ", 1)
        published[service] = sorted(port for port, bindings in json.loads(ports).items() if bindings)
    assert published.pop("proxy") and "web" in published, published
    assert not any(published.values()), published


def test_proxy_published_on_loopback_only(stack):
    """The stack's one published port is bound to 127.0.0.1, not to every interface."""
    ports = json.loads(
        docker_or_fail("inspect", "--format", "{{json .NetworkSettings.Ports}}", stack.container("proxy")).stdout
    )
    assert {b["HostIp"] for b in ports["8080/tcp"]} == {"127.0.0.1"}


def test_data_dir_survives_down_and_up(stack):
    """A file web writes into $DATA_DIR as the image's user before `compose down` (volume kept) is
    still there after `up`. python -c, not a shell: the distroless image has none."""
    name, text = f"survives-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    write = f"import os, pathlib; pathlib.Path(os.environ['DATA_DIR'], {name!r}).write_text({text!r})"
    read = f"import os, pathlib; print(pathlib.Path(os.environ['DATA_DIR'], {name!r}).read_text())"
    stack.compose("exec", "-T", "web", "python", "-c", write)
    stack.compose("down")
    stack.compose("up", "--wait", "--no-build")
    assert stack.compose("exec", "-T", "web", "python", "-c", read).stdout.strip() == text
