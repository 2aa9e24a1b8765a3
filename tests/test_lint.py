"""`make lint`: every linter is clean, and each covers every file it should. `make lint` runs the tests
marked `lint` (here, tests/test_kubernetes.py and tests/test_workflow.py): no engine, no build."""

import os
import subprocess

import pytest
from dockertools import ROOT, tool

pytestmark = pytest.mark.lint
DOCKERFILES = sorted(path.name for path in ROOT.glob("Dockerfile*"))


def tracked_files():
    """The repository's files as git knows them, that are still on disk."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in names.split("\0") if name and (ROOT / name).is_file()]


def is_shell_script(name):
    """A .sh file, or any file whose shebang names a POSIX-family shell."""
    if name.endswith(".sh"):
        return True
    with open(ROOT / name, "rb") as f:
        first = f.readline(200)
    return first.startswith(b"#!") and any(shell in first for shell in (b"/sh", b"bash", b"dash"))


def run(*command, **kwargs):
    """A linter's completed process, run from the repository root."""
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_clean_at_warning_level(dockerfile):
    """hadolint reports nothing at warning level or above."""
    proc = run(tool("hadolint"), "--failure-threshold", "warning", "--no-color", dockerfile)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_files_are_valid(tmp_path):
    """docker compose accepts compose.yaml, alone and with compose.dev.yaml (no engine needed)."""
    secret = tmp_path / "db_password"
    secret.write_text("x")
    env = {**os.environ, "DB_PASSWORD_FILE": str(secret)}
    for files in (["compose.yaml"], ["compose.yaml", "compose.dev.yaml"]):
        proc = run("docker", "compose", *(arg for f in files for arg in ("--file", f)), "config", "--quiet", env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shellcheck_clean():
    """shellcheck reports nothing, at its default style level, for every tracked shell script."""
    scripts = [name for name in tracked_files() if is_shell_script(name)]
    assert scripts, "no shell script found: the check would pass vacuously"
    proc = run(tool("shellcheck"), *scripts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check_clean():
    """ruff's rules selected in pyproject.toml report nothing in any Python file."""
    proc = run(tool("ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_clean():
    """Every Python file is as `ruff format` writes it."""
    proc = run(tool("ruff"), "format", "--check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_renovate_config_matches_renovates_schema():
    """check-jsonschema's vendored Renovate schema (no network) accepts .github/renovate.json."""
    proc = run(tool("check-jsonschema"), "--builtin-schema", "vendor.renovate", ".github/renovate.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
