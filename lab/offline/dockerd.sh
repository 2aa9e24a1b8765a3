#!/usr/bin/env bash
# linux-only: installs Docker from Debian's archive and starts dockerd as root (engine.sh calls it
# only on a Debian/Ubuntu host, as root, where no engine answers).
#
# dockerd.sh start: install Docker Engine + BuildKit (buildx) + Compose v2 if missing, then start a
#   dockerd for the socket in DOCKER_HOST (default /var/run/docker.sock) with the image store in
#   DOCKER_STORE (classic or containerd; default: dockerd's own default).
#   Any other socket gets a daemon of its own beside the default one (dockerd docs, "Run multiple
#   daemons"): its own data root, exec root, pidfile, log, bridge and address pool, no iptables
#   rules of its own (two daemons would fight over Docker's chains), only a forward and masquerade
#   rule for its own addresses.
# dockerd.sh stop: stop such a separate daemon and remove its bridge and rules (its data root, the
#   images and build cache, stays for the next start).
set -euo pipefail

ACTION=${1:?usage: dockerd.sh start|stop}
WAIT=${DOCKERD_WAIT:-60}
STORE=${DOCKER_STORE:-}
# docker.io >= 25 knows COPY --link (BuildKit) and HEALTHCHECK --start-interval; bookworm's 20.10 does not,
# so on such hosts the three packages come from trixie (their dependencies stay the host's).
NEWER_SUITE=${DOCKER_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PLUGINS=/usr/local/lib/docker/cli-plugins

say() { printf 'engine: %s\n' "$*" >&2; }

socket=${DOCKER_HOST:-unix:///var/run/docker.sock}
socket=${socket#unix://}
case "$socket" in
/var/run/docker.sock | /run/docker.sock) name=docker separate= ;;
/*) name=$(basename "$socket" .sock) separate=1 ;;
*)
	say "DOCKER_HOST=$DOCKER_HOST: I can start a daemon on a unix socket only"
	exit 1
	;;
esac
state=/var/lib/$name
run=/var/run/$name
pidfile=/var/run/$name.pid
LOG=${DOCKERD_LOG:-/var/log/$name.log}
[ -n "$separate" ] || LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
# A separate daemon's network: a bridge for its default network and a pool for the networks compose
# creates, inside one /15 that Docker's defaults (172.17-31.x, 192.168.x) don't use.
BRIDGE=${DOCKERD_BRIDGE:-br-$(printf '%s' "$name" | cut -c1-12)}
BRIDGE_ADDR=${DOCKERD_BRIDGE_ADDR:-10.212.0.1/24}
POOL=${DOCKERD_POOL:-10.213.0.0/16}
NETS=${DOCKERD_NETS:-10.212.0.0/15}

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

# The forward and masquerade rules of a separate daemon's addresses, added (-I/-A) or deleted (-D).
rules() {
	local op=$1 chain=DOCKER-USER
	iptables -n -L DOCKER-USER >/dev/null 2>&1 || chain=FORWARD
	[ "$op" = -A ] && op=-I
	iptables "$op" "$chain" -s "$NETS" -j ACCEPT
	iptables "$op" "$chain" -d "$NETS" -j ACCEPT
	[ "$op" = -I ] && op=-A
	iptables -t nat "$op" POSTROUTING -s "$NETS" ! -d "$NETS" -j MASQUERADE
}

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

start() {
	if ! command -v dockerd >/dev/null || ! docker buildx version >/dev/null 2>&1 || ! docker compose version >/dev/null 2>&1; then
		install_engine
	fi
	if running; then
		say "dockerd for $socket already runs (pid $(cat "$pidfile"))"
	else
		local -a flags=(--host "unix://$socket" --pidfile "$pidfile")
		# The image store: daemon.json's "features" (dockerd 26 has no command-line flag for it).
		# A config file of our own only where the host has none: a host's daemon.json is the host's.
		local config=
		if [ -n "$separate" ] || { [ -n "$STORE" ] && [ ! -e /etc/docker/daemon.json ]; }; then
			config=$state.json
			case "$STORE" in
			containerd) echo '{"features": {"containerd-snapshotter": true}}' >"$config" ;;
			classic) echo '{"features": {"containerd-snapshotter": false}}' >"$config" ;;
			*) echo '{}' >"$config" ;;
			esac
			flags+=(--config-file "$config")
		fi
		if [ -n "$separate" ]; then
			if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
				ip link add name "$BRIDGE" type bridge
				ip addr add "$BRIDGE_ADDR" dev "$BRIDGE"
			fi
			ip link set "$BRIDGE" up
			rules -D 2>/dev/null || true
			rules -A
			# --live-restore is what keeps the host's docker0 alive: on every start but the first,
			# dockerd deletes its stored "bridge" network and, where default address pools are
			# set and live restore is off, the interface named docker0 too, whoever owns it
			# (moby daemon/daemon_unix.go, configureNetworking: removeDefaultBridgeInterface).
			flags+=(--data-root "$state" --exec-root "$run" --bridge "$BRIDGE" --live-restore
				--default-address-pool "base=$POOL,size=24" --iptables=false --ip-masq=false)
		fi
		local docker0=
		ip link show docker0 >/dev/null 2>&1 && docker0=1
		say "starting dockerd on $socket${STORE:+ with the $STORE image store} (log: $LOG)"
		# Not a service manager's child: CI machines and containers often have no systemd.
		setsid dockerd "${flags[@]}" >>"$LOG" 2>&1 </dev/null &
	fi
	for _ in $(seq "$WAIT"); do
		if DOCKER_HOST=unix://$socket docker info >/dev/null 2>&1; then
			if [ -n "${docker0:-}" ] && [ -n "$separate" ] && ! ip link show docker0 >/dev/null 2>&1; then
				say "starting the dockerd on $socket removed the host's docker0: the other engine's containers are cut off"
				exit 1
			fi
			return 0
		fi
		sleep 1
	done
	say "dockerd did not answer within ${WAIT}s; last lines of $LOG:"
	tail -n 20 "$LOG" >&2 || true
	exit 1
}

stop() {
	if [ -z "$separate" ]; then
		say "I stop only the separate daemons I start, not the one on $socket"
		exit 1
	fi
	if running; then
		local pid
		pid=$(cat "$pidfile")
		kill "$pid"
		for _ in $(seq "$WAIT"); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
	fi
	rules -D 2>/dev/null || true
	ip link del "$BRIDGE" 2>/dev/null || true
	say "stopped the dockerd on $socket (its images stay in $state)"
}

"$ACTION"
