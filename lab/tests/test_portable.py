"""What runs on the host stays within what a template user's host has: GNU make 3.81 and bash 3.2
(macOS ships both), BSD userland (macOS), a Python as old as the Makefile's PYTHON_MIN.

The tests can't run macOS's make and bash here, so they list the constructs that those reject and
fail when one appears in a file that runs on the host. A file that runs only on Linux is named in
LINUX_ONLY with the reason; a single line can say `# portable: <why>` (e.g. a guarded fallback).
"""

import re
import subprocess
import sys

import pytest
from dockertools import ROOT, make_variable

# Files that never run on a macOS host, and why. Everything else that runs on the host is scanned.
LINUX_ONLY = {
    ".ci/run": "our CI machines: Debian, as root",
    "lab/offline/dockerd.sh": "installs Docker from Debian's archive and starts dockerd, as root on Linux",
    "lab/offline/debian/build.sh": "debootstrap as root on a Debian/Ubuntu host",
    "lab/offline/rehearse-ci.sh": "plays GitHub's Ubuntu runner: useradd, sudo and apt, as root on Linux",
    "lab/offline/nginx/docker-entrypoint.sh": "runs inside the nginx stand-in image",
    "lab/offline/nginx/20-envsubst-on-templates.sh": "runs inside the nginx stand-in image",
    "lab/offline/postgres/docker-entrypoint.sh": "runs inside the Postgres stand-in image",
}
ESCAPE = "# portable:"

# (name, kind of file it applies to, pattern, what breaks, an example line it must catch)
CONSTRUCTS = [
    ("make --eval", "any", r"--eval\b", "GNU make 3.82+", '["make", "--eval", "x: ; @echo"]'),
    (".ONESHELL", "make", r"^\.ONESHELL\b", "GNU make 3.82+", ".ONESHELL:"),
    ("!= assignment", "make", r"^\s*[\w.-]+\s*!=", "GNU make 4.0+", "FILES != ls"),
    ("$(file ...)", "make", r"\$[({]file\s", "GNU make 4.0+", "$(file >out,text)"),
    ("undefine", "make", r"^\s*undefine\b", "GNU make 3.82+", "undefine FOO"),
    ("define with an operator", "make", r"^\s*define\s+\S+\s*[:+?!]?=", "GNU make 3.82+", "define FOO :="),
    ("private", "make", r"^\s*private\s", "GNU make 3.82+", "private X := 1"),
    (".RECIPEPREFIX", "make", r"\.RECIPEPREFIX", "GNU make 3.82+", ".RECIPEPREFIX = >"),
    ("$(guile", "make", r"\$[({]guile\s", "GNU make built with Guile", "$(guile (+ 1 2))"),
    ("$(let / $(intcmp", "make", r"\$[({](let|intcmp)\s", "GNU make 4.4+", "$(let a b,1 2,$a)"),
    (".SHELLSTATUS", "make", r"\.SHELLSTATUS", "GNU make 4.2+", "ifeq ($(.SHELLSTATUS),0)"),
    ("mapfile / readarray", "shell", r"\b(mapfile|readarray)\b", "bash 4.0+", "mapfile -t lines <file"),
    ("associative array", "shell", r"\b(declare|local|typeset)\s+-[a-zA-Z]*A", "bash 4.0+", "declare -A seen"),
    ("nameref", "shell", r"\b(declare|local|typeset)\s+-[a-zA-Z]*n\b", "bash 4.3+", "local -n ref=x"),
    ("case conversion", "shell", r"\$\{\w+(\^\^?|,,?)\}", "bash 4.0+", 'echo "${name,,}"'),
    ("${var@Q}", "shell", r"\$\{\w+@[QEPAaUuLK]\}", "bash 4.4+", 'echo "${x@Q}"'),
    ("&>> and |&", "shell", r"&>>|\|&", "bash 4.0+", "cmd |& tee log"),
    ("coproc", "shell", r"\bcoproc\b", "bash 4.0+", "coproc cat"),
    ("wait -n", "shell", r"\bwait\s+-n\b", "bash 4.3+", "wait -n"),
    ("[[ -v ]]", "shell", r"\[\[\s+-v\s", "bash 4.2+", "[[ -v FOO ]]"),
    ("sed -i without a suffix", "shell", r"\bsed\s+(-\w+\s+)*-i(\s|''|$)", "BSD sed", "sed -i 's/a/b/' f"),
    ("sha256sum / md5sum", "shell", r"\b(sha256sum|md5sum)\b", "older macOS (shasum -a 256)", "sha256sum f"),
    ("readlink -f", "shell", r"\breadlink\s+-f\b", "older macOS", "readlink -f x"),
    ("stat -c", "shell", r"\bstat\s+-c\b", "BSD stat (-f)", "stat -c %s f"),
    ("date -d", "shell", r"\bdate\s+(-u\s+)?-d\b", "BSD date (-j -f)", "date -d yesterday"),
    ("grep -P", "shell", r"\bgrep\s+(-\w+\s+)*-\w*P", "BSD grep", "grep -P '\\d' f"),
    ("xargs -r", "shell", r"\bxargs\s+(-\w+\s+)*-\w*r\b", "BSD xargs (macOS)", "xargs -r rm"),
    ("find -printf", "shell", r"\bfind\b.*\s-printf\b", "BSD find", "find . -printf '%p'"),
    ("nproc", "shell", r"\bnproc\b", "macOS (getconf _NPROCESSORS_ONLN)", "make -j$(nproc)"),
    ("timeout", "shell", r"(^|[;&|(]\s*|\$\()\s*timeout\s+-?\d", "macOS (GNU coreutils only)", "timeout 5 cmd"),
    ("tac", "shell", r"(^|[;&|(]\s*)tac\b", "macOS", "cmd | tac"),
    ("base64 -w", "shell", r"\bbase64\s+-w", "BSD base64", "base64 -w0 f"),
    ("du -b", "shell", r"\bdu\s+(-\w+\s+)*-\w*b", "BSD du", "du -sb dir"),
    (
        "the host's Debian CA bundle",
        "python",
        r"/etc/ssl/certs/ca-certificates\.crt",
        "macOS",
        'open("/etc/ssl/certs/ca-certificates.crt")',
    ),
]


def host_files():
    """{path: kinds of text in it} of every tracked file that runs on the host."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    files = {}
    for path in tracked:
        if path in LINUX_ONLY or path == "lab/tests/test_portable.py":  # this file: the list itself
            continue
        if path.endswith(("Makefile", ".mk")):
            files[path] = {"make", "shell", "any"}  # recipes are shell
        elif path.endswith(".sh"):
            files[path] = {"shell", "any"}
        elif path.startswith((".ci/",)):
            files[path] = {"shell", "any"}
        elif path.endswith(".py") and path.startswith(("tests/", "lab/")):
            files[path] = {"python", "any"}
    return files


def empty_arrays(text):
    """Names of shell arrays a script sets to ()."""
    return set(re.findall(r"\b(\w+)=\(\)", text))


def offending_lines(pattern, kind, files):
    """path:line: text for every line of the files of that kind that the pattern matches."""
    found = []
    for path, kinds in files.items():
        if kind not in kinds:
            continue
        for number, line in enumerate((ROOT / path).read_text().splitlines(), 1):
            if kind != "python" and line.lstrip().startswith("#"):
                continue  # a shell or make comment may name what it avoids
            if ESCAPE not in line and re.search(pattern, line):
                found.append(f"{path}:{number}: {line.strip()}")
    return found


def present(paths):
    """The paths, less those under lab/ when that folder is gone (deleting it breaks nothing)."""
    return {path for path in paths if not path.startswith("lab/") or (ROOT / "lab").is_dir()}


def test_linux_only_files_exist():
    """Every LINUX_ONLY entry names a tracked file: a renamed script doesn't silently drop out of the scan."""
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split())
    assert present(LINUX_ONLY) <= tracked, present(LINUX_ONLY) - tracked


def test_scan_covers_the_makefile_the_host_scripts_and_the_tests():
    """The scan reads what runs on the host: both Makefiles, bases.sh, engine.sh, the tests."""
    files = host_files()
    for path in present(
        ["Makefile", "lab/Makefile", "lab/offline/bases.sh", "lab/offline/engine.sh", "tests/hostile.py"]
    ):
        assert path in files, path


@pytest.mark.parametrize("name, kind, pattern, breaks, example", CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_pattern_catches_its_example(name, kind, pattern, breaks, example):
    """Each pattern matches the construct it names: a pattern that matches nothing would pass any file."""
    assert re.search(pattern, example), (name, example)


@pytest.mark.parametrize("name, kind, pattern, breaks, example", CONSTRUCTS, ids=[c[0] for c in CONSTRUCTS])
def test_no_construct_a_macos_host_rejects(name, kind, pattern, breaks, example):
    """No host file uses a construct that GNU make 3.81, bash 3.2 or BSD userland lacks."""
    assert offending_lines(pattern, kind, host_files()) == [], f"{name}: needs {breaks}"


def test_no_empty_array_expanded_bare_under_set_u():
    """bash 3.2 (macOS) calls "${a[@]}" of an empty array unbound under set -u; ${a[@]+"${a[@]}"} is safe."""
    found = []
    for path, kinds in host_files().items():
        if "shell" not in kinds:
            continue
        text = (ROOT / path).read_text()
        for name in empty_arrays(text):
            found += offending_lines(rf'(?<!\+)"\$\{{{name}\[@\]\}}"', "shell", {path: kinds})
    assert found == []


def test_stalled_sockets_fit_under_macos_open_file_limit():
    """macOS starts shells with `ulimit -n` 256; the stalled-client tests hold 400 sockets open. Under
    that limit, the suite's own helper still opens them all (it raises its soft limit)."""
    script = (
        "import resource, socket, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from hostile import stalled\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "server = socket.create_server(('127.0.0.1', 0), backlog=1024)\n"
        "with stalled(server.getsockname()[1], 200, 200) as socks:\n"
        "    print(len(socks))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "400"


def test_python_minimum_is_named_once():
    """The Makefile's PYTHON_MIN (pyproject.toml's requires-python) and ruff's target-version name the same Python."""
    target = re.search(r'^target-version = "py(\d)(\d+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    assert target, "pyproject.toml has no ruff target-version"
    assert make_variable("PYTHON_MIN") == f"{target.group(1)}.{target.group(2)}"


def test_too_old_python_fails_at_once_naming_the_version(tmp_path):
    """`make test` with a Python older than PYTHON_MIN stops before doing anything, saying what it needs."""
    old = tmp_path / "python3"
    old.write_text('#!/bin/sh\necho "Python 3.10.4"\n')
    old.chmod(0o755)
    proc = subprocess.run(["make", "-n", "test", f"PYTHON={old}"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"need Python {make_variable('PYTHON_MIN')} or later" in proc.stderr, proc.stderr
    assert "bases:" not in proc.stderr  # nothing else ran first
