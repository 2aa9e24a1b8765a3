"""Every default is set in one place: edit it there, in a copy of the template, and everything follows."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from dockertools import copy_tracked, dockerfile_arg, make_variable

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
