"""The offline distroless stand-in has what gcr.io/distroless/python3-debian13:nonroot has, and no more.

Files are read from `docker export` of a container that never starts, so a check does not depend
on the image's own tools; behaviour is checked by running the image's entrypoint, python3.13.
The `tracked_docker` fixture (conftest.py) removes every container it made.
"""

import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

import pytest

IMAGE = os.environ.get("DISTROLESS_IMAGE", "offline/gcr.io/distroless/python3-debian13:nonroot")
# The one list of packages: the Dockerfile unpacks these, and the image must record exactly these.
PACKAGES_TXT = Path(__file__).resolve().parent.parent / "distroless" / "packages.txt"
STATUS_D = "var/lib/dpkg/status.d"
BIN_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin")

pytestmark = pytest.mark.docker


def upstream_packages() -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in PACKAGES_TXT.read_text().splitlines())
    return {line for line in lines if line}


class ImageFiles:
    """The image's filesystem as a tar archive: members by path (no leading "/"), and contents."""

    def __init__(self, path: Path):
        self.path = path
        with tarfile.open(path) as tar:
            self.members = {m.name.rstrip("/").removeprefix("./"): m for m in tar.getmembers()}

    def read(self, name: str) -> str:
        with tarfile.open(self.path) as tar:
            return tar.extractfile(self.members[name]).read().decode()

    def in_bin_dirs(self) -> dict[str, tarfile.TarInfo]:
        return {n: m for n, m in self.members.items() if n.rpartition("/")[0] in BIN_DIRS}


_exported: dict[str, ImageFiles] = {}
_export_dir = tempfile.mkdtemp(prefix="distroless-test-")


@pytest.fixture(scope="module", autouse=True)
def _remove_export():
    yield
    shutil.rmtree(_export_dir, ignore_errors=True)


def files(tracked_docker) -> ImageFiles:
    """Exported once per image (inside a test, so a missing engine fails it instead of erroring)."""
    if IMAGE not in _exported:
        name = tracked_docker.container("export")
        tracked_docker("create", "--name", name, IMAGE)
        path = Path(_export_dir) / "rootfs.tar"
        tracked_docker("export", "--output", str(path), name, timeout=120)
        _exported[IMAGE] = ImageFiles(path)
    return _exported[IMAGE]


def python(tracked_docker, code: str, *args: str) -> str:
    """Run code with the image's entrypoint (python3.13) and return what it printed."""
    return tracked_docker("run", "--rm", *args, IMAGE, "-c", code).stdout.strip()


def test_installs_exactly_the_packages_upstream_does(tracked_docker):
    """status.d names every package of upstream's lock (packages.txt), and nothing else."""
    recorded = {
        name.rpartition("/")[2]
        for name in files(tracked_docker).members
        if name.startswith(STATUS_D + "/") and not name.endswith(".md5sums")
    }
    expected = upstream_packages()
    assert recorded == expected, f"missing: {sorted(expected - recorded)}, extra: {sorted(recorded - expected)}"


def test_every_package_has_a_status_record_and_file_list(tracked_docker):
    """Each package has its control file (name, version, arch) and md5sums, as scanners expect."""
    image = files(tracked_docker)
    for package in sorted(upstream_packages()):
        record = image.read(f"{STATUS_D}/{package}")
        assert re.search(rf"^Package: {re.escape(package)}$", record, re.M), record
        assert re.search(r"^Version: \S+$", record, re.M), record
        assert re.search(r"^Architecture: \S+$", record, re.M), record
        md5sums = image.read(f"{STATUS_D}/{package}.md5sums")
        assert re.match(r"^[0-9a-f]{32}  \S", md5sums), f"{package}.md5sums: {md5sums[:200]!r}"


def test_has_no_shell(tracked_docker):
    """No shell anywhere on the PATH: nothing to exec into, like upstream."""
    shells = {"sh", "bash", "dash", "ash", "zsh", "busybox"}
    found = [n for n in files(tracked_docker).in_bin_dirs() if n.rpartition("/")[2] in shells]
    assert found == []


def test_has_no_package_manager(tracked_docker):
    """No apt or dpkg program and no dpkg database: packages are only recorded in status.d."""
    image = files(tracked_docker)
    found = [n for n in image.in_bin_dirs() if re.match(r"(apt|dpkg)", n.rpartition("/")[2])]
    assert found == []
    assert "var/lib/dpkg/status" not in image.members


def test_has_no_pip(tracked_docker):
    """No pip program, module or bundled wheel (ensurepip's wheels are not shipped either)."""
    image = files(tracked_docker)
    found = [n for n in image.in_bin_dirs() if re.match(r"pip[\d.]*$", n.rpartition("/")[2])]
    found += [n for n in image.members if re.search(r"/pip(/__init__\.py|-[^/]*\.whl)$", n)]
    assert found == []
    assert python(tracked_docker, "import importlib.util; print(importlib.util.find_spec('pip'))") == "None"


def test_passwd_and_group_have_root_nonroot_and_nobody(tracked_docker):
    """The three users and groups upstream defines, with their ids, homes and nologin shells."""
    image = files(tracked_docker)
    passwd = image.read("etc/passwd").splitlines()
    assert passwd == [
        "root:x:0:0:root:/root:/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin",
    ]
    groups = {line.split(":")[0]: line.split(":")[2] for line in image.read("etc/group").splitlines()}
    assert {name: groups.get(name) for name in ("root", "nonroot", "nobody")} == {
        "root": "0",
        "nonroot": "65532",
        "nobody": "65534",
    }


def test_runs_as_nonroot_by_default(tracked_docker):
    """The :nonroot tag's user is numeric 65532 (runAsNonRoot can verify it), and it applies."""
    user = tracked_docker("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user == "65532"
    assert python(tracked_docker, "import os; print(os.getuid(), os.getgid())") == "65532 65532"


def test_starts_in_a_home_only_nonroot_can_use(tracked_docker):
    """The working directory is /home/nonroot, owned by 65532, mode 0700, and writable."""
    home = files(tracked_docker).members["home/nonroot"]
    assert (home.uid, home.gid, home.mode) == (65532, 65532, 0o700)
    code = "import os; open('probe', 'w').close(); print(os.getcwd())"
    assert python(tracked_docker, code) == "/home/nonroot"


def test_entrypoint_is_debians_python3_13(tracked_docker):
    """ENTRYPOINT is /usr/bin/python3.13, and python3 and python point at it, as upstream's."""
    entrypoint = tracked_docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}", IMAGE).stdout.strip()
    assert entrypoint == '["/usr/bin/python3.13"]'
    members = files(tracked_docker).members
    assert {n: members[n].linkname for n in ("usr/bin/python3", "usr/bin/python")} == {
        "usr/bin/python3": "/usr/bin/python3.13",
        "usr/bin/python": "/usr/bin/python3.13",
    }


def test_python_loads_its_native_modules(tracked_docker):
    """The extension modules that need the packages' shared libraries all import."""
    out = python(tracked_docker, "import ssl, sqlite3, ctypes, zlib, lzma, bz2, uuid, json; print(ssl.OPENSSL_VERSION)")
    assert out.startswith("OpenSSL 3."), out


def test_ships_no_stdlib_bytecode(tracked_docker):
    """No .pyc: Debian compiles them in postinst, which upstream never runs either."""
    found = [n for n in files(tracked_docker).members if n.endswith(".pyc")]
    assert found == []


def test_find_library_uses_the_ld_so_cache(tracked_docker):
    """/etc/ld.so.cache is there, so ctypes.util.find_library() (`ldconfig -p`) finds libraries."""
    cache = files(tracked_docker).members.get("etc/ld.so.cache")
    assert cache is not None and cache.size > 0, "no /etc/ld.so.cache"
    code = "import ctypes.util as u; print(u.find_library('ssl'), u.find_library('c'), u.find_library('z'))"
    assert python(tracked_docker, code) == "libssl.so.3 libc.so.6 libz.so.1"


def test_ld_so_cache_is_what_ldconfig_writes_in_the_image(tracked_docker):
    """The shipped cache equals the one /sbin/ldconfig regenerates inside the image (upstream's check)."""
    code = (
        "import hashlib, subprocess\n"
        "digest = lambda: hashlib.sha256(open('/etc/ld.so.cache', 'rb').read()).hexdigest()\n"
        "before = digest()\n"
        "subprocess.run(['/sbin/ldconfig', '-X'], check=True)\n"
        "print(before == digest())"
    )
    assert python(tracked_docker, code, "--user", "0") == "True"


def test_tmp_is_world_writable_and_sticky(tracked_docker):
    """/tmp is 1777, root-owned: every user can write there, and only delete its own files."""
    tmp = files(tracked_docker).members["tmp"]
    assert (tmp.uid, tmp.mode) == (0, 0o1777)


def test_ca_bundle_is_trusted_by_default(tracked_docker):
    """ssl's default context loads the bundle SSL_CERT_FILE names, and it holds Debian's CAs."""
    assert files(tracked_docker).members["etc/ssl/certs/ca-certificates.crt"].size > 100_000
    code = (
        "import ssl; print(ssl.get_default_verify_paths().cafile,"
        " ssl.create_default_context().cert_store_stats()['x509_ca'])"
    )
    cafile, count = python(tracked_docker, code).split()
    assert cafile == "/etc/ssl/certs/ca-certificates.crt"  # portable: the image's path, not the host's
    assert int(count) > 100


def test_tzdata_resolves_time_zones(tracked_docker):
    """zoneinfo finds tzdata's database: Paris is UTC+1 in January, UTC+2 in July."""
    code = (
        "import datetime as d, zoneinfo; z = zoneinfo.ZoneInfo('Europe/Paris');"
        " print(d.datetime(2025, 1, 15, tzinfo=z).utcoffset(), d.datetime(2025, 7, 15, tzinfo=z).utcoffset())"
    )
    assert python(tracked_docker, code) == "1:00:00 2:00:00"


def test_os_release_names_distroless_debian_13(tracked_docker):
    """/etc/os-release is upstream's: Distroless, on Debian 13 (trixie)."""
    release = python(tracked_docker, "print(open('/etc/os-release').read())")
    assert 'PRETTY_NAME="Distroless"' in release.splitlines()
    assert 'VERSION="Debian GNU/Linux 13 (trixie)"' in release.splitlines()
