"""The distroless image: half the size, nothing to exec but Python, and every library accounted for.

There is no shell in it, so these checks read the image's files (docker export) or run its own
Python and dynamic loader, never `sh -c`.
"""

import json
import os
import re

import pytest
from dockertools import (
    ROOT,
    RUN_ID,
    build,
    compare,
    docker_or_fail,
    image_files,
    image_size,
    image_texts,
    inspect,
    tool,
)

pytestmark = pytest.mark.docker
MB = 1_000_000
HERE = ROOT / "tests"
# Programs that let an attacker who gets code execution do more than Python already can.
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox", "toybox"}
PACKAGE_TOOLS = re.compile(r"^(apt|apt-get|apt-cache|apt-key|aptitude|dpkg|dpkg-[\w-]+|pip[\d.]*|ensurepip)$")
COMPILERS = re.compile(r"^(gcc|cc|c\+\+|g\+\+|cpp|ld|as|make|[\w.]+-linux-gnu-(gcc|ld|as)[\w.-]*)$")
BIN_DIRS = re.compile(r"^/(usr/)?(local/)?s?bin/|^/opt/venv/bin/")


@pytest.fixture(scope="module")
def files(distroless_image):
    """The distroless image's merged filesystem: {path: TarInfo}."""
    return image_files(distroless_image)


@pytest.fixture(scope="module")
def base_files(distroless_base):
    """The distroless base's merged filesystem: {path: TarInfo}."""
    return image_files(distroless_base)


def test_distroless_is_at_most_80_mb(distroless_image):
    """The whole image, base included, fits in 80 MB."""
    size = image_size(distroless_image)
    print(f"distroless {size / MB:.1f} MB")
    assert size <= 80 * MB


def test_distroless_is_at_most_60_percent_of_multi_stage(distroless_image, multi_image):
    """Same app, same venv: the runtime base is what shrinks."""
    distroless, multi = image_size(distroless_image), image_size(multi_image)
    print(f"distroless {distroless / MB:.1f} MB = {distroless / multi:.2f} x multi-stage {multi / MB:.1f} MB")
    assert distroless <= 0.60 * multi


@pytest.mark.platform
def test_no_shell_in_distroless(files):
    """No shell anywhere: a compromised worker can't `sh -c` its way further."""
    found = [p for p in files if os.path.basename(p) in SHELLS and not files[p].isdir()]
    assert found == []


def test_no_package_manager_or_pip_in_distroless(files):
    """No apt, dpkg or pip binaries, no pip module and no pip wheel for ensurepip to bootstrap
    (the base keeps Debian's ensurepip module, which can do nothing without one)."""
    found = [p for p in files if BIN_DIRS.match(p) and PACKAGE_TOOLS.match(os.path.basename(p))]
    found += [p for p in files if re.search(r"/pip/__init__\.py$|/pip-[^/]*\.whl$", p)]
    assert found == []


@pytest.mark.platform
def test_no_compiler_or_headers_in_distroless(files):
    """The toolchain, libpq-dev's headers and pg_config stayed in the builder."""
    found = [p for p in files if BIN_DIRS.match(p) and COMPILERS.match(os.path.basename(p))]
    found += [p for p in files if p.endswith((".h", "/pg_config")) and files[p].isfile()]
    assert found == []


def test_app_code_is_root_owned_and_read_only_for_the_app_user(files, distroless_image):
    """The app user (not root) can read its code and venv but owns none of it and can't write it."""
    user = int(inspect(distroless_image)["Config"]["User"].split(":")[0])
    paths = ["/app", "/app/app.py", "/app/gunicorn.conf.py", "/opt/venv", "/opt/venv/bin/gunicorn"]
    for path in paths:
        entry = files[path]
        assert entry.uid == 0 and entry.uid != user, (path, entry.uid)
        assert entry.mode & 0o022 == 0, (path, oct(entry.mode))
        assert entry.mode & 0o004, (path, oct(entry.mode))


@pytest.mark.platform
def test_every_venv_elf_resolves_its_libraries_in_the_image(files, distroless_image):
    """Each .so and binary under /opt/venv finds every library it needs (libpq and its closure
    included) with the image's own dynamic loader: a missing libldap or libgssapi fails here."""
    elves = sorted(p for p, e in files.items() if p.startswith("/opt/venv/") and e.isfile() and p.endswith(".so"))
    assert any("/psycopg2/_psycopg" in p for p in elves), elves
    # The loader is whatever ld-linux python3 itself was mapped with, so any architecture works.
    code = (
        "import subprocess, sys\n"
        "loader = next(l.split()[-1] for l in open('/proc/self/maps') if '/ld-linux' in l)\n"
        "bad = 0\n"
        "for path in sys.argv[1:]:\n"
        "    out = subprocess.run([loader, '--list', path], capture_output=True, text=True)\n"
        "    print(path, out.returncode, out.stdout, out.stderr)\n"
        "    bad += out.returncode != 0 or 'not found' in out.stdout\n"
        "sys.exit(bad)\n"
    )
    proc = docker_or_fail(
        "run", "--rm", "--network", "none", "--entrypoint", "python", distroless_image, "-c", code, *elves, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "libpq.so.5 => " in proc.stdout


@pytest.mark.platform
def test_ld_so_cache_lists_the_copied_libraries(distroless_image):
    """The loader's cache was regenerated after libpq's closure was copied in: a stale cache
    (the base's) would make the loader fall back to scanning directories, and find_library fail."""
    code = "import ctypes.util; print(ctypes.util.find_library('pq'), ctypes.util.find_library('ldap'))"
    found = docker_or_fail("run", "--rm", "--network", "none", distroless_image, "python", "-c", code).stdout.split()
    assert found == ["libpq.so.5", "libldap.so.2"], found


def test_venv_interpreter_is_the_runtime_python(distroless_image):
    """pyvenv.cfg points at the runtime's own interpreter, of the runtime's exact version."""
    code = (
        "import json, os, platform, sys, sysconfig\n"
        "cfg = dict(l.split(' = ', 1) for l in open('/opt/venv/pyvenv.cfg').read().splitlines() if ' = ' in l)\n"
        "print(json.dumps({'cfg': cfg, 'version': platform.python_version(), 'prefix': sys.prefix,"
        " 'base': sys.base_prefix, 'exe': os.path.realpath('/opt/venv/bin/python'),"
        " 'purelib': sysconfig.get_path('purelib')}))\n"
    )
    facts = json.loads(
        docker_or_fail("run", "--rm", "--network", "none", distroless_image, "python", "-c", code).stdout
    )
    assert facts["cfg"]["home"] == "/usr/bin", facts
    assert facts["cfg"]["version"] == facts["version"], facts
    assert facts["prefix"] == "/opt/venv" and facts["base"] == "/usr", facts
    assert facts["exe"].startswith("/usr/bin/python3"), facts
    minor = ".".join(facts["version"].split(".")[:2])
    assert facts["purelib"] == f"/opt/venv/lib/python{minor}/site-packages", facts


@pytest.fixture(scope="module")
def slim_venv_on_distroless(base_image, distroless_base):
    """The common mistake: a venv built on python:3.13-slim, copied onto distroless."""
    tag = f"pyslim-test:slim-venv-on-distroless-{RUN_ID}"
    build(HERE / "fixtures" / "slim-venv-on-distroless.Dockerfile", tag)
    yield tag
    docker_or_fail("image", "rm", tag, check=False)


def test_slim_built_venv_never_starts_on_distroless(slim_venv_on_distroless):
    """Regression: its bin/python points at /usr/local/bin/python3, which distroless doesn't have."""
    proc = docker_or_fail("run", "--rm", "--network", "none", slim_venv_on_distroless, check=False, timeout=60)
    assert proc.returncode != 0
    assert re.search(r"no such file or directory", proc.stderr, re.IGNORECASE), proc.stderr
    venv_python = docker_or_fail(
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/opt/venv/bin/python",
        slim_venv_on_distroless,
        "--version",
        check=False,
    )
    assert venv_python.returncode != 0, venv_python.stdout


@pytest.mark.platform
def test_copied_libraries_are_recorded_for_scanners(distroless_image, files, base_files):
    """Every file the runtime-libs stage added outside the venv and app belongs to a package
    recorded in /var/lib/dpkg/status.d, as distroless records its own, with its md5sums."""
    status = "/var/lib/dpkg/status.d/"
    added = {
        p
        for p, e in files.items()
        if e.isfile()
        and p not in base_files
        and not p.startswith(("/opt/venv/", "/app/", status))
        and "/__pycache__/" not in p
    }
    new_records = sorted({p for p in files if p.startswith(status)} - set(base_files))
    assert f"{status}libpq5" in new_records, new_records
    records = image_texts(distroless_image, status)
    owned = set()
    for record in new_records:
        if record.endswith(".md5sums"):
            owned |= {"/" + line.split(None, 1)[1] for line in records[record].splitlines() if line.strip()}
    assert added, "the runtime-libs layer added no files"
    assert sorted(added - owned) == []


def test_copied_packages_are_what_libpq5_needs_beyond_the_base(distroless_image, distroless_base):
    """Each package record runtime-libs added is libpq5 or reached from it through packages the base
    lacks: a base package's own dependencies (libssl3t64's openssl-provider-legacy) stay the base's choice."""
    status = "/var/lib/dpkg/status.d/"
    base = {os.path.basename(p) for p in image_texts(distroless_base, status) if not p.endswith(".md5sums")}
    records = {os.path.basename(p): text for p, text in image_texts(distroless_image, status).items()}
    added = {name: text for name, text in records.items() if not name.endswith(".md5sums") and name not in base}
    reached, todo = set(), ["libpq5"]
    while todo:
        name = todo.pop()
        if name in reached or name not in added:
            continue
        reached.add(name)
        for line in re.findall(r"^(?:Pre-)?Depends: (.*)$", added[name], re.MULTILINE):
            todo += [alt.split()[0].split(":")[0] for part in line.split(",") for alt in part.split("|")]
    assert "libpq5" in reached
    assert sorted(set(added) - reached) == []


@pytest.fixture(scope="module")
def sbom(distroless_image):
    """syft's JSON SBOM of the image, read from the local engine as `make compare` reads it (either
    image store, no registry, no network)."""
    return compare.sbom(distroless_image, tool("syft"))


def test_sbom_lists_libpq5_and_the_app_packages(sbom):
    """An SBOM tool (syft) sees the C library psycopg2 links and the Python packages."""
    names = {(a["type"], a["name"].lower()) for a in sbom["artifacts"]}
    for expected in [
        ("deb", "libpq5"),
        ("deb", "libldap2"),
        ("deb", "libkrb5-3"),
        ("python", "psycopg2"),
        ("python", "flask"),
        ("python", "gunicorn"),
    ]:
        assert expected in names, expected
