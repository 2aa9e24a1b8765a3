"""The Python stand-in's two recipes build the same Python: Dockerfile (native, as docker-library
builds it) and cross.Dockerfile (CPython cross-compiled for another platform). Nothing here needs an
engine: they are read as text, and every difference must be one the cross build needs.
"""

import os
import re
from pathlib import Path

# Where the official image is in use these recipes build nothing, and conftest.py skips the checks.
IMAGE = os.environ.get("PYTHON_IMAGE", "offline/python:3.13-slim-trixie")
HERE = Path(__file__).resolve().parent.parent / "python"
NATIVE = (HERE / "Dockerfile").read_text()
CROSS = (HERE / "cross.Dockerfile").read_text()


def env(text):
    return dict(re.findall(r"^ENV (\w+) (.+)$", text, re.MULTILINE))


def configure_options(text):
    block = re.search(r"\./configure \\\n(.*?)\t; \\\n", text, re.DOTALL)[1]
    return sorted(re.findall(r"(--[\w-]+)(?:=\S+)?", block))


def install_list(text, after):
    """Package names of the first `apt-get install` list after the marker."""
    block = re.search(
        re.escape(after) + r".*?apt-get install -y --no-install-recommends \\\n(.*?)\t; \\\n", text, re.DOTALL
    )
    return {line.strip(' \t\\"').split(":")[0] for line in block[1].splitlines() if line.strip(" \t\\")}


def code(text):
    """text without its comment lines."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def test_same_python_release_and_signature():
    """Same CPython version, tarball checksum and release manager's key."""
    assert env(CROSS) == env(NATIVE)


def test_same_configure_options_but_the_cross_ones():
    """Same ./configure options; the cross build adds only --host and --with-build-python."""
    native, cross = configure_options(NATIVE), configure_options(CROSS)
    assert sorted(set(cross) - set(native)) == ["--host", "--with-build-python"]
    assert set(native) <= set(cross)


def test_same_build_dependencies_but_the_cross_toolchain():
    """The same -dev packages (for the target), tk-dev excepted; the native compiler becomes the
    cross toolchain, plus pkgconf and the build-platform interpreter."""
    native = install_list(NATIVE, "savedAptMark=")
    cross = install_list(CROSS, "FROM --platform=$BUILDPLATFORM")
    assert native - cross == {"gcc", "tk-dev"}
    assert cross - native == {"crossbuild-essential-$TARGETARCH", "pkgconf", "python3.13"}


def test_same_runtime_packages_clean_up_and_symlinks():
    """The image's own steps are the native recipe's: runtime packages, the clean-up of tests and
    bytecode, the ldd pass that keeps the libraries, and the python/pip symlinks."""
    assert install_list(CROSS, "# runtime dependencies") == install_list(NATIVE, "# runtime dependencies")
    for step in (
        r"find /usr/local -type f -executable .*?xargs -r apt-mark manual \\\n",
        r"# make some useful symlinks.*?done\n",
        r"-name '\*\.pyc' -o -name '\*\.pyo' -o -name 'libpython\*\.a'",
    ):
        native = re.search(step, NATIVE, re.DOTALL)
        cross = re.search(step, CROSS, re.DOTALL)
        assert native and cross, step
        assert code(cross[0]) == code(native[0]), step
