#!/usr/bin/env bash
# Resolve the images the template builds on or runs beside: the official one where it is
# present or can be pulled, otherwise a stand-in built from Debian's archive under an offline/ name
# (never under the official name, so nobody mistakes one for the other).
# Writes VAR=image lines to the file named by $1 for the Makefile to include.
set -euo pipefail

OUT=${1:?usage: bases.sh OUTPUT_FILE}
here=$(cd "$(dirname "$0")" && pwd)
# No defaults here: the Makefile reads them from the Dockerfiles' ARG lines and compose.yaml.
: "${PYTHON_IMAGE:?set by the Makefile}" "${POSTGRES_IMAGE:?}" "${DEBIAN_IMAGE:?}" "${DISTROLESS_IMAGE:?}" "${NGINX_IMAGE:?}"
DEBIAN_STANDIN=offline/debian:trixie-slim

say() { printf 'bases: %s\n' "$*" >&2; }

"$here/engine.sh" >&2

# A stand-in is rebuilt only when its recipe changes: the recipe's hash rides along as a label.
# macOS has shasum and (before 15) no sha256sum; both print the same lines, so the same hash.
if command -v sha256sum >/dev/null 2>&1; then sha256=(sha256sum); else sha256=(shasum -a 256); fi # portable: guarded
recipe_hash() { (cd "$here" && find "$@" -type f -print0 | sort -z | xargs -0 "${sha256[@]}" | "${sha256[@]}" | cut -c1-16); }
current() {
	[ "$(docker image inspect --format '{{index .Config.Labels "offline.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

# Empty unless CA_BUNDLE is set; expanded as ${a[@]+"${a[@]}"}, since bash 3.2 (macOS) calls
# "${a[@]}" of an empty array unbound under set -u.
ca_secret=()
ca=${CA_BUNDLE:-}
[ -n "$ca" ] && ca_secret=(--secret "id=ca,src=$ca")

standin() { # standin IMAGE DIR: build offline/DIR as IMAGE on top of the Debian stand-in
	local image=$1 dir=$2 hash
	hash=$(recipe_hash debian "$dir")
	if current "$image" "$hash"; then
		say "$image is up to date"
		return
	fi
	say "building $image from offline/$dir (a few minutes the first time)"
	docker build --build-arg "BASE=$DEBIAN_STANDIN" --label "offline.recipe=$hash" \
		${ca_secret[@]+"${ca_secret[@]}"} --tag "$image" "$here/$dir" >&2
}

debian_standin() {
	local hash
	hash=$(recipe_hash debian)
	if current "$DEBIAN_STANDIN" "$hash"; then return; fi
	say "building $DEBIAN_STANDIN with debootstrap (about 30 s)"
	"$here/debian/build.sh" "$DEBIAN_STANDIN" trixie "offline.recipe=$hash" >&2
}

resolve() { # resolve VAR IMAGE: print VAR=the image to use, and why
	local var=$1 image=$2 standin
	if docker image inspect "$image" >/dev/null 2>&1; then
		say "$var=$image (present locally)"
	elif [ -z "${OFFLINE:-}" ] && docker pull --quiet "$image" >/dev/null 2>&1; then
		say "$var=$image (pulled)"
	else
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
		debian_standin
		image=offline/$image
		# The Debian stand-in is the base every other stand-in builds on: debian_standin made it.
		[ "$standin" = debian ] || standin "$image" "$standin"
		say "$var=$image (stand-in: the official image can't be pulled here)"
	fi
	printf '%s=%s\n' "$var" "$image"
}

mkdir -p "$(dirname "$OUT")"
{
	resolve PYTHON_IMAGE "$PYTHON_IMAGE"
	resolve POSTGRES_IMAGE "$POSTGRES_IMAGE"
	resolve DEBIAN_IMAGE "$DEBIAN_IMAGE"
	resolve DISTROLESS_IMAGE "$DISTROLESS_IMAGE"
	resolve NGINX_IMAGE "$NGINX_IMAGE"
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
