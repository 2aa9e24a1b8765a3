"""One commit, one image: the shipped images built twice from clean clones, with no cache, are the same
image, and their bytecode is valid whatever the file times. Holds for your app as long as its build
writes no clock (tests/reproduce.py names the file when it does)."""

import os
import struct
import subprocess

import pytest
from dockertools import ROOT, exported


def pyc_flags(image):
    """{path: flags word of the .pyc header} of every .pyc in the image (PEP 552: bit 0 hash-based,
    bit 1 checked against the source)."""
    with exported(image) as archive:
        return {
            "/" + entry.name: struct.unpack("<I", archive.extractfile(entry).read(8)[4:8])[0]
            for entry in archive
            if entry.isfile() and entry.name.endswith(".pyc")
        }


@pytest.mark.docker
@pytest.mark.parametrize("variant", ["multi-stage", "distroless"])
def test_every_pyc_is_checked_hash_based(variant, request):
    """Timestamp-based bytecode is valid only while the source keeps the time it had: the warm-up's
    bytecode is recompiled checked-hash, so it is used whatever the file times, and never once its
    source changes."""
    image = request.getfixturevalue({"multi-stage": "multi_image", "distroless": "distroless_image"}[variant])
    flags = pyc_flags(image)
    assert len(flags) > 200, f"{image}: only {len(flags)} .pyc files: the warm-up wrote too few to mean anything"
    wrong = sorted(path for path, word in flags.items() if word != 0b11)
    assert not wrong, f"{image}: {len(wrong)} .pyc not checked-hash-based, e.g. " + ", ".join(wrong[:5])


@pytest.mark.docker
@pytest.mark.reproduce
def test_same_commit_builds_the_same_image(multi_image, distroless_image):
    """`make reproduce`: each shipped image built twice from clean clones of HEAD with no cache, minutes
    after the session's build, has one image ID. Your app's own build steps are in it too."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.fail("not a git checkout with a commit: an image is reproduced from a commit", pytrace=False)
    proc = subprocess.run(["make", "reproduce"], cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.stdout.count("identical:") == 2, proc.stdout
