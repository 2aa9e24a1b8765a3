"""How the Dockerfiles build: cache-friendly, and free of the site-packages trap."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockertools import ROOT, RUN_ID, build, context_files, docker_or_fail, inspect

HERE = Path(__file__).resolve().parent


# The code (COPY . ./) and the bytecode of what it imports (the warm-up run, which depends on it).
CODE_LAYERS = 2


@pytest.mark.docker
def assert_code_change_reuses_dependency_layers(image, source, workdir):
    """Rebuild image from a copy of source's build context with app.py edited: no dependency
    step re-runs, and only the last layers (the code and its bytecode) change."""
    for name in ["Dockerfile", ".dockerignore", *context_files(source)]:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, workdir / name)
    with open(workdir / "app.py", "a") as f:
        f.write(f"\n# changed by the cache test {RUN_ID}\n")
    tag = f"{image}-edit-{RUN_ID}"
    try:
        log = build(workdir / "Dockerfile", tag, context=workdir).stderr
        before, after = inspect(image)["RootFS"]["Layers"], inspect(tag)["RootFS"]["Layers"]
    finally:
        docker_or_fail("image", "rm", tag, check=False)
    assert len(before) == len(after)
    assert before[:-CODE_LAYERS] == after[:-CODE_LAYERS], "a layer below the code layer was rebuilt"
    assert before[-CODE_LAYERS] != after[-CODE_LAYERS], "the code layer did not change"
    for step in ("apt-get update", "pip --python /opt/venv/bin/python install"):
        lines = [line for line in log.splitlines() if step in line and re.match(r"#\d+ \[", line)]
        assert lines, f"step {step!r} not found in the build log"
        number = lines[0].split()[0]
        assert f"{number} CACHED" in log, f"step {step!r} was re-run:\n{log}"


def test_code_change_rebuild_reuses_dependency_layers(multi_image, tmp_path):
    """Changing only app.py re-runs no dependency step, and only the code and bytecode layers change."""
    assert_code_change_reuses_dependency_layers(multi_image, ROOT, tmp_path)


@pytest.fixture(scope="module")
def site_packages_only_image(base_image):
    """The well-known recipe that copies only site-packages between stages."""
    tag = f"pyslim-test:site-packages-only-{RUN_ID}"
    build(HERE / "fixtures" / "site-packages-only.Dockerfile", tag)
    yield tag
    docker_or_fail("image", "rm", tag, check=False)


@pytest.mark.docker
def test_site_packages_only_copy_loses_console_scripts(site_packages_only_image):
    """Regression: that recipe ships the gunicorn module but not bin/gunicorn, so it never starts."""
    module = docker_or_fail(
        "run", "--rm", "--network", "none", site_packages_only_image, "python", "-c", "import gunicorn"
    )
    assert module.returncode == 0
    script = docker_or_fail(
        "run", "--rm", "--network", "none", site_packages_only_image, "gunicorn", "--version", check=False
    )
    assert script.returncode != 0
    assert re.search(r"executable file not found|no such file", script.stderr, re.IGNORECASE), script.stderr
