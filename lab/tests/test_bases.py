"""lab/offline/bases.sh against a fake `docker`: stand-ins only with OFFLINE=1 or where no registry
answers at all, and then announced; any other pull failure stops it before anything is built."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

OFFLINE_DIR = Path(__file__).resolve().parents[1] / "offline"
OFFICIAL = {
    "PYTHON_IMAGE": "python:3.13-slim-trixie",
    "POSTGRES_IMAGE": "postgres:17-trixie",
    "DEBIAN_IMAGE": "debian:trixie-slim",
    "DISTROLESS_IMAGE": "gcr.io/distroless/python3-debian13:nonroot",
    "NGINX_IMAGE": "nginx:trixie",
}
STANDINS = {var: f"offline/{image}" for var, image in OFFICIAL.items()}

# What `docker pull python:3.13-slim-trixie` prints on the lab's CI machine, which has no registry.
NO_DNS = (
    'Error response from daemon: Get "https://registry-1.docker.io/v2/": dial tcp: '
    "lookup registry-1.docker.io on 10.255.255.53:53: no such host"
)
UNREACHABLE = {
    "no-dns": NO_DNS,
    "refused": 'Error response from daemon: Get "https://gcr.io/v2/": dial tcp 142.250.74.116:443: connect: connection refused',
    "timeout": 'Error response from daemon: Get "https://registry-1.docker.io/v2/": net/http: request canceled '
    "while waiting for connection (Client.Timeout exceeded while awaiting headers)",
}
REFUSALS = {
    "toomanyrequests": "Error response from daemon: toomanyrequests: You have reached your pull rate limit. "
    "You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit",
    "unauthorized": 'Error response from daemon: Head "https://registry-1.docker.io/v2/library/python/manifests/'
    '3.13-slim-trixie": unauthorized: incorrect username or password',
    "manifest-unknown": "Error response from daemon: manifest for python:3.13-slim-trixie not found: "
    "manifest unknown: manifest unknown",
}

# Logs every call; answers as an amd64 engine with nothing in its store (except FAKE_PRESENT's
# images), whose every pull fails with FAKE_PULL_ERROR. Anything unforeseen fails, so a new call
# in the script under test is noticed rather than answered by accident.
FAKE_DOCKER = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >>"$FAKE_LOG"
case "$1" in
info) echo '[["Backing Filesystem","extfs"]]' ;;
version) case "$*" in *Arch*) echo amd64 ;; *) echo 27.0.0 ;; esac ;;
buildx) echo 'github.com/docker/buildx v0.17.0 fake' ;;
compose) echo 2.30.0 ;;
image)
	for image in $FAKE_PRESENT; do [ "$image" = "${!#}" ] && echo linux/amd64 && exit 0; done
	echo "Error response from daemon: No such image: ${!#}" >&2
	exit 1
	;;
pull) printf '%s\n' "$FAKE_PULL_ERROR" >&2 && exit 1 ;;
build) ;;
*) echo "fake docker: unexpected call: $*" >&2 && exit 2 ;;
esac
"""
# debootstrap needs root and Debian's archive: the Debian stand-in's build is only logged.
FAKE_DEBIAN_BUILD = """#!/usr/bin/env bash
printf 'debian/build.sh %s\\n' "$*" >>"$FAKE_LOG"
"""


def _executable(path, text):
    path.write_text(text)
    path.chmod(0o755)


def run_bases(tmp_path, pull_error=NO_DNS, present=(), **env):
    """Run a copy of lab/offline/ (its Debian build faked) with the fake docker first on PATH."""
    offline = tmp_path / "offline"
    shutil.copytree(OFFLINE_DIR, offline, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    _executable(offline / "debian" / "build.sh", FAKE_DEBIAN_BUILD)
    (tmp_path / "bin").mkdir()
    _executable(tmp_path / "bin" / "docker", FAKE_DOCKER)
    log = tmp_path / "docker.log"
    log.touch()
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DOCKER_HOST", "DOCKER_STORE", "OFFLINE", "PLATFORM", "CA_BUNDLE"}
    }
    out = tmp_path / "build" / "bases.env"
    result = subprocess.run(
        [str(offline / "bases.sh"), str(out)],
        env={
            **clean,
            **OFFICIAL,
            "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_PULL_ERROR": pull_error,
            "FAKE_PRESENT": " ".join(present),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = log.read_text().splitlines()
    written = dict(line.split("=", 1) for line in out.read_text().splitlines()) if out.exists() else None
    return result, calls, written


def builds(calls):
    return [c for c in calls if c.startswith(("build ", "debian/build.sh "))]


@pytest.mark.parametrize("error", REFUSALS.values(), ids=REFUSALS.keys())
def test_registry_refusal_stops_before_building_or_writing(tmp_path, error):
    result, calls, written = run_bases(tmp_path, pull_error=error)
    assert result.returncode != 0
    assert error in result.stderr
    assert any(c.startswith("pull ") for c in calls)
    assert builds(calls) == []
    assert written is None
    assert list((tmp_path / "build").iterdir()) == []  # no half-written .tmp either


def test_registry_refusal_says_what_to_do(tmp_path):
    result, _, _ = run_bases(tmp_path, pull_error=REFUSALS["toomanyrequests"])
    for way_out in ("Retry", "docker login", "PYTHON_IMAGE=", "OFFLINE=1"):
        assert way_out in result.stderr


@pytest.mark.parametrize("error", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_no_registry_answering_builds_standins(tmp_path, error):
    result, calls, written = run_bases(tmp_path, pull_error=error)
    assert result.returncode == 0, result.stderr
    assert written == STANDINS
    assert "debian/build.sh offline/debian:trixie-slim trixie offline.recipe=" in " ".join(builds(calls))
    tags = {c.split("--tag ")[1].split()[0] for c in builds(calls) if c.startswith("build ")}
    assert tags == set(STANDINS.values()) - {STANDINS["DEBIAN_IMAGE"]}


def test_no_registry_answering_is_announced_in_a_banner(tmp_path):
    result, _, _ = run_bases(tmp_path, pull_error=NO_DNS)
    banner = result.stderr[result.stderr.index("STAND-INS IN USE") :]
    for var, image in STANDINS.items():
        assert f"{var}={image}" in banner
    assert banner.count(f"no registry answered: {NO_DNS}") == len(STANDINS)


def test_offline_uses_standins_without_pulling(tmp_path):
    result, calls, written = run_bases(tmp_path, OFFLINE="1")
    assert result.returncode == 0, result.stderr
    assert not any(c.startswith("pull ") for c in calls)
    assert written == STANDINS
    banner = result.stderr[result.stderr.index("STAND-INS IN USE") :]
    assert banner.count("asked: OFFLINE=1") == len(STANDINS)


def test_present_images_are_used_unannounced(tmp_path):
    result, calls, written = run_bases(tmp_path, present=OFFICIAL.values())
    assert result.returncode == 0, result.stderr
    assert written == OFFICIAL
    assert not any(c.startswith(("pull ", "build ", "debian/build.sh ")) for c in calls)
    assert "STAND-INS" not in result.stderr


def test_last_runs_standin_is_resolved_again_by_its_official_name(tmp_path):
    # The Makefile passes on the names build/bases.env holds: a stand-in must not stick.
    result, calls, _ = run_bases(
        tmp_path, pull_error=REFUSALS["toomanyrequests"], PYTHON_IMAGE=STANDINS["PYTHON_IMAGE"]
    )
    assert result.returncode != 0
    assert calls[-1] == f"pull --quiet --platform linux/amd64 {OFFICIAL['PYTHON_IMAGE']}"
