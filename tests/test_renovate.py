"""Renovate keeps the pins current: it can re-run the lock files' pip-compile, and it never opens a PR that
breaks the database volume. Checked offline against renovate.json and the lock files themselves."""

import json
import re
import shlex

import pytest
from dockertools import ROOT, make_variable

# The options Renovate's pip-compile manager accepts in a lock file's header, from its source:
# lib/modules/manager/pip-compile/common.ts (allowedOptions['pip-compile'] and allowedCommonOptions,
# renovatebot/renovate c2dd4f85, 2026-08-22). Any other option: "Option ... not supported (yet)",
# and that lock file is never updated.
RENOVATE_PIP_COMPILE_OPTIONS = {
    "--allow-unsafe",
    "--generate-hashes",
    "--no-emit-index-url",
    "--strip-extras",
    "-v",
    "--emit-index-url",
    "--index-url",
    "--all-extras",
    "--resolver",
    "--constraint",
    "--output-file",
    "--extra",
    "--extra-index-url",
}
HEADER_COMMAND = re.compile(r"^#    (pip-compile .*)$", re.MULTILINE)
LOCKS = sorted(
    str(path.relative_to(ROOT)) for path in [*ROOT.glob("requirements*.txt"), *ROOT.glob("tests/requirements*.txt")]
)


def renovate():
    return json.loads((ROOT / ".github" / "renovate.json").read_text())


def sources():
    """{lock file: the file it is compiled from}, as `make requirements` pairs them (LOCKS = source:lock ...)."""
    return {lock: source for source, lock in (pair.split(":") for pair in make_variable("LOCKS").split())}


def test_make_requirements_writes_every_lock_file():
    """The Makefile's LOCKS are the requirements*.txt in the tree (and the checks below see them all)."""
    assert "requirements.txt" in LOCKS
    assert sorted(sources()) == LOCKS


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_header_uses_only_options_renovate_accepts(lock):
    """Renovate re-runs the header's command: every option in it must be one its pip-compile manager knows."""
    header = HEADER_COMMAND.search((ROOT / lock).read_text())
    assert header, f"{lock} has no pip-compile header"
    options = {word.split("=", 1)[0] for word in shlex.split(header.group(1))[1:] if word.startswith("-")}
    assert options <= RENOVATE_PIP_COMPILE_OPTIONS, f"Renovate rejects {sorted(options - RENOVATE_PIP_COMPILE_OPTIONS)}"
    assert sources()[lock] in header.group(1).split(), f"{lock}'s header doesn't compile {sources()[lock]}"


@pytest.mark.parametrize("lock", LOCKS)
def test_lock_names_no_index_or_find_links_of_this_machine(lock):
    """No --index-url, --extra-index-url or --find-links line: a lock must resolve the same everywhere."""
    lines = [line for line in (ROOT / lock).read_text().splitlines() if re.match(r"^-(-|[if])", line)]
    assert lines == []


def test_renovate_manages_every_lock_file():
    """Renovate's pip-compile manager matches each lock file make requirements writes."""
    patterns = [re.compile(p.strip("/")) for p in renovate()["pip-compile"]["managerFilePatterns"]]
    for lock in sources():
        assert any(p.search(lock) for p in patterns), f"Renovate does not manage {lock}"


def test_postgres_majors_wait_for_approval():
    """A Postgres major needs a data migration (18 moved PGDATA): Renovate never opens that PR on its own."""
    rules = [
        rule
        for rule in renovate()["packageRules"]
        if "postgres" in rule.get("matchPackageNames", []) and rule.get("matchUpdateTypes") == ["major"]
    ]
    assert rules and all(
        rule.get("dependencyDashboardApproval") is True or rule.get("enabled") is False for rule in rules
    )
