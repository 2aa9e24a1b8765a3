"""The offline nginx stand-in honours the official nginx image's interface.

Each test starts its own containers from NGINX_IMAGE through the docker CLI; the `tracked_docker`
fixture (conftest.py) removes every container it made.
"""

import os
import socket
import time
import urllib.request

import pytest

IMAGE = os.environ.get("NGINX_IMAGE", "offline/nginx:trixie")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

pytestmark = pytest.mark.docker


def published_port(tracked_docker, name, port):
    return int(tracked_docker("port", name, f"{port}/tcp").stdout.splitlines()[0].rsplit(":", 1)[1])


def get(port, path="/", timeout=10):
    """(status, body) of GET path, retried until the server listens or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except (OSError, ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on {port}{path}: {exc}") from None
            time.sleep(0.2)


def test_serves_the_default_page_on_port_80(tracked_docker):
    """docker run IMAGE: the default server answers on port 80 with the welcome page."""
    name = tracked_docker.container("nginx")
    tracked_docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", IMAGE)
    status, body = get(published_port(tracked_docker, name, 80))
    assert status == 200 and "Welcome to nginx!" in body


def test_has_the_official_users_entrypoint_and_stop_signal(tracked_docker):
    """User nginx is 101:101; entrypoint, command, stop signal and port are upstream's."""
    assert tracked_docker("run", "--rm", IMAGE, "id", "nginx").stdout.startswith("uid=101(nginx) gid=101(nginx)")
    config = tracked_docker(
        "image",
        "inspect",
        "--format",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.StopSignal}} {{json .Config.ExposedPorts}}",
        IMAGE,
    ).stdout.strip()
    assert config == '["/docker-entrypoint.sh"] ["nginx","-g","daemon off;"] SIGQUIT {"80/tcp":{}}'


def test_renders_templates_with_envsubst(tracked_docker, tmp_path):
    """/etc/nginx/templates/*.template become conf.d files with the environment substituted."""
    name = tracked_docker.container("nginx")
    tracked_docker("create", "--name", name, "-p", "127.0.0.1::8081", "-e", "GREETING=from-a-template", IMAGE)
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "greet.conf.template").write_text(
        "server { listen 8081; location / { return 200 '${GREETING} $request_method'; } }\n"
    )
    tracked_docker("cp", str(templates), f"{name}:/etc/nginx/templates")
    tracked_docker("start", name)
    assert get(published_port(tracked_docker, name, 8081)) == (200, "from-a-template GET")


def test_runs_the_stack_config_unprivileged_and_read_only(tracked_docker):
    """The compose stack's way: proxy/nginx.conf, user 101, read-only root, no capabilities."""
    name = tracked_docker.container("nginx")
    # A network of its own, as compose makes: nginx asks Docker's DNS there for "web".
    network = tracked_docker.network()
    tracked_docker(
        "create",
        "--name",
        name,
        "-p",
        "127.0.0.1::8080",
        "--user",
        "101:101",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--network",
        network,
        # A bind mount, as compose.yaml does (docker cp can't write to a read-only root).
        "-v",
        f"{os.path.join(ROOT, 'deploy', 'proxy', 'nginx.conf')}:/etc/nginx/nginx.conf:ro",
        IMAGE,
    )
    tracked_docker("start", name)
    # There is no web service here: nginx itself is up when it answers 502, as JSON.
    port = published_port(tracked_docker, name, 8080)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = sock.recv(4096)
            if answer:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, tracked_docker("logs", name, check=False).stderr
        time.sleep(0.2)
    assert answer.startswith(b"HTTP/1.1 502"), answer
    assert b"application/json" in answer
    assert tracked_docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"


def test_stops_cleanly_on_docker_stop(tracked_docker):
    """SIGQUIT (graceful) ends nginx quickly with exit code 0."""
    name = tracked_docker.container("nginx")
    tracked_docker("run", "-d", "--name", name, "-p", "127.0.0.1::80", IMAGE)
    get(published_port(tracked_docker, name, 80))
    started = time.monotonic()
    tracked_docker("stop", name, timeout=30)
    assert time.monotonic() - started < 5
    assert tracked_docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "0"
