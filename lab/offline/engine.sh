#!/usr/bin/env bash
# Make a Docker engine answer, with the image store DOCKER_STORE asks for (classic or containerd;
# unset: either). Where one answers (DOCKER_HOST's, or the default socket), report it, and fail
# with how to switch if it uses the other store: a user's engine settings are theirs to change.
# Where none answers: on a Debian/Ubuntu host as root, dockerd.sh installs Docker Engine +
# BuildKit (buildx) + Compose v2 from Debian's archive if needed and starts dockerd with that
# store; elsewhere this says what to install. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
STORE=${DOCKER_STORE:-}

say() { printf 'engine: %s\n' "$*" >&2; }

case "$STORE" in
"" | classic | containerd) ;;
*)
	say "DOCKER_STORE is classic or containerd, not '$STORE'"
	exit 1
	;;
esac

# containerd's snapshotter stands in the driver status where the containerd image store is on.
store() {
	case "$(docker info --format '{{json .DriverStatus}}')" in
	*io.containerd.snapshotter.v1*) echo containerd ;;
	*) echo classic ;;
	esac
}

report() {
	printf 'engine: Docker %s (%s image store), buildx %s, compose %s\n' \
		"$(docker version --format '{{.Server.Version}}')" "$(store)" \
		"$(docker buildx version | awk '{print $2}')" \
		"$(docker compose version --short)"
}

check_store() {
	local actual
	actual=$(store)
	if [ -n "$STORE" ] && [ "$STORE" != "$actual" ]; then
		say "this engine${DOCKER_HOST:+ ($DOCKER_HOST)} uses the $actual image store, not $STORE. To switch:"
		say "  Docker Desktop: Settings > General > 'Use containerd for pulling and storing images'"
		say "  Docker Engine: \"features\": {\"containerd-snapshotter\": $([ "$STORE" = containerd ] && echo true || echo false)} in /etc/docker/daemon.json, then restart dockerd"
		say "  (each store keeps its own images: the other store's are not visible after the switch)"
		exit 1
	fi
}

if docker info >/dev/null 2>&1; then
	report
	check_store
	exit 0
fi

if [ "$(uname -s)" != Linux ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	say "no Docker engine answers${DOCKER_HOST:+ at $DOCKER_HOST}, and this is not a Debian/Ubuntu host where I am root."
	say "Install Docker Engine >= 25 or Docker Desktop, with the buildx and compose plugins (https://docs.docker.com/engine/install/), start it, and run me again."
	exit 1
fi

"$here/dockerd.sh" start
report
check_store
