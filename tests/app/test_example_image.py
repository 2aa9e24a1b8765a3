"""The example app in the multi-stage image: psycopg2 built against Debian's libpq, which ships as the
libpq5 package and nothing of libpq-dev. Delete this file with the example."""

import re

import pytest
from dockertools import shell

pytestmark = pytest.mark.docker


def test_no_libpq_headers_in_final_image(multi_image):
    """libpq-dev's headers (libpq-fe.h) and pg_config stayed in the builder stage."""
    found = shell(multi_image, "find / -xdev \\( -name libpq-fe.h -o -name pg_config \\) -type f", user="0")
    assert found.strip() == ""


def test_libpq5_is_installed(multi_image):
    """The runtime library psycopg2 links against is a real Debian package."""
    status = shell(multi_image, "dpkg-query -W -f '${Status}' libpq5")
    assert status == "install ok installed"


@pytest.mark.platform
def test_psycopg2_resolves_libpq_from_the_system(multi_image):
    """psycopg2 was compiled here against Debian's libpq, not shipped with a bundled copy."""
    ldd = shell(multi_image, "ldd /opt/venv/lib/python3*/site-packages/psycopg2/_psycopg*.so")
    line = next(row for row in ldd.splitlines() if "libpq.so.5" in row)
    assert re.search(r"=> /(usr/)?lib/\S+/libpq\.so\.5 ", line), ldd
    assert "not found" not in ldd
