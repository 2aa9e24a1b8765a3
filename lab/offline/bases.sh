#!/usr/bin/env bash
# Resolve the images the template builds on or runs beside: the official one where it is
# present or can be pulled. A stand-in built from Debian's archive, under an offline/ name (never
# the official one, so nobody mistakes one for the other), only with OFFLINE=1 or where no registry
# answers at all; any other pull failure stops here: a rate limit must not switch anyone's bases.
# Writes VAR=image lines to the file named by $1 for the Makefile to include.
set -euo pipefail

OUT=${1:?usage: bases.sh OUTPUT_FILE}
here=$(cd "$(dirname "$0")" && pwd)
# No defaults here: the Makefile reads them from the Dockerfiles' ARG lines and compose.yaml.
: "${PYTHON_IMAGE:?set by the Makefile}" "${POSTGRES_IMAGE:?}" "${DEBIAN_IMAGE:?}" "${DISTROLESS_IMAGE:?}" "${NGINX_IMAGE:?}"
say() { printf 'bases: %s\n' "$*" >&2; }

# The pull errors that mean nothing answered (DNS, routing, connection, timeouts: Go's and glibc's
# wording, as the engine passes them on); only these justify a stand-in nobody asked for. Anything
# else (toomanyrequests, unauthorized, manifest unknown, x509, a TLS alert) is an answer to act on.
unreachable() {
	case "$1" in
	*"no such host"* | *"server misbehaving"* | *"Temporary failure in name resolution"* | \
		*"connection refused"* | *"connection reset by peer"* | *"no route to host"* | \
		*"network is unreachable"* | *"i/o timeout"* | *"TLS handshake timeout"* | \
		*"request canceled while waiting for connection"*) return 0 ;;
	*) return 1 ;;
	esac
}

"$here/engine.sh" >&2

# PLATFORM (optional, e.g. linux/arm64): the platform the app images are built for. The images they
# are built from (Python, Debian, distroless) are resolved for it; Postgres and nginx run beside the
# app as containers of their own, on the engine's platform.
engine_platform=linux/$(docker version --format '{{.Server.Arch}}' 2>/dev/null || true)
PLATFORM=${PLATFORM:-$engine_platform}
PLATFORM=${PLATFORM%/v8} # linux/arm64/v8 is linux/arm64
# Stand-ins for another platform carry it in their name: a tag holds one platform in Docker's
# classic image store, and the engine's own stand-ins must stay what they are.
prefix=offline/
[ "$PLATFORM" = "$engine_platform" ] || prefix=offline/$PLATFORM/
DEBIAN_STANDIN=${prefix}debian:trixie-slim
# Another platform's binaries run under QEMU: set it up, or say how (nothing where it runs already).
[ "$PLATFORM" = "$engine_platform" ] || PLATFORM=$PLATFORM "$here/emulation.sh" >&2

# A stand-in is rebuilt only when its recipe changes: the recipe's hash rides along as a label.
# macOS has shasum and (before 15) no sha256sum; both print the same lines, so the same hash.
if command -v sha256sum >/dev/null 2>&1; then sha256=(sha256sum); else sha256=(shasum -a 256); fi # portable: guarded
recipe_hash() { (cd "$here" && find "$@" -type f -print0 | sort -z | xargs -0 "${sha256[@]}" | "${sha256[@]}" | cut -c1-16); }
current() { # current IMAGE HASH PLATFORM: built from this recipe, for this platform
	[ "$(docker image inspect --format '{{index .Config.Labels "offline.recipe"}} {{.Os}}/{{.Architecture}}' "$1" 2>/dev/null)" = "$2 $3" ]
}

# Empty unless CA_BUNDLE is set; expanded as ${a[@]+"${a[@]}"}, since bash 3.2 (macOS) calls
# "${a[@]}" of an empty array unbound under set -u.
ca_secret=()
ca=${CA_BUNDLE:-}
[ -n "$ca" ] && ca_secret=(--secret "id=ca,src=$ca")

standin() { # standin IMAGE DIR PLATFORM: build offline/DIR as IMAGE on top of the Debian stand-in
	local image=$1 dir=$2 platform=$3 hash base
	hash=$(recipe_hash debian "$dir")
	base=$(debian_standin "$platform")
	if current "$image" "$hash" "$platform"; then
		say "$image is up to date"
		return
	fi
	# CPython for another platform is cross-compiled on the engine's own (hours under QEMU otherwise).
	local cross=()
	if [ "$dir" = python ] && [ "$platform" != "$engine_platform" ]; then
		cross=(--file "$here/python/cross.Dockerfile" --build-arg "BUILD_BASE=$(debian_standin "$engine_platform")")
	fi
	say "building $image from offline/$dir (a few minutes the first time; more under emulation)"
	docker build --platform "$platform" --build-arg "BASE=$base" ${cross[@]+"${cross[@]}"} \
		--label "offline.recipe=$hash" ${ca_secret[@]+"${ca_secret[@]}"} --tag "$image" "$here/$dir" >&2
}

debian_standin() { # debian_standin PLATFORM: make the Debian stand-in for PLATFORM, print its name
	local platform=$1 image=$DEBIAN_STANDIN hash
	[ "$platform" = "$PLATFORM" ] || image=offline/debian:trixie-slim
	hash=$(recipe_hash debian)
	if ! current "$image" "$hash" "$platform"; then
		say "building $image with debootstrap (about 30 s; minutes under emulation)"
		PLATFORM=$platform "$here/debian/build.sh" "$image" trixie "offline.recipe=$hash" >&2
	fi
	echo "$image"
}

# Every stand-in in use and why, for the banner at the end.
standins=
# What the user can do when a registry refuses: said where the script stops.
refused() { # refused VAR IMAGE ERROR
	say "can't pull $2, and the registry answered, so no stand-in is used. Docker said:"
	printf '%s\n' "$3" | sed 's/^/bases:   /' >&2
	say "Retry later (rate limits pass), 'docker login' (higher limits, private images),"
	say "pull from a mirror: make -f lab/Makefile bases $1=<the mirror's copy of $2>, or"
	say "use the lab's stand-ins on purpose: OFFLINE=1 make -f lab/Makefile bases"
}

resolve() { # resolve VAR IMAGE [PLATFORM]: print VAR=the image to use for PLATFORM (default: the engine's), and why
	local var=$1 image=$2 platform=${3:-$engine_platform} standin why err
	# The Makefile passes on what the last run wrote: a stand-in is resolved afresh by its official
	# name, or it would stick once chosen (and be used unannounced, being present).
	image=${image#offline/}
	image=${image#"$platform"/}
	# The architecture is checked too: with the classic image store another platform's pull replaces the tag.
	if [ "$(docker image inspect --format '{{.Os}}/{{.Architecture}}' "$image" 2>/dev/null)" = "$platform" ]; then
		say "$var=$image (present locally)"
		printf '%s=%s\n' "$var" "$image"
		return
	fi
	if [ -n "${OFFLINE:-}" ]; then
		why="asked: OFFLINE=$OFFLINE"
	elif err=$(docker pull --quiet --platform "$platform" "$image" 2>&1 >/dev/null); then
		say "$var=$image (pulled for $platform)"
		printf '%s=%s\n' "$var" "$image"
		return
	elif unreachable "$err"; then
		why="no registry answered: $err"
	else
		refused "$var" "$image" "$err"
		return 1
	fi
	case "$image" in
	python:3.13-slim-trixie) standin=python ;;
	postgres:17-trixie) standin=postgres ;;
	debian:trixie-slim) standin=debian ;;
	gcr.io/distroless/python3-debian13:nonroot) standin=distroless ;;
	nginx:trixie) standin=nginx ;;
	*)
		say "$image can't be found or pulled, and there is no stand-in recipe for it"
		return 1
		;;
	esac
	if [ "$platform" = "$PLATFORM" ]; then image=$prefix$image; else image=offline/$image; fi
	# The Debian stand-in is the base every other stand-in builds on.
	if [ "$standin" = debian ]; then debian_standin "$platform" >/dev/null; else standin "$image" "$standin" "$platform"; fi
	say "$var=$image (stand-in; $why)"
	standins="$standins  $var=$image
    ($why)
"
	printf '%s=%s\n' "$var" "$image"
}

mkdir -p "$(dirname "$OUT")"
trap 'rm -f "$OUT.tmp"' EXIT
{
	resolve PYTHON_IMAGE "$PYTHON_IMAGE" "$PLATFORM"
	resolve POSTGRES_IMAGE "$POSTGRES_IMAGE"
	resolve DEBIAN_IMAGE "$DEBIAN_IMAGE" "$PLATFORM"
	resolve DISTROLESS_IMAGE "$DISTROLESS_IMAGE" "$PLATFORM"
	resolve NGINX_IMAGE "$NGINX_IMAGE"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
# Loud, and last, so no build log scrolls it away: stand-ins differ from the official images.
if [ -n "$standins" ]; then
	rule='================================================================'
	printf '\n%s\n%s\n%s%s\n%s\n\n' "$rule" "STAND-INS IN USE, not the official images (lab/offline/README.md):" \
		"$standins" "Sizes and test results are the stand-ins', not the official images'." "$rule" >&2
fi
