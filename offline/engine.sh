#!/usr/bin/env bash
# Make a Docker engine answer: do nothing where one already does, otherwise install
# Docker Engine + BuildKit (buildx) + Compose v2 from Debian's archive and start dockerd.
# Idempotent. Needs root on a Debian/Ubuntu host; elsewhere it says what to install.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT=${DOCKERD_WAIT:-60}
# docker.io >= 25 knows COPY --link (BuildKit) and HEALTHCHECK --start-interval; bookworm's 20.10 does not,
# so on such hosts the three packages come from trixie (their dependencies stay the host's).
NEWER_SUITE=${DOCKER_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PLUGINS=/usr/local/lib/docker/cli-plugins

say() { printf 'engine: %s\n' "$*" >&2; }

report() {
	printf 'engine: Docker %s, buildx %s, compose %s\n' \
		"$(docker version --format '{{.Server.Version}}')" \
		"$(docker buildx version | awk '{print $2}')" \
		"$(docker compose version --short)"
}

if docker info >/dev/null 2>&1; then
	report
	exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	say "no Docker engine answers, and this is not a Debian/Ubuntu host where I am root."
	say "Install Docker Engine >= 25 with the buildx and compose plugins (https://docs.docker.com/engine/install/), start it, and run me again."
	exit 1
fi

major() { printf '%s' "${1%%.*}" | sed 's/^[0-9]*://'; }

install_engine() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	local candidate
	candidate=$(apt-cache policy docker.io | awk '/Candidate:/ {print $2}')
	if [ -n "$candidate" ] && [ "$candidate" != "(none)" ] && [ "$(major "$candidate")" -ge 25 ]; then
		say "installing docker.io $candidate from this host's archive"
		apt-get install -y -qq --no-install-recommends docker.io docker-buildx docker-compose-v2 2>/dev/null ||
			apt-get install -y -qq --no-install-recommends docker.io docker-buildx docker-compose
		return
	fi
	say "host's docker.io is ${candidate:-missing} (too old for COPY --link); fetching $NEWER_SUITE's"
	local tmp
	tmp=$(mktemp -d)
	mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
	echo "deb $MIRROR $NEWER_SUITE main" >"$tmp/sources.list"
	# A private apt configuration: the newer suite is used to download three .debs and
	# never becomes a source of the host's own packages.
	local -a private=(
		-o "Dir::Etc::SourceList=$tmp/sources.list"
		-o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$tmp/lists"
		-o "Dir::Cache=$tmp/cache"
	)
	apt-get "${private[@]}" update -qq
	(cd "$tmp" && apt-get "${private[@]}" download docker.io docker-buildx docker-compose)
	# Dependencies (containerd, runc, tini, iptables) come from the host's own suite.
	apt-get install -y -qq --no-install-recommends "$tmp"/docker.io_*.deb
	mkdir -p "$PLUGINS"
	for deb in "$tmp"/docker-buildx_*.deb "$tmp"/docker-compose_*.deb; do
		dpkg-deb -x "$deb" "$tmp/x"
	done
	find "$tmp/x" -path '*cli-plugins/docker-*' -type f -exec install -m 0755 {} "$PLUGINS/" \;
	rm -rf "$tmp"
}

if ! command -v dockerd >/dev/null || ! docker buildx version >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
	install_engine
fi

if ! pgrep -x dockerd >/dev/null; then
	say "starting dockerd (log: $LOG)"
	# Not a service manager's child: CI machines and containers often have no systemd.
	setsid dockerd >>"$LOG" 2>&1 </dev/null &
fi

for _ in $(seq "$WAIT"); do
	if docker info >/dev/null 2>&1; then
		report
		say "dockerd log: $LOG"
		exit 0
	fi
	sleep 1
done
say "dockerd did not answer within ${WAIT}s; last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
exit 1
