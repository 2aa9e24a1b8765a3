"""The distroless image: half the size, nothing to exec but Python, and every library accounted for.

There is no shell in it, so these checks read the image's files (docker export) or run its own
Python and dynamic loader, never `sh -c`.
"""

import json
import os
import re

import facts
import pytest
from dockertools import (
    ROOT,
    RUN_ID,
    build,
    docker_or_fail,
    image_files,
    image_size,
    image_texts,
    inspect,
    libraries_resolve,
)

pytestmark = pytest.mark.docker
MB = 1_000_000
HERE = ROOT / "tests"
STATUS_D = "/var/lib/dpkg/status.d/"
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
    """The toolchain and the headers of BUILD_PACKAGES (and of python3-dev) stayed in the builder:
    no C header at all, the base has none."""
    found = [p for p in files if BIN_DIRS.match(p) and COMPILERS.match(os.path.basename(p))]
    found += [p for p in files if p.endswith((".h", "/pg_config")) and files[p].isfile()]
    assert found == []


def test_app_code_is_root_owned_and_read_only_for_the_app_user(files, distroless_image):
    """The app user (not root) can read its code and venv but owns none of it and can't write it:
    every file and directory under /app and /opt/venv, the contract's wsgi_app module among them."""
    user = int(inspect(distroless_image)["Config"]["User"].split(":")[0])
    module = facts.contract()["wsgi_app"].split(":")[0].replace(".", "/")
    assert f"/app/{module}.py" in files or f"/app/{module}/__init__.py" in files, module
    # A symlink's own mode is always 0777 and means nothing; its target is checked where it lies.
    trees = ("/app", "/opt/venv")
    paths = sorted(
        p for p, e in files.items() if (p in trees or p.startswith(tuple(t + "/" for t in trees))) and not e.issym()
    )
    assert {"/app", "/app/gunicorn.conf.py", "/opt/venv", "/opt/venv/bin/gunicorn"} <= set(paths)
    for path in paths:
        entry = files[path]
        assert entry.uid == 0 and entry.uid != user, (path, entry.uid)
        assert entry.mode & 0o022 == 0, (path, oct(entry.mode))
        assert entry.mode & 0o004, (path, oct(entry.mode))


@pytest.mark.platform
def test_every_venv_elf_resolves_its_libraries_in_the_image(files, distroless_image):
    """Each .so under /opt/venv finds every library it needs (RUNTIME_PACKAGES and their closure)
    with the image's own dynamic loader, whatever the venv holds: a library left behind fails here."""
    elves = sorted(p for p, e in files.items() if p.startswith("/opt/venv/") and e.isfile() and p.endswith(".so"))
    resolved, report = libraries_resolve(distroless_image, elves)
    assert resolved, report


@pytest.mark.platform
def test_ld_so_cache_names_every_library_the_packages_added(distroless_image, files, base_files):
    """The loader's cache was regenerated after RUNTIME_PACKAGES' closure was copied in: it names each
    library (its soname, libpq.so.5) added to the directory of the base's libc. A stale cache (the
    base's) makes the loader scan directories, and ctypes.util.find_library fail."""
    (libc,) = [p for p in base_files if re.fullmatch(r"/usr/lib/[^/]+/libc\.so\.6", p)]
    pattern = re.escape(os.path.dirname(libc)) + r"/lib[^/]+\.so\.\d+"
    added = sorted(p for p in files if p not in base_files and re.fullmatch(pattern, p))
    # The cache may name another path to the same file (/lib/..., through merged /usr's link): compare
    # the files the paths resolve to, in the image.
    code = (
        "import os, re, sys\n"
        "named = re.findall(rb'/[\\x21-\\x7e]+', open('/etc/ld.so.cache', 'rb').read())\n"
        "cached = {os.path.realpath(path.decode()) for path in named}\n"
        "print(*[path for path in sys.argv[1:] if os.path.realpath(path) not in cached])\n"
    )
    proc = docker_or_fail(
        "run", "--rm", "--network", "none", "--entrypoint", "python", distroless_image, "-c", code, *added
    )
    assert proc.stdout.split() == [], added


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


@pytest.fixture(scope="module")
def records(distroless_image):
    """{path: text} of the distroless image's status.d records."""
    return image_texts(distroless_image, STATUS_D)


@pytest.fixture(scope="module")
def base_records(distroless_base):
    """{path: text} of the distroless base's status.d records."""
    return image_texts(distroless_base, STATUS_D)


def runtime_packages():
    """RUNTIME_PACKAGES as Dockerfile.distroless names them: [] for a pure-Python app."""
    return facts.dockerfile_packages("RUNTIME_PACKAGES", "Dockerfile.distroless")


@pytest.mark.platform
def test_copied_libraries_are_recorded_for_scanners(files, base_files, records):
    """Every file the runtime-libs stage added outside the venv and app belongs to a package
    recorded in /var/lib/dpkg/status.d, as distroless records its own, with its md5sums."""
    added = {
        p
        for p, e in files.items()
        if e.isfile()
        and p not in base_files
        and not p.startswith(("/opt/venv/", "/app/", STATUS_D))
        and "/__pycache__/" not in p
    }
    new_records = sorted({p for p in files if p.startswith(STATUS_D)} - set(base_files))
    owned = set()
    for record in new_records:
        if record.endswith(".md5sums"):
            owned |= {"/" + line.split(None, 1)[1] for line in records[record].splitlines() if line.strip()}
    # Each copied package brings files (its copyright at least): records and files come together or not at all.
    assert bool(added) == bool(new_records), (sorted(added)[:5], new_records)
    assert sorted(added - owned) == []


def test_runtime_packages_are_recorded(records):
    """Each of RUNTIME_PACKAGES has a status.d record (copied in, or the base's own): the image says it
    holds them, as dpkg says it in the multi-stage image."""
    recorded = {name for text in records.values() for name in re.findall(r"^Package: (\S+)$", text, re.MULTILINE)}
    assert sorted(set(runtime_packages()) - recorded) == []


def test_copied_packages_are_what_runtime_packages_need_beyond_the_base(records, base_records):
    """Each package record runtime-libs added is one of RUNTIME_PACKAGES or reached from them through
    packages the base lacks: a base package's own dependencies (libssl3t64's openssl-provider-legacy)
    stay the base's choice. No RUNTIME_PACKAGES, no record added."""
    base = {os.path.basename(p) for p in base_records if not p.endswith(".md5sums")}
    by_name = {os.path.basename(p): text for p, text in records.items()}
    added = {name: text for name, text in by_name.items() if not name.endswith(".md5sums") and name not in base}
    reached, todo = set(), list(runtime_packages())
    while todo:
        name = todo.pop()
        if name in reached or name not in added:
            continue
        reached.add(name)
        for line in re.findall(r"^(?:Pre-)?Depends: (.*)$", added[name], re.MULTILINE):
            todo += [alt.split()[0].split(":")[0] for part in line.split(",") for alt in part.split("|")]
    assert sorted(set(added) - reached) == []
