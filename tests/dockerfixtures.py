"""The docker fixtures: build each image once with the real docker CLI, run containers, clean up.
Imported by tests/conftest.py and lab/conftest.py."""

import subprocess

import pytest
from dockertools import (
    BASE_IMAGES,
    IMAGE,
    PYTHON_IMAGE,
    ROOT,
    RUN_ID,
    Container,
    Stack,
    build,
    dev_tree,
    docker_or_fail,
)


@pytest.fixture(scope="session")
def engine():
    """A Docker engine that answers, or a clear failure saying how to get one."""
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        pytest.fail("the docker CLI is not installed: these tests build and run real images", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            "no Docker engine answers (`docker info` failed): run `make engine` or start Docker.\n"
            + proc.stderr.strip(),
            pytrace=False,
        )
    return proc.stdout.strip()


@pytest.fixture(scope="session")
def context_canaries():
    """Files that must never reach an image, planted in the build context before any build."""
    names = [f"canary-{RUN_ID}.txt", ".env", ".env.production"]
    planted = []
    for name in names:
        path = ROOT / name
        if not path.exists():
            path.write_text(f"SECRET_TOKEN=canary-{RUN_ID}\n")
            planted.append(path)
    yield [f"canary-{RUN_ID}.txt", ".env", ".env.production", ".git/", "tests/", "lab/"]
    for path in planted:
        path.unlink()


def present_or_pulled(*images):
    """Each image, pulled if the engine doesn't have it; a clear failure where it can't be."""
    for image in images:
        if docker_or_fail("image", "inspect", image, check=False).returncode == 0:
            continue
        pulled = docker_or_fail("pull", "--quiet", image, check=False, timeout=900)
        if pulled.returncode != 0:
            pytest.fail(
                f"{image} is not here and can't be pulled: {pulled.stderr.strip()}\n"
                "Set the make variable for it to an image you have (a mirror), e.g. `make test PYTHON_IMAGE=...`",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def base_image(engine):
    """The base image both slim Dockerfiles start from."""
    present_or_pulled(PYTHON_IMAGE)
    return PYTHON_IMAGE


@pytest.fixture(scope="session")
def distroless_base(engine):
    """The distroless runtime base and the Debian image its builder starts from."""
    present_or_pulled(BASE_IMAGES["DISTROLESS_IMAGE"], BASE_IMAGES["DEBIAN_IMAGE"])
    return BASE_IMAGES["DISTROLESS_IMAGE"]


@pytest.fixture(scope="session")
def distroless_image(distroless_base, context_canaries):
    """The distroless image, built once per session."""
    tag = f"{IMAGE}:distroless"
    build(ROOT / "Dockerfile.distroless", tag)
    return tag


@pytest.fixture(scope="session")
def multi_image(base_image, context_canaries):
    """The multi-stage image, built once per session."""
    tag = f"{IMAGE}:multi-stage"
    build(ROOT / "Dockerfile", tag)
    return tag


@pytest.fixture(scope="session")
def single_image(base_image, context_canaries):
    """The naive single-stage image, built once per session."""
    tag = f"{IMAGE}:single-stage"
    build(ROOT / "Dockerfile.single_stage", tag)
    return tag


@pytest.fixture
def run(engine):
    """Start containers with Container(...) semantics; all are removed after the test."""
    started = []

    def start(image, *run_args, command=()):
        container = Container(image, *run_args, command=command)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


def compose_stack(tmp_path_factory, variant):
    """A compose stack of its own (`make up VARIANT=variant`), up with --wait (every service healthy),
    removed with its volume after."""
    stack = Stack(tmp_path_factory.mktemp("compose"), variant)
    # The images compose.yaml runs beside the app (Postgres and nginx, or whatever yours names).
    images = stack.compose("config", "--images").stdout.split()
    present_or_pulled(*(image for image in images if not image.startswith(f"{IMAGE}:")))
    try:
        stack.compose("up", "--wait", "--no-build", "--quiet-pull")
        yield stack
    finally:
        stack.compose("down", "--volumes", "--remove-orphans", check=False)


@pytest.fixture(scope="session")
def multi_stack(multi_image, tmp_path_factory):
    """The stack with the multi-stage image."""
    yield from compose_stack(tmp_path_factory, "multi-stage")


@pytest.fixture(scope="session")
def stack(multi_stack):
    """The stack as `make up` runs it (test_compose.py runs each of its tests on both variants)."""
    return multi_stack


@pytest.fixture(scope="session")
def distroless_stack(distroless_image, tmp_path_factory):
    """The stack with the distroless image."""
    yield from compose_stack(tmp_path_factory, "distroless")


@pytest.fixture(scope="module")
def dev_copy(multi_image, tmp_path_factory):
    """A copy of the tracked tree to edit and run `make dev`/`make up` in (dockertools.dev_tree), one per
    test module: (copy, env, url)."""
    with dev_tree(tmp_path_factory.mktemp("dev")) as tree:
        yield tree
