#!/usr/bin/env bash
# `make -f lab/Makefile rehearse-ci`: run the `run:` steps of the workflow's lint and test jobs the way a
# GitHub hosted runner does: from a fresh clone of HEAD without lab/ (what a template user keeps), as a non-root user in the docker group with passwordless
# sudo, umask 022, its own empty HOME, `bash -e` per step, within the job's timeout-minutes.
# The steps are read from .github/workflows/ci.yml, so this can't drift from the workflow.
# Needs root (to create the user); the engine is whatever `docker info` answers (make engine).
# No tool of the field runs a workflow's steps outside GitHub without a container per job (act does,
# in images we can't pull here), hence this script.
set -euo pipefail

# All in a function, and exit on the line that calls it: bash reads a script as it runs it, so an
# edit of this file mid-run must find nothing more to read.
main() {

read -ra jobs <<<"${REHEARSAL_JOBS:-lint test}"
RUNNER=${REHEARSAL_USER:-runner}
# Each job gets its timeout-minutes times this: 1 is GitHub's limit; more for a machine shared with
# other builds (GitHub's hosted runner has 4 cores of its own).
FACTOR=${REHEARSAL_TIMEOUT_FACTOR:-1}
# A tag of its own: the rehearsal must not overwrite anyone's images on a shared engine.
export IMAGE=${IMAGE:-pyslim-rehearsal}
src=$(cd "$(dirname "$0")/../.." && pwd)
# The base images as a user's own registry would provide them: make variables, from `bases`.
base_vars=()
if [ -n "${BASES_ENV:-}" ] && [ -f "$src/$BASES_ENV" ]; then
	while IFS= read -r line; do base_vars+=("$line"); done <"$src/$BASES_ENV"
fi

say() { printf '\nrehearse-ci: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "rehearse-ci: run as root (it creates the user $RUNNER)" >&2; exit 2; }
docker info >/dev/null 2>&1 || { echo "rehearse-ci: no Docker engine answers; run make engine first" >&2; exit 2; }

# What the hosted runner has that a bare Debian machine may lack: sudo; PyYAML reads the workflow here.
missing=()
command -v sudo >/dev/null || missing+=(sudo)
/usr/bin/python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The runner's user: not root, in the docker group, sudo without a password. Its HOME starts empty.
getent group docker >/dev/null || { echo "rehearse-ci: no docker group: the engine's socket is root-only" >&2; exit 2; }
id "$RUNNER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash --groups docker "$RUNNER"
id -nG "$RUNNER" | grep -qw docker || usermod -aG docker "$RUNNER"
echo "$RUNNER ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/rehearse-ci-$RUNNER"
chmod 0440 "/etc/sudoers.d/rehearse-ci-$RUNNER"
home=$(getent passwd "$RUNNER" | cut -d: -f6)
find "$home" -mindepth 1 -delete
workspace=$home/work/pyslim

# actions/checkout's part: a fresh clone of the commit under test (committed work only, as a push).
umask 022
commit=$(git -C "$src" rev-parse HEAD)
sudo -u "$RUNNER" -H mkdir -p "$home/work"
git clone --quiet --no-hardlinks "$src" "$workspace"
git -C "$workspace" checkout --quiet --detach "$commit"
# The template alone: its workflow must pass without the lab.
rm -rf "$workspace/lab"
say "$(git -C "$workspace" log -1 --format='%h %s') in $workspace, as $(id "$RUNNER")"
chown -R "$RUNNER:" "$home/work"

# Each job's run: steps as files, read from the commit's own workflow (GitHub, too, writes each step
# to a file and runs `bash -e {file}`).
steps=$home/steps
/usr/bin/python3 - "$workspace/.github/workflows/ci.yml" "$steps" "${jobs[@]}" <<'EOF'
import pathlib, shlex, sys, yaml

workflow, out, jobs = yaml.safe_load(open(sys.argv[1])), pathlib.Path(sys.argv[2]), sys.argv[3:]
for job_id in jobs:
    job = workflow["jobs"][job_id]
    folder = out / job_id
    folder.mkdir(parents=True)
    (folder / "timeout").write_text(str(job.get("timeout-minutes", 360)))
    for n, step in enumerate(job["steps"]):
        if "run" not in step:
            assert step["uses"].startswith("actions/checkout@"), f"{job_id}: only checkout is rehearsed, not {step['uses']}"
            continue
        assert step.get("shell", "bash") == "bash" and "working-directory" not in step, f"{job_id}: step {n}"
        env = {**workflow.get("env", {}), **job.get("env", {}), **step.get("env", {})}
        exports = "".join(f"export {k}={shlex.quote(str(v))}\n" for k, v in env.items())
        (folder / f"{n:02d}.sh").write_text(exports + step["run"])
EOF
chown -R "$RUNNER:" "$steps"

# A clean environment, as the runner's: no root PATH, no pyenv, no PIP_* of this shell. CA_BUNDLE
# (a TLS-intercepting network's CA, as on a corporate runner), IMAGE and DOCKER_HOST are passed on.
run_as_runner() {
	sudo -u "$RUNNER" -H env -i HOME="$home" USER="$RUNNER" LOGNAME="$RUNNER" SHELL=/bin/bash \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
		CI=true GITHUB_ACTIONS=true GITHUB_WORKSPACE="$workspace" RUNNER_TEMP="$home/tmp" \
		IMAGE="$IMAGE" ${base_vars[@]+"${base_vars[@]}"} ${CA_BUNDLE:+CA_BUNDLE="$CA_BUNDLE"} ${DOCKER_HOST:+DOCKER_HOST="$DOCKER_HOST"} \
		bash -c 'umask 022 && mkdir -p "$RUNNER_TEMP" && cd "$GITHUB_WORKSPACE" && "$@"' rehearse "$@"
}

log=$home/rehearsal.log
failed=()
started=$(date +%s)
for job in "${jobs[@]}"; do
	minutes=$(($(cat "$steps/$job/timeout") * FACTOR))
	job_started=$(date +%s)
	for step in "$steps/$job"/*.sh; do
		left=$((minutes * 60 - ($(date +%s) - job_started)))
		[ "$left" -gt 0 ] || { say "job $job: over its ${minutes} min"; failed+=("$job"); break; }
		say "job $job, step $(basename "$step" .sh): $(grep -v '^export ' "$step" | head -1)"
		step_started=$(date +%s)
		if run_as_runner timeout --kill-after=30 "$left" bash --noprofile --norc -e -o pipefail "$step" 2>&1 | tee -a "$log"; then
			say "job $job, step $(basename "$step" .sh): ok in $(($(date +%s) - step_started)) s"
		else
			say "job $job, step $(basename "$step" .sh): FAILED after $(($(date +%s) - step_started)) s (job timeout ${minutes} min)"
			failed+=("$job")
			break
		fi
	done
	say "job $job: $(($(date +%s) - job_started)) s"
done

# What a template user runs by hand, in the same clone without lab/: build, the stack up (on a free
# loopback port), down again with its volumes.
if [ ${#failed[@]} -eq 0 ] && [ -n "${REHEARSAL_TEMPLATE:-1}" ]; then
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	say "template: make build, make up (WEB_PORT=$port), make down"
	if run_as_runner env WEB_PORT="$port" COMPOSE_PROJECT_NAME=pyslim-rehearsal \
		bash -e -c 'make build && make up && make down && docker compose down --volumes' 2>&1 | tee -a "$log"; then
		say "template: ok"
	else
		run_as_runner env COMPOSE_PROJECT_NAME=pyslim-rehearsal docker compose down --volumes >/dev/null 2>&1 || true
		failed+=(template)
	fi
fi

say "done in $(($(date +%s) - started)) s; log: $log"
# pytest's summary line of the test job, e.g. "==== 340 passed in 612.34s ====".
grep -E '^=+ .*[0-9]+ (passed|failed|error).* in [0-9.]+s' "$log" | tail -1 || say "no pytest summary in the log"
if [ ${#failed[@]} -gt 0 ]; then
	say "FAILED: ${failed[*]}"
	exit 1
fi
say "every step of: ${jobs[*]} passed as $RUNNER"
}

main "$@"; exit
