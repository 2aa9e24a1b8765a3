"""Where a published image says it comes from, and under which license: no placeholder, no token."""

import os
import re
import shutil
import subprocess

import pytest
from dockertools import ROOT, make_variable

PLACEHOLDER = "github.com/example/" + "pyslim"  # split, so this file does not name it


@pytest.fixture
def clone_with_remote(tmp_path):
    """A git repository holding this Makefile, whose origin is set to the URL given."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    # make test exports the SOURCE_URL it derived; a set variable would win over the remote.
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_URL"}

    def source_url(remote):
        if remote is not None:
            subprocess.run(["git", "remote", "add", "origin", remote], cwd=tmp_path, check=True)
        return make_variable("SOURCE_URL", cwd=tmp_path, env=env)

    return source_url


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("git@github.com:Owner/Repo.git", "https://github.com/Owner/Repo"),
        ("ssh://git@github.com:22/owner/repo.git", "https://github.com/owner/repo"),
        ("https://x-access-token:ghs_secret@github.com/owner/repo", "https://github.com/owner/repo"),
        ("http://gitlab.example.org/group/sub/repo/", "https://gitlab.example.org/group/sub/repo"),
        ("/srv/git/repo", "unknown"),
        (None, "unknown"),
    ],
    ids=["https", "scp-like", "ssh", "token", "http-subgroup", "local-path", "no-remote"],
)
def test_source_url_is_the_origin_remote_as_https_without_credentials(clone_with_remote, remote, expected):
    """make derives SOURCE_URL from origin, as an https URL with no user or token; else says unknown."""
    assert clone_with_remote(remote) == expected


def test_make_passes_source_url_to_every_build():
    """BUILD_FLAGS, used by every docker build of the Makefile, carries the derived SOURCE_URL."""
    flags = make_variable("BUILD_FLAGS")
    assert f"--build-arg SOURCE_URL={make_variable('SOURCE_URL')}" in flags


def test_source_label_comes_from_the_build_arg():
    """The Dockerfile's source label is ${SOURCE_URL}, whose default is no URL at all."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'org.opencontainers.image.source="${SOURCE_URL}"' in dockerfile
    assert re.search(r"^ARG SOURCE_URL=unknown$", dockerfile, re.MULTILINE)


def test_no_tracked_file_names_the_placeholder_repository():
    """The example URL the source label once held is gone from every file, so no build can bring it back."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = [
        name
        for name in names.split("\0")
        if name and (ROOT / name).is_file() and PLACEHOLDER.encode() in (ROOT / name).read_bytes()
    ]
    assert not offenders


def test_license_file_is_the_license_the_label_declares():
    """LICENSE is the MIT license, which the image's licenses label declares."""
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert 'org.opencontainers.image.licenses="MIT"' in (ROOT / "Dockerfile").read_text()
