"""Every default is set in one place: edit it there, in a copy of the template, and everything follows.
A fact that several product files must state (body limit, timeouts, ports, UIDs) is read from each
of them: these tests fail when the copies disagree, or when the timeouts stop nesting."""

import json
import os
import re
import shutil
import subprocess
import sys

import facts
import pytest
from dockertools import ROOT, copy_tracked, dockerfile_arg, make_variable
from manifests import OVERLAYS, Rendered

# What a user would switch to; nothing is pulled or built, so the tags need not exist here.
NEW = {
    ("Dockerfile", "PYTHON_IMAGE"): "python:3.12-slim-bookworm",
    ("Dockerfile.distroless", "DEBIAN_IMAGE"): "debian:bookworm-slim",
    ("Dockerfile.distroless", "DISTROLESS_IMAGE"): "gcr.io/distroless/python3-debian12:nonroot",
}
NEW_COMPOSE = {"POSTGRES_IMAGE": "postgres:16-bookworm", "NGINX_IMAGE": "nginx:bookworm"}
NEW_POSTGRES = NEW_COMPOSE["POSTGRES_IMAGE"]
# make exports these to the tests; a user's shell doesn't have them.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE") and k not in ("VARIANT", "IMAGE")}


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """A copy of the tracked tree, without offline/ (a user may delete it), each default edited once."""
    copy = copy_tracked(tmp_path_factory.mktemp("one-source"))
    shutil.rmtree(copy / "offline")
    for (dockerfile, arg), image in NEW.items():
        path = copy / dockerfile
        text, count = re.subn(rf"^ARG {arg}=\S+$", f"ARG {arg}={image}", path.read_text(), flags=re.MULTILINE)
        assert count == 1, f"{dockerfile} should name {arg} exactly once"
        path.write_text(text)
    compose = copy / "compose.yaml"
    for name, image in NEW_COMPOSE.items():
        text, count = re.subn(rf"\$\{{{name}:-[^}}]+\}}", f"${{{name}:-{image}}}", compose.read_text())
        assert count == 1, f"compose.yaml should name {name} exactly once"
        compose.write_text(text)
    return copy


def test_make_builds_every_image_from_the_edited_args(edited):
    """`make build` passes the edited images to every docker build (single-stage included)."""
    out = subprocess.run(["make", "-n", "build"], cwd=edited, env=CLEAN_ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    builds = [line for line in out.stdout.splitlines() if line.startswith("docker build")]
    assert len(builds) == 3, out.stdout
    for line in builds:
        for (_, arg), image in NEW.items():
            assert f"--build-arg {arg}={image} " in line, line


def test_make_runs_the_edited_compose_images(edited):
    """The Makefile's POSTGRES_IMAGE and NGINX_IMAGE (which offline/ resolves) are compose.yaml's defaults."""
    for name, image in NEW_COMPOSE.items():
        assert make_variable(name, cwd=edited, env=CLEAN_ENV) == image


def test_compose_leaves_the_base_images_to_the_dockerfile(edited):
    """Run without make, compose passes no base image (so the Dockerfile's ARG decides) and runs the
    edited Postgres; run by make, it passes make's (the same ARGs, or offline stand-ins for them)."""
    config = subprocess.run(
        ["docker", "compose", "config", "--format", "json", "--no-interpolate"],
        cwd=edited,
        env={**CLEAN_ENV, "DB_PASSWORD_FILE": "/dev/null"},
        capture_output=True,
        text=True,
    )
    assert config.returncode == 0, config.stderr
    args = json.loads(config.stdout)["services"]["web"]["build"].get("args") or {}
    assert {k: v for k, v in args.items() if v is not None} == {}, args
    resolved = subprocess.run(
        ["docker", "compose", "config", "--format", "json"],
        cwd=edited,
        env={**CLEAN_ENV, "DB_PASSWORD_FILE": "/dev/null", "PYTHON_IMAGE": "from-make"},
        capture_output=True,
        text=True,
    )
    services = json.loads(resolved.stdout)["services"]
    assert services["db"]["image"] == NEW_POSTGRES and services["proxy"]["image"] == NEW_COMPOSE["NGINX_IMAGE"]
    assert services["web"]["build"]["args"].get("PYTHON_IMAGE") == "from-make", services["web"]["build"]


def test_tests_read_the_edited_defaults(edited):
    """Run without make, the tests build from the same edited ARGs."""
    code = "import json, dockertools as d; print(json.dumps([d.BASE_IMAGES, d.POSTGRES_IMAGE]))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=edited / "tests", env=CLEAN_ENV, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    bases, postgres = json.loads(out.stdout)
    assert bases == {arg: image for (_, arg), image in NEW.items()} and postgres == NEW_POSTGRES


def test_single_stage_names_the_same_python_as_multi_stage():
    """The baseline is only comparable on the same base; make passes Dockerfile's to both anyway."""
    assert dockerfile_arg("PYTHON_IMAGE", "Dockerfile.single_stage") == dockerfile_arg("PYTHON_IMAGE")


# --- facts stated in several files ------------------------------------------------------------

# Which image each Kubernetes overlay runs (its images: newTag is the tag `make build` gives it).
OVERLAY_DOCKERFILES = {"multi-stage": "Dockerfile", "distroless": "Dockerfile.distroless"}
SHIPPED_DOCKERFILES = sorted(set(OVERLAY_DOCKERFILES.values()))


def test_nginx_refuses_what_the_app_would_refuse():
    """proxy/nginx.conf's client_max_body_size is app.py's MAX_CONTENT_LENGTH, and a body up to it
    fits nginx's in-memory buffer."""
    limit = facts.app_fact("MAX_CONTENT_LENGTH")
    assert facts.nginx_bytes("client_max_body_size") == limit
    assert facts.nginx_bytes("client_body_buffer_size") >= limit


def test_gunicorn_outwaits_the_apps_worst_database_wait():
    """gunicorn kills a worker only after the app's connect timeout plus its statement timeout."""
    worst = facts.app_fact("CONNECT_TIMEOUT_S") + facts.app_fact("STATEMENT_TIMEOUT_MS") / 1000
    assert facts.gunicorn_settings()["timeout"] > worst


def test_nginx_outwaits_gunicorn():
    """nginx gives up on an answer (proxy_read_timeout) only after gunicorn would have killed the worker."""
    assert facts.nginx_seconds("proxy_read_timeout") > facts.gunicorn_settings()["timeout"]


def test_gunicorn_drains_before_compose_kills_it():
    """gunicorn's graceful_timeout ends before compose's stop grace period (Docker's 10 s by default)."""
    grace = facts.compose_seconds(facts.compose()["services"]["web"].get("stop_grace_period", "10s"))
    assert facts.gunicorn_settings()["graceful_timeout"] < grace


def test_nginx_drains_before_compose_kills_it():
    """The proxy's stop grace period outlasts nginx's client timeouts and its worker_shutdown_timeout."""
    grace = facts.compose_seconds(facts.compose()["services"]["proxy"]["stop_grace_period"])
    waits = ("client_header_timeout", "client_body_timeout", "worker_shutdown_timeout")
    assert grace > max(facts.nginx_seconds(name) for name in waits)


def app_ports():
    """Every statement of the port gunicorn listens on: {where: port}."""
    ports = {"gunicorn.conf.py bind": facts.gunicorn_port()}
    for dockerfile in ["Dockerfile.single_stage", *SHIPPED_DOCKERFILES]:
        ports[f"{dockerfile} EXPOSE"] = int(facts.dockerfile_lines(dockerfile, "EXPOSE")[-1])
    for dockerfile in SHIPPED_DOCKERFILES:
        for i, port in enumerate(facts.dockerfile_port_defaults(dockerfile)):
            ports[f"{dockerfile} default PORT #{i + 1}"] = port
    upstream = [value for value in facts.nginx("set") if value.startswith("$app ")]
    ports["proxy/nginx.conf upstream"] = int(upstream[0].rsplit(":", 1)[1])
    for overlay in OVERLAYS:
        ports[f"{overlay} containerPort"] = Rendered(overlay).port("http")
    # The tooling that publishes the container's port (tests, make compare).
    for path in ("tests/dockertools.py", "scripts/compare.py"):
        found = re.findall(r"127\.0\.0\.1::(\d+)|\"(\d+)/tcp\"", (ROOT / path).read_text())
        assert found, f"{path} no longer publishes the app's port: update this test"
        for i, number in enumerate(found):
            ports[f"{path} publish #{i + 1}"] = int("".join(number))
    return ports


def test_every_file_names_the_same_app_port():
    """gunicorn's bind, EXPOSE, the HEALTHCHECK, nginx's upstream, the pods' containerPort and the tools agree."""
    ports = app_ports()
    assert len(set(ports.values())) == 1, ports


def test_compose_publishes_the_port_nginx_listens_on():
    """compose.yaml maps and health-checks the port proxy/nginx.conf listens on."""
    listen = int(facts.nginx_one("listen"))
    proxy = facts.compose()["services"]["proxy"]
    assert [int(str(mapping).rsplit(":", 1)[1]) for mapping in proxy["ports"]] == [listen]
    assert f"127.0.0.1:{listen}/" in " ".join(proxy["healthcheck"]["test"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_runs_as_the_images_user(overlay):
    """Each overlay's runAsUser/runAsGroup/fsGroup are the numeric USER of the Dockerfile it runs."""
    uid, gid = facts.dockerfile_user(OVERLAY_DOCKERFILES[overlay])
    rendered = Rendered(overlay)
    assert (rendered.security("runAsUser"), rendered.security("runAsGroup")) == (uid, gid)
    assert rendered.pod["securityContext"]["fsGroup"] == gid


def test_dockerfile_creates_the_user_it_runs_as():
    """The multi-stage image's groupadd/useradd make the UID and GID its USER names."""
    text = (ROOT / "Dockerfile").read_text()
    assert [int(n) for n in re.findall(r"groupadd --gid (\d+)", text)] == [facts.dockerfile_user("Dockerfile")[1]]
    assert [int(n) for n in re.findall(r"useradd --uid (\d+)", text)] == [facts.dockerfile_user("Dockerfile")[0]]


def test_compose_leaves_the_user_to_the_image():
    """compose.yaml sets no user for the app: the image's USER is the one source."""
    assert "user" not in facts.compose()["services"]["web"]
