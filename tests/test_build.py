"""How the Dockerfiles build: the same packages in each, cache-friendly, a broken app fails the build
at once, and free of the site-packages trap."""

import re
import shutil
import time
from pathlib import Path

import facts
import pytest
from dockertools import ROOT, RUN_ID, build, context_files, copy_tracked, docker_or_fail, inspect

HERE = Path(__file__).resolve().parent
SHIPPED = ["Dockerfile", "Dockerfile.distroless"]


def test_dockerfiles_name_the_same_packages():
    """BUILD_PACKAGES and RUNTIME_PACKAGES are the same in every Dockerfile that names them: edit one, edit all."""
    for name, dockerfiles in (("BUILD_PACKAGES", [*SHIPPED, "Dockerfile.single_stage"]), ("RUNTIME_PACKAGES", SHIPPED)):
        values = {dockerfile: facts.dockerfile_packages(name, dockerfile) for dockerfile in dockerfiles}
        assert len({tuple(v) for v in values.values()}) == 1, f"{name} differs between the Dockerfiles: {values}"


# The code (COPY --from=builder /app), WORKDIR's (empty: /app is there by then) and the bytecode of
# what it imports (the warm-up run, which depends on it).
CODE_LAYERS = 3


def assert_code_change_reuses_dependency_layers(image, source, workdir):
    """Rebuild image from a copy of source's build context with its code edited (gunicorn.conf.py: every
    app has it): no dependency step re-runs, and only the last layers (the code and its bytecode) change."""
    for name in ["Dockerfile", ".dockerignore", *context_files(source)]:
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, workdir / name)
    with open(workdir / "gunicorn.conf.py", "a") as f:
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


@pytest.mark.docker
def test_code_change_rebuild_reuses_dependency_layers(multi_image, tmp_path):
    """Changing only the code re-runs no dependency step, and only the code and bytecode layers change."""
    assert_code_change_reuses_dependency_layers(multi_image, ROOT, tmp_path)


@pytest.mark.docker
@pytest.mark.parametrize("dockerfile", SHIPPED)
def test_app_that_fails_to_import_fails_the_build_at_once(dockerfile, multi_image, distroless_image, tmp_path):
    """A wsgi_app that can't be imported stops the warm-up as soon as gunicorn exits, with Python's
    traceback in the build log, instead of waiting out the warm-up's 300 s."""
    copy_tracked(tmp_path)
    conf = tmp_path / "gunicorn.conf.py"
    conf.write_text(re.sub(r"(?m)^wsgi_app = .*$", 'wsgi_app = "no_such_module:app"', conf.read_text()))
    tag = f"pyslim-test:broken-{RUN_ID}"
    started = time.monotonic()
    try:
        with pytest.raises(AssertionError) as failed:
            build(tmp_path / dockerfile, tag, context=tmp_path)
    finally:
        docker_or_fail("image", "rm", tag, check=False)
    took = time.monotonic() - started
    assert "ModuleNotFoundError: No module named 'no_such_module'" in str(failed.value)
    assert "warm-up: gunicorn exited" in str(failed.value)
    assert took < 120, f"the failed build took {took:.0f} s"


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
