"""The GitHub workflow, checked offline: it can only run on GitHub, so these are its only tests."""

import os
import re
import subprocess

import pytest
import yaml
from dockertools import ROOT, tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
FULL_SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s*# (v\d+\.\d+\.\d+)$")
pytestmark = pytest.mark.lint


def action_pins(path):
    """(owner/repo@ref, rest of the line) of every `uses:` in a workflow."""
    return re.findall(r"^\s*(?:-\s*)?uses:\s*(\S+)(.*)$", path.read_text(), re.MULTILINE)


def load(path):
    """A workflow as data; PyYAML reads the bare key `on` as True (YAML 1.1), so it is renamed back."""
    data = yaml.safe_load(path.read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def steps(workflow):
    """(job id, step) for every step of every job."""
    return [(job_id, step) for job_id, job in workflow["jobs"].items() for step in job.get("steps", [])]


def make_targets():
    """Every explicit target of the Makefile, read without running one."""
    proc = subprocess.run(["make", "-pRrq", "-f", "Makefile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    targets, skip = set(), False
    for line in proc.stdout.splitlines():
        if line.startswith("# Not a target"):
            skip = True
            continue
        match = re.match(r"^([A-Za-z0-9_.%/-]+):(?!=)", line)
        if match and not skip:
            targets.add(match.group(1))
        skip = False
    assert "help" in targets, proc.stdout[-2000:] + proc.stderr
    return targets


def make_goals(script):
    """The goals of each `make ...` command in a run: script, without its VAR=value and -flag words."""
    goals = []
    for command in re.findall(r"(?:^|[;&|]\s*|\n\s*)make\b([^;&|\n]*)", script):
        goals += [word for word in command.split() if "=" not in word and not word.startswith("-")]
    return goals


def test_there_is_a_workflow():
    """The checks below would pass vacuously without one."""
    assert WORKFLOWS


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path):
    """check-jsonschema's vendored schema of GitHub workflows (no network) accepts the file."""
    proc = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_finds_nothing_even_pedantic():
    """zizmor's offline audits (injection, permissions, credentials, pinning, cache poisoning) report nothing."""
    proc = subprocess.run(
        [tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_full_commit_sha_with_its_version(path):
    """`uses: owner/repo@<40 hex> # vX.Y.Z`: a tag can be moved, a commit can't; the comment is for Renovate."""
    uses = action_pins(path)
    assert uses
    for ref, comment in uses:
        assert FULL_SHA_PIN.match(ref), f"{ref} is not pinned by a full commit SHA"
        assert VERSION_COMMENT.match(comment), f"{ref} has no `# vX.Y.Z` comment"


def ls_remote_tag(repo, tag):
    """{ref: sha} of refs/tags/<tag> in the action's repository; for an annotated tag, `<tag>^{}` is its commit."""
    owner, name = repo.split("/")
    # ACTIONS_GIT_URL points this at mirrors, e.g. "/srv/mirrors/{owner}+{name}" (for a rehearsal offline).
    url = os.environ.get("ACTIONS_GIT_URL", "https://github.com/{owner}/{name}").format(owner=owner, name=name)
    try:
        proc = subprocess.run(
            ["git", "ls-remote", url, f"refs/tags/{tag}", f"refs/tags/{tag}^{{}}"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"{url} did not answer in 30 s (offline?): the pins can't be checked against their tags here")
    if proc.returncode != 0:
        pytest.skip(f"git ls-remote {url} failed (offline?): {proc.stderr.strip()[:200]}")
    return {ref: sha for sha, ref in (line.split("\t") for line in proc.stdout.splitlines())}


@pytest.mark.parametrize(
    "repo,sha,version",
    [
        (ref.split("@")[0], ref.split("@")[1], VERSION_COMMENT.match(comment).group(1))
        for path in WORKFLOWS
        for ref, comment in dict.fromkeys(action_pins(path))
        if FULL_SHA_PIN.match(ref) and VERSION_COMMENT.match(comment)
    ],
    ids=lambda value: value if "/" in value else None,
)
def test_every_pin_is_the_commit_its_version_tag_points_to(repo, sha, version):
    """The SHA is the commit the comment's tag names, not the tag object of an annotated tag (GitHub runs
    commits) and not a commit of another release. Asks the action's repository, so it skips offline."""
    refs = ls_remote_tag("/".join(repo.split("/")[:2]), version)
    assert f"refs/tags/{version}" in refs, f"{repo} has no tag {version}"
    commit = refs.get(f"refs/tags/{version}^{{}}", refs[f"refs/tags/{version}"])
    assert not (sha == refs[f"refs/tags/{version}"] != commit), f"{repo}@{sha} is the tag object of {version}"
    assert sha == commit, f"{repo}@{sha}: {version} points to commit {commit}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_goal_the_workflow_runs_exists(path):
    """A renamed or deleted Makefile target breaks here, not on GitHub after a push."""
    goals = [goal for _, step in steps(load(path)) for goal in make_goals(step.get("run", ""))]
    assert goals, "the workflow runs no make target"
    missing = sorted(set(goals) - make_targets())
    assert not missing, f"make has no target {missing}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_empty_by_default_and_granted_per_job(path):
    """The workflow grants nothing; each job names what it needs, and only the publish job may write."""
    workflow = load(path)
    assert workflow.get("permissions") == {}
    for job_id, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {job_id} inherits permissions"
        writes = {scope for scope, level in job["permissions"].items() if level == "write"}
        assert writes <= {"packages"}, f"job {job_id} writes {writes}"
        if writes:
            assert job.get("if") == "github.event_name == 'push'", f"job {job_id} can write on pull requests"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_secret_reaches_a_shell_step(path):
    """Secrets go only to action inputs (which the runner masks), never into a run: script or env."""
    for job_id, step in steps(load(path)):
        assert "secrets." not in step.get("run", ""), f"{job_id}: a run step uses a secret"
        assert "secrets." not in str(step.get("env", "")), f"{job_id}: a step's env holds a secret"


def test_pushes_to_main_and_version_tags_publish_a_multi_arch_image_with_sbom_and_provenance():
    """The publish job builds each shipped Dockerfile for amd64 and arm64 with the GHA cache, and attaches
    SBOM and provenance."""
    pushes = [
        step["with"]
        for path in WORKFLOWS
        for _, step in steps(load(path))
        if step.get("uses", "").startswith("docker/build-push-action@") and step.get("with", {}).get("push")
    ]
    assert len(pushes) == 1
    build = pushes[0]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["cache-from"].startswith("type=gha") and build["cache-to"].startswith("type=gha")
    assert build["sbom"] is True and "mode=max" in build["provenance"]
    assert "SOURCE_URL=${{ github.server_url }}/${{ github.repository }}" in build["build-args"]
    jobs = [
        job
        for path in WORKFLOWS
        for job in load(path)["jobs"].values()
        if any(step.get("with", {}).get("push") for step in job["steps"])
    ]
    files = {row["dockerfile"] for row in jobs[0]["strategy"]["matrix"]["include"]}
    assert build["file"] == "${{ matrix.dockerfile }}" and files == {"Dockerfile", "Dockerfile.distroless"}
    triggers = next(load(path)["on"] for path in WORKFLOWS if "push" in load(path)["on"])
    assert triggers["push"]["branches"] == ["main"] and triggers["push"]["tags"] == ["v*"]
