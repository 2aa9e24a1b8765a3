"""`make lint`'s linters, run by the suite too: each is clean, and each covers every file it should."""

import subprocess

from dockertools import ROOT, make_variable, tool


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


def test_lint_shellchecks_every_shell_script():
    """make lint's SHELL_SCRIPTS lists every tracked shell script: a new one can't slip past shellcheck."""
    scripts = {name for name in tracked_files() if is_shell_script(name)}
    assert scripts, "no shell script found: the check would pass vacuously"
    assert scripts <= set(make_variable("SHELL_SCRIPTS").split())


def test_shellcheck_clean():
    """shellcheck reports nothing, at its default style level, for the scripts make lint checks."""
    scripts = make_variable("SHELL_SCRIPTS").split()
    proc = subprocess.run([tool("shellcheck"), *scripts], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check_clean():
    """ruff's rules selected in pyproject.toml report nothing in any Python file."""
    proc = subprocess.run([tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_renovate_config_matches_renovates_schema():
    """check-jsonschema's vendored Renovate schema (no network) accepts .github/renovate.json."""
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.renovate", ".github/renovate.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
