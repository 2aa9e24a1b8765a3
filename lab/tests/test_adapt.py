"""The template as a user adapts it: README's "Adapt it" steps, followed literally in a copy."""

import subprocess
import sys

import pytest
from dockertools import ROOT, RUN_ID, build, context_files, copy_tracked, docker_or_fail, http, wait_for_status
from test_build import assert_code_change_reuses_dependency_layers

pytestmark = pytest.mark.docker
GREETING = "Hello from an adapted template!"
# Pure Python, no dependencies of its own: the point is the pin-and-hash round trip, not the package.
NEW_DEPENDENCY = "six"


@pytest.fixture(scope="module")
def adapted(base_image, distroless_base, tmp_path_factory):
    """A copy of the tracked tree with a new module imported by app.py and a new dependency."""
    copy = copy_tracked(tmp_path_factory.mktemp("adapted"))
    # Step 1: a new module, imported by app.py, listed in .dockerignore's allowlist.
    (copy / "greeting.py").write_text(f'import six\n\nMESSAGE = "{GREETING}" if six.PY3 else ""\n')
    app = (copy / "app.py").read_text()
    old = 'return "Hello from a multi-stage build!\\n"'
    assert old in app, "app.py's greeting changed: update this test"
    (copy / "app.py").write_text("import greeting\n" + app.replace(old, 'return greeting.MESSAGE + "\\n"'))
    with open(copy / ".dockerignore", "a") as f:
        f.write("!greeting.py\n")
    # Step 2: a new dependency in requirements.in, pinned with hashes by `make requirements`.
    with open(copy / "requirements.in", "a") as f:
        f.write(f"{NEW_DEPENDENCY}\n")
    make = subprocess.run(
        ["make", "requirements", f"VENV={ROOT / '.venv'}", f"PYTHON={sys.executable}"],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert make.returncode == 0, make.stdout + make.stderr
    return copy


def test_adapted_context_is_the_allowlist(adapted):
    """The new module reaches the build context through .dockerignore alone; tests and tooling don't."""
    files = context_files(adapted)
    assert "greeting.py" in files and "app.py" in files
    assert not [f for f in files if f.startswith(("tests/", "offline/", "scripts/", ".git"))], files


def test_new_dependency_is_pinned_with_hashes(adapted):
    """`make requirements` pinned the new package, with hashes, so --require-hashes installs it."""
    lock = (adapted / "requirements.txt").read_text()
    entry = lock.split(f"\n{NEW_DEPENDENCY}==", 1)
    assert len(entry) == 2, lock
    assert "--hash=sha256:" in entry[1].split("\n\n")[0].split("\n    # via")[0]


@pytest.fixture(scope="module", params=["Dockerfile", "Dockerfile.distroless"])
def adapted_image(adapted, request):
    """The adapted app built by each shipped Dockerfile, unchanged."""
    tag = f"pyslim-test:adapted-{request.param.lower().replace('.', '-')}-{RUN_ID}"
    build(adapted / request.param, tag, context=adapted)
    yield tag
    docker_or_fail("image", "rm", tag, check=False)


def test_adapted_image_serves_the_new_code(adapted_image, run):
    """The new module and its new dependency made it into the image, with no Dockerfile edit."""
    app = run(adapted_image)
    wait_for_status(app.url + "/", timeout=15)
    assert http(app.url + "/")[2].strip() == GREETING


def test_adapted_code_change_keeps_the_dependency_cache(adapted, tmp_path):
    """After the adaptation, editing app.py still rebuilds only the code and bytecode layers."""
    tag = f"pyslim-test:adapted-cache-{RUN_ID}"
    build(adapted / "Dockerfile", tag, context=adapted)
    try:
        assert_code_change_reuses_dependency_layers(tag, adapted, tmp_path)
    finally:
        docker_or_fail("image", "rm", tag, check=False)
