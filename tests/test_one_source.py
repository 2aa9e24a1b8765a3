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
# Every image compose.yaml runs beside the app (Postgres and nginx in the example), named as ${X_IMAGE:-default}.
NEW_COMPOSE = {
    name: f"registry.example/{name.lower()}:edited"
    for name in re.findall(r"\$\{(\w+_IMAGE):-[^}]+\}", (ROOT / "compose.yaml").read_text())
}
# make exports these to the tests; a user's shell doesn't have them.
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE") and k not in ("VARIANT", "IMAGE")}


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """A copy of the tracked tree, without lab/ (a user may delete it), each default edited once."""
    copy = copy_tracked(tmp_path_factory.mktemp("one-source"))
    shutil.rmtree(copy / "lab", ignore_errors=True)
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
    builds = re.findall(r"docker build [^&\n]+", out.stdout)
    assert len(builds) == 3, out.stdout
    for line in builds:
        for (_, arg), image in NEW.items():
            assert f"--build-arg {arg}={image} " in line, line


def test_make_runs_the_edited_compose_images(edited):
    """The Makefile's POSTGRES_IMAGE and NGINX_IMAGE are compose.yaml's defaults (a user without Postgres
    deletes it: the Makefile's then names nothing, and nothing uses it)."""
    for name, image in NEW_COMPOSE.items():
        assert make_variable(name, cwd=edited, env=CLEAN_ENV) == image


def test_compose_leaves_the_base_images_to_the_dockerfile(edited):
    """Run without make, compose passes no base image (so the Dockerfile's ARG decides) and runs the
    edited images beside the app; run by make, it passes make's (the same ARGs, or a mirror's)."""
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
    images = {service["image"] for name, service in services.items() if "build" not in service}
    assert set(NEW_COMPOSE.values()) <= images, images
    assert services["web"]["build"]["args"].get("PYTHON_IMAGE") == "from-make", services["web"]["build"]


def test_tests_read_the_edited_defaults(edited):
    """Run without make, the tests build from the same edited ARGs."""
    code = "import json, dockertools as d; print(json.dumps(d.BASE_IMAGES))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=edited / "tests", env=CLEAN_ENV, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {arg: image for (_, arg), image in NEW.items()}


def test_single_stage_names_the_same_python_as_multi_stage():
    """The baseline is only comparable on the same base; make passes Dockerfile's to both anyway."""
    assert dockerfile_arg("PYTHON_IMAGE", "Dockerfile.single_stage") == dockerfile_arg("PYTHON_IMAGE")


# --- facts stated in several files ------------------------------------------------------------

# Which image each Kubernetes overlay runs (its images: newTag is the tag `make build` gives it).
OVERLAY_DOCKERFILES = {"multi-stage": "Dockerfile", "distroless": "Dockerfile.distroless"}
SHIPPED_DOCKERFILES = sorted(set(OVERLAY_DOCKERFILES.values()))


def test_nginx_keeps_every_body_it_accepts_in_memory():
    """A body up to deploy/proxy/nginx.conf's client_max_body_size fits its in-memory buffer: never on disk."""
    assert facts.nginx_bytes("client_body_buffer_size") >= facts.nginx_bytes("client_max_body_size")


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
    # bind is also the port the warm-up and the HEALTHCHECK ask (gunicorn.conf.py's one _port).
    ports = {"gunicorn.conf.py bind": facts.gunicorn_port()}
    for dockerfile in ["Dockerfile.single_stage", *SHIPPED_DOCKERFILES]:
        ports[f"{dockerfile} EXPOSE"] = int(facts.dockerfile_lines(dockerfile, "EXPOSE")[-1])
    upstream = [value for value in facts.nginx("set") if value.startswith("$app ")]
    ports["deploy/proxy/nginx.conf upstream"] = int(upstream[0].rsplit(":", 1)[1])
    for overlay in OVERLAYS:
        ports[f"{overlay} containerPort"] = Rendered(overlay).port("http")
    # The tooling that publishes the container's port (tests, make compare).
    for path in [p for p in ("tests/dockertools.py", "lab/scripts/compare.py") if (ROOT / p).exists()]:
        found = re.findall(r"127\.0\.0\.1::(\d+)|\"(\d+)/tcp\"", (ROOT / path).read_text())
        assert found, f"{path} no longer publishes the app's port: update this test"
        for i, number in enumerate(found):
            ports[f"{path} publish #{i + 1}"] = int("".join(number))
    return ports


def test_every_file_names_the_same_app_port():
    """gunicorn's bind, EXPOSE, the HEALTHCHECK, nginx's upstream, the pods' containerPort and the tools agree."""
    ports = app_ports()
    assert len(set(ports.values())) == 1, ports


def test_compose_publishes_the_port_nginx_serves_the_app_on():
    """compose.yaml publishes the port of nginx's public server and health-checks its loopback-only one
    (deploy/proxy/nginx.conf), so the health check is never published and never the app's path."""
    public, health = facts.nginx("listen")[-1], facts.nginx("listen")[0]
    assert health.startswith("127.0.0.1:") and ":" not in public, facts.nginx("listen")
    proxy = facts.compose()["services"]["proxy"]
    assert [int(str(mapping).rsplit(":", 1)[1]) for mapping in proxy["ports"]] == [int(public)]
    assert f"http://{health}/" in " ".join(proxy["healthcheck"]["test"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_runs_as_the_images_user(overlay):
    """Each overlay's runAsUser/runAsGroup/fsGroup are the numeric USER of the Dockerfile it runs."""
    uid, gid = facts.dockerfile_user(OVERLAY_DOCKERFILES[overlay])
    rendered = Rendered(overlay)
    assert (rendered.security("runAsUser"), rendered.security("runAsGroup")) == (uid, gid)
    assert rendered.pod["securityContext"]["fsGroup"] == gid


def test_both_shipped_images_run_as_the_same_user():
    """One UID:GID in both shipped images, so one volume (and one securityContext) serves either."""
    assert facts.dockerfile_user("Dockerfile") == facts.dockerfile_user("Dockerfile.distroless")


def test_both_shipped_images_give_their_files_the_same_time():
    """One FILE_MTIME in both shipped Dockerfiles, an integer (touch --date=@ and the warm-up read it)."""
    times = {name: dockerfile_arg("FILE_MTIME", name) for name in ("Dockerfile", "Dockerfile.distroless")}
    assert len(set(times.values())) == 1 and times["Dockerfile"].isdigit(), times


def test_every_file_names_the_same_data_dir():
    """The images' DATA_DIR, the directory they create for it, compose's and the pods' mounts agree."""
    places = {}
    for dockerfile in SHIPPED_DOCKERFILES:
        places[f"{dockerfile} DATA_DIR"] = re.search(r"DATA_DIR=(\S+)", (ROOT / dockerfile).read_text()).group(1)
        places[f"{dockerfile} creates"] = re.search(
            r"install -d -o \S+ -g \S+ (?:/rootfs)?(/[^\s;]+)", (ROOT / dockerfile).read_text()
        ).group(1)
    for volume in facts.compose()["x-app"]["volumes"]:
        places[f"compose.yaml volume {volume}"] = volume.rsplit(":", 1)[1]
    for overlay in OVERLAYS:
        rendered = Rendered(overlay)
        mounts = [
            m["mountPath"]
            for c in [rendered.container, *rendered.pod.get("initContainers", [])]
            for m in c["volumeMounts"]
            if m["name"] == "data"
        ]
        places[f"{overlay} data mounts"] = mounts[0] if len(set(mounts)) == 1 and len(mounts) == 2 else mounts
    assert len(set(map(str, places.values()))) == 1, places


def test_dockerfile_creates_the_user_it_runs_as():
    """The multi-stage image's groupadd/useradd make the UID and GID its USER names."""
    text = (ROOT / "Dockerfile").read_text()
    assert [int(n) for n in re.findall(r"groupadd --gid (\d+)", text)] == [facts.dockerfile_user("Dockerfile")[1]]
    assert [int(n) for n in re.findall(r"useradd --uid (\d+)", text)] == [facts.dockerfile_user("Dockerfile")[0]]


def test_compose_leaves_the_user_to_the_image():
    """compose.yaml sets no user for the app: the image's USER is the one source."""
    assert "user" not in facts.compose()["services"]["web"]
