"""Checkouts that differ only in file modes or line endings build the same image, and it serves.

Two clones of this repository's HEAD, as template users make them: one under umask 077 (hardened
laptops, some CI: every file 0600), one with core.autocrlf=true (a Windows clone used from WSL2).
Each builds both shipped images; their files (paths, types, owners, modes, sizes; the app's bytes)
are those of the images built from this tree, and each serves /healthz as the app user.
"""

import os
import subprocess

import pytest
from dockertools import ROOT, RUN_ID, build, docker_or_fail, image_files, image_texts, wait_for_status

pytestmark = pytest.mark.docker
SHIPPED = {"multi": "Dockerfile", "distroless": "Dockerfile.distroless"}


def clone(dest, *git_options, umask=None):
    """`git clone` of this repository's HEAD into dest, with git options and the umask given."""
    # preexec_fn: the umask of the clone alone, not of this test process.
    subprocess.run(
        ["git", *git_options, "clone", "--quiet", str(ROOT), str(dest)],
        check=True,
        capture_output=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )
    return dest


@pytest.fixture(scope="module")
def private_clone(tmp_path_factory):
    """A clone made under umask 077."""
    return clone(tmp_path_factory.mktemp("umask077") / "repo", umask=0o077)


@pytest.fixture(scope="module")
def crlf_clone(tmp_path_factory):
    """A clone made with core.autocrlf=true, as git for Windows sets it."""
    return clone(tmp_path_factory.mktemp("crlf") / "repo", "-c", "core.autocrlf=true")


def tree(image):
    """Every path of the image with its type, owner, mode and size (not its time)."""
    return {
        path: (entry.type, entry.uid, entry.gid, entry.mode, entry.size)
        for path, entry in image_files(image).items()
        if path != "/.dockerenv"
    }


@pytest.fixture(scope="module")
def built(private_clone, crlf_clone):
    """{(checkout, which): tag} of both shipped images built from each clone; removed afterwards."""
    tags = {}
    for checkout, context in (("umask077", private_clone), ("crlf", crlf_clone)):
        for which, dockerfile in SHIPPED.items():
            tag = f"{os.environ.get('IMAGE', 'pyslim')}:{which}-{checkout}-{RUN_ID}"
            build(context / dockerfile, tag, context=context)
            tags[checkout, which] = tag
    yield tags
    for tag in tags.values():
        docker_or_fail("image", "rm", tag, check=False)


def test_umask_077_clone_has_private_files(private_clone):
    """The premise: such a clone's files are readable by their owner only."""
    assert (private_clone / "gunicorn.conf.py").stat().st_mode & 0o077 == 0


def test_crlf_clone_has_no_carriage_return_in_any_tracked_file(crlf_clone):
    """.gitattributes checks every text file out with LF whatever core.autocrlf says."""
    names = subprocess.run(["git", "ls-files"], cwd=crlf_clone, capture_output=True, text=True).stdout.split()
    with_cr = [name for name in names if b"\r" in (crlf_clone / name).read_bytes()]
    assert with_cr == []


@pytest.mark.parametrize("checkout", ["umask077", "crlf"])
@pytest.mark.parametrize("which", SHIPPED)
def test_checkout_builds_the_same_image_files(checkout, which, built, request):
    """The image from the odd checkout has the same files, owners and modes, and the same app code."""
    reference = request.getfixturevalue(f"{which}_image")
    assert tree(built[checkout, which]) == tree(reference)
    assert image_texts(built[checkout, which], "/app") == image_texts(reference, "/app")


@pytest.mark.parametrize("checkout", ["umask077", "crlf"])
@pytest.mark.parametrize("which", SHIPPED)
def test_checkout_image_serves(checkout, which, built, run):
    """The app user reads its code and gunicorn answers /healthz."""
    container = run(built[checkout, which])
    wait_for_status(container.url + "/healthz", timeout=30)
