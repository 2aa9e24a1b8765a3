"""Shared fixture for tests that drive the real docker CLI (no docker-py: the CLI is what users run)."""

import subprocess
import uuid

import pytest

_engine_error: str | None = None
_engine_checked = False


def _require_engine() -> None:
    """Fail the calling test, not skip it: a missing engine must not look like a pass in CI."""
    global _engine_checked, _engine_error
    if not _engine_checked:
        _engine_checked = True
        try:
            info = subprocess.run(
                ["docker", "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if info.returncode != 0:
                _engine_error = (info.stderr or info.stdout).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            _engine_error = str(exc)
    if _engine_error is not None:
        pytest.fail(
            f"no Docker engine answers `docker info` ({_engine_error}); "
            "start one (`make -f lab/Makefile engine`) and run again",
            pytrace=False,
        )


class Docker:
    """Runs `docker ...` and remembers what it created, so the fixture can remove exactly that."""

    def __init__(self) -> None:
        self.prefix = f"pgtest-{uuid.uuid4().hex[:8]}"
        self._containers: list[str] = []
        self._volumes: list[str] = []
        self._networks: list[str] = []

    def __call__(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        # Checked lazily, inside the test body, so a missing engine reports FAILED, not ERROR.
        _require_engine()
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"`docker {' '.join(args)}` exited {result.returncode}: {result.stderr.strip()}")
        return result

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def container(self, what: str) -> str:
        """A unique container name, registered for removal before the container exists."""
        name = self.name(f"{what}-{len(self._containers)}")
        self._containers.append(name)
        return name

    def volume(self, what: str = "data") -> str:
        name = self.name(what)
        self._volumes.append(name)
        self("volume", "create", name)
        return name

    def network(self, what: str = "net") -> str:
        name = self.name(what)
        self._networks.append(name)
        self("network", "create", name)
        return name

    def cleanup(self) -> None:
        # Containers first (-v also drops the anonymous PGDATA volume each one got from the
        # image's VOLUME), then what they used. Errors are ignored: the object may not exist.
        for args in (
            [["rm", "-f", "-v", c] for c in reversed(self._containers)]
            + [["volume", "rm", "-f", v] for v in self._volumes]
            + [["network", "rm", n] for n in self._networks]
        ):
            try:
                subprocess.run(["docker", *args], capture_output=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                pass


@pytest.fixture(autouse=True)
def _stand_ins_only(request):
    """These tests check offline/'s recipes. Where the official image is in use (bases.sh names a
    stand-in offline/..., never the official name) they skip: upstream is free to change its images'
    internals, and the template's gate must not fail when it does."""
    image = getattr(request.module, "IMAGE", "")
    if not image.startswith("offline/"):
        pytest.skip(f"{image} is the official image, not an offline/ stand-in: nothing of offline/ to check")


@pytest.fixture
def tracked_docker():
    d = Docker()
    yield d
    d.cleanup()
