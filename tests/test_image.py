"""What the multi-stage image contains, and what it must never contain."""

import os
import re

import certifi
import facts
import pytest
from dockertools import (
    CA_BUNDLE,
    ROOT,
    RUN_ID,
    build,
    docker_or_fail,
    image_files,
    image_size,
    inspect,
    layer_files_containing,
    layer_paths,
    libraries_resolve,
    shell,
)

pytestmark = pytest.mark.docker
MB = 1_000_000
# Names of variables that hold secrets (GPG_KEY, a public key fingerprint, is not one).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|API_KEY|PRIVATE_KEY|ACCESS_KEY")


def test_multi_stage_is_at_least_60_percent_smaller_than_single_stage(multi_image, single_image):
    """The point of the template: dropping the toolchain shrinks the image by well over half
    (Size as `make compare` defines it: the bytes the layers unpack to, on either image store)."""
    multi, single = image_size(multi_image), image_size(single_image)
    smaller = 1 - multi / single
    print(f"single-stage {single / MB:.1f} MB, multi-stage {multi / MB:.1f} MB, {smaller:.0%} smaller")
    assert smaller >= 0.60


def test_multi_stage_adds_at_most_20_mb_over_its_base(multi_image, base_image):
    """Only RUNTIME_PACKAGES, the venv and the code sit on top of the base image."""
    added = image_size(multi_image) - image_size(base_image)
    print(f"multi-stage adds {added / MB:.1f} MB over {base_image}")
    assert added <= 20 * MB


@pytest.mark.platform
def test_no_compiler_in_final_image(multi_image):
    """gcc, cc and make stayed in the builder stage."""
    found = shell(multi_image, "for c in gcc cc make; do command -v $c; done; ls /usr/bin/*-gcc* 2>/dev/null; true")
    assert found.strip() == ""


def test_no_dev_package_in_final_image(multi_image):
    """No -dev package is installed: BUILD_PACKAGES stayed in the builder stage."""
    packages = shell(multi_image, "dpkg-query -W -f '${Package}\\n'").split()
    assert [p for p in packages if p.endswith("-dev")] == []


@pytest.fixture(scope="module")
def builder_image(multi_image):
    """The multi-stage Dockerfile's builder stage, tagged (from the build cache of multi_image)."""
    tag = f"{multi_image}-builder-{RUN_ID}"
    build(ROOT / "Dockerfile", tag, "--target", "builder")
    yield tag
    docker_or_fail("image", "rm", tag, check=False)


def test_dev_packages_files_stayed_in_the_builder(multi_image, builder_image):
    """No file of a BUILD_PACKAGES -dev package (headers, static and link-time libraries, *-config
    programs), as dpkg lists them in the builder, is in the final image."""
    dev = [p for p in facts.dockerfile_packages("BUILD_PACKAGES", "Dockerfile") if p.endswith("-dev")]
    if not dev:
        return  # a pure-Python app: nothing was built against, nothing to leak
    listed = shell(builder_image, f'dpkg-query -L {" ".join(dev)} | while read -r p; do [ -d "$p" ] || echo "$p"; done')
    paths = listed.split()
    assert paths, f"dpkg lists no files of {dev} in the builder"
    script = 'for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done'
    leaked = docker_or_fail(
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "/bin/sh",
        multi_image,
        "-c",
        script,
        "sh",
        *paths,
    ).stdout
    assert leaked.split() == []


def test_no_pip_cache_in_final_image(multi_image):
    """The pip cache lived in a BuildKit cache mount, never in a layer."""
    found = shell(multi_image, "find / -xdev -type d -path '*/.cache/pip' 2>/dev/null; true", user="0")
    assert found.strip() == ""


def test_no_apt_lists_in_final_image(multi_image, base_image):
    """apt's package lists went to /tmp and left with it: the image has the base's lists (apt-get
    dist-clean keeps the Release files) and no more."""
    script = "find /var/lib/apt/lists -type f ! -name lock | sort; ls /var/cache/apt/*.bin 2>/dev/null; true"
    assert shell(multi_image, script) == shell(base_image, script)


def test_runtime_layer_keeps_no_package_manager_leftovers(multi_image, base_image):
    """Installing libpq5 left no new copy of dpkg's and apt's logs, dpkg's status backup or
    ldconfig's aux-cache: each is the base's file unchanged, or emptied (deleted, it would leave a
    whiteout stamped with the build's clock)."""
    leftovers = [
        "/var/log/dpkg.log",
        "/var/log/apt/history.log",
        "/var/log/apt/term.log",
        "/var/log/apt/eipp.log.xz",
        "/var/lib/dpkg/status-old",
        "/var/cache/ldconfig/aux-cache",
    ]
    image, base = image_files(multi_image), image_files(base_image)
    changed = [
        path
        for path in leftovers
        if path in image
        and image[path].size
        and (path not in base or (image[path].size, image[path].mtime) != (base[path].size, base[path].mtime))
    ]
    assert changed == []


def test_venv_has_no_pip_or_setuptools(multi_image):
    """Installers are build tools: the shipped virtualenv carries neither pip nor setuptools."""
    found = shell(multi_image, "ls /opt/venv/bin /opt/venv/lib/python3*/site-packages")
    assert not re.search(r"^(pip|setuptools)", found, re.MULTILINE), found


def test_runtime_packages_are_installed(multi_image):
    """Each of RUNTIME_PACKAGES is a real Debian package in the image, as dpkg (and a scanner) sees it."""
    for package in facts.dockerfile_packages("RUNTIME_PACKAGES", "Dockerfile"):
        status = shell(multi_image, f"dpkg-query -W -f '${{Status}}' {package}")
        assert status == "install ok installed", package


@pytest.mark.platform
def test_every_venv_library_resolves_its_libraries(multi_image):
    """Each .so under /opt/venv finds every library it needs in the image: a library missing from
    RUNTIME_PACKAGES fails here, whatever the venv holds."""
    libraries = shell(multi_image, "find /opt/venv -name '*.so' -type f").split()
    resolved, report = libraries_resolve(multi_image, libraries)
    assert resolved, report


def test_console_entry_points_work(multi_image):
    """bin/gunicorn came along with the venv (the trap the site-packages-only copy falls into)."""
    out = docker_or_fail("run", "--rm", "--network", "none", multi_image, "gunicorn", "--version").stdout
    assert out.startswith("gunicorn (version ")


@pytest.mark.parametrize("which", ["multi", "single"])
def test_build_context_leftovers_absent_from_every_layer(which, request, context_canaries):
    """.git, .env files, tests and a planted canary never reach any layer of either image."""
    image = request.getfixturevalue(f"{which}_image")
    paths = layer_paths(image)
    leaked = [p for p in paths for name in context_canaries if re.search(rf"(^|/){re.escape(name)}", p)]
    assert leaked == []


@pytest.fixture(scope="module")
def canary_ca_bundle(tmp_path_factory):
    """A real CA bundle plus a unique line: still valid for pip, recognisable in any layer."""
    source = CA_BUNDLE or certifi.where()  # any valid bundle; hosts keep theirs in different places
    marker = f"# ca-canary-{RUN_ID}"
    path = tmp_path_factory.mktemp("ca") / "bundle.pem"
    path.write_text(open(source).read() + f"\n{marker}\n")
    return path, marker


@pytest.fixture(scope="module")
def image_built_with_canary_ca(multi_image, canary_ca_bundle):
    """The multi-stage image rebuilt with the canary bundle, the pip step forced to rerun."""
    path, _ = canary_ca_bundle
    tag = f"{multi_image}-ca-{RUN_ID}"
    # A secret's content is not part of the cache key: without --no-cache-filter the pip
    # step could come from the cache and the secret would never be mounted at all.
    out = build(ROOT / "Dockerfile", tag, "--no-cache-filter", "builder", ca_bundle=path)
    assert "pip --python /opt/venv/bin/python install" in out.stderr + out.stdout
    yield tag
    docker_or_fail("image", "rm", tag, check=False)


def test_ca_bundle_secret_absent_from_every_layer(image_built_with_canary_ca, canary_ca_bundle):
    """The CA bundle handed in as a build secret is in no file of any layer."""
    _, marker = canary_ca_bundle
    assert layer_files_containing(image_built_with_canary_ca, marker.encode()) == []


def test_ca_bundle_secret_absent_from_history(image_built_with_canary_ca, canary_ca_bundle):
    """docker history shows neither the bundle's content nor a copy of it."""
    _, marker = canary_ca_bundle
    history = docker_or_fail("history", "--no-trunc", image_built_with_canary_ca).stdout
    assert marker not in history
    assert "BEGIN CERTIFICATE" not in history


@pytest.mark.parametrize("which", ["multi", "single"])
def test_no_secret_in_env_or_history(which, request):
    """No password, token or key is baked into Config.Env or any history entry."""
    image = request.getfixturevalue(f"{which}_image")
    env = inspect(image)["Config"]["Env"]
    assert [e for e in env if SECRET_NAME.search(e.split("=")[0])] == []
    history = docker_or_fail("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    assert not re.search(SECRET_NAME.pattern + r"\w*=\S", history)


def test_source_label_is_the_repository_it_was_built_from(multi_image):
    """org.opencontainers.image.source is the SOURCE_URL make derived from the git remote, never a placeholder."""
    labels = inspect(multi_image)["Config"]["Labels"]
    assert labels["org.opencontainers.image.source"] == (os.environ.get("SOURCE_URL") or "unknown")
