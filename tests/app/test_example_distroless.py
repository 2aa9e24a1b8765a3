"""The example app in the distroless image: psycopg2's libpq and its closure (Kerberos, LDAP, SASL)
copied in, found by the loader and recorded for scanners. Delete this file with the example."""

import pytest
from dockertools import docker_or_fail, image_files, libraries_resolve, sbom

pytestmark = pytest.mark.docker
STATUS_D = "/var/lib/dpkg/status.d/"


@pytest.fixture(scope="module")
def files(distroless_image):
    """The distroless image's merged filesystem: {path: TarInfo}."""
    return image_files(distroless_image)


@pytest.mark.platform
def test_psycopg2_resolves_libpq_in_the_image(files, distroless_image):
    """psycopg2's extension is in the venv and the image's own loader finds libpq.so.5 for it (and a
    missing libldap or libgssapi of libpq's closure would fail here)."""
    elves = sorted(p for p, e in files.items() if p.startswith("/opt/venv/") and e.isfile() and p.endswith(".so"))
    assert any("/psycopg2/_psycopg" in p for p in elves), elves
    resolved, report = libraries_resolve(distroless_image, elves)
    assert resolved, report
    assert "libpq.so.5 => " in report


@pytest.mark.platform
def test_ld_so_cache_lists_the_copied_libraries(distroless_image):
    """The loader's cache was regenerated after libpq's closure was copied in: a stale cache
    (the base's) would make the loader fall back to scanning directories, and find_library fail."""
    code = "import ctypes.util; print(ctypes.util.find_library('pq'), ctypes.util.find_library('ldap'))"
    found = docker_or_fail("run", "--rm", "--network", "none", distroless_image, "python", "-c", code).stdout.split()
    assert found == ["libpq.so.5", "libldap.so.2"], found


def test_libpq5_is_a_copied_package_record(files, distroless_base):
    """libpq5 is not the base's: runtime-libs copied it in and wrote its status.d record."""
    new_records = sorted({p for p in files if p.startswith(STATUS_D)} - set(image_files(distroless_base)))
    assert f"{STATUS_D}libpq5" in new_records, new_records


@pytest.fixture(scope="module")
def image_sbom(distroless_image):
    """syft's JSON SBOM of the image."""
    return sbom(distroless_image)


def test_sbom_lists_libpq5_and_the_app_packages(image_sbom):
    """An SBOM tool (syft) sees the C library psycopg2 links and the Python packages."""
    names = {(a["type"], a["name"].lower()) for a in image_sbom["artifacts"]}
    for expected in [
        ("deb", "libpq5"),
        ("deb", "libldap2"),
        ("deb", "libkrb5-3"),
        ("python", "psycopg2"),
        ("python", "flask"),
        ("python", "gunicorn"),
    ]:
        assert expected in names, expected
