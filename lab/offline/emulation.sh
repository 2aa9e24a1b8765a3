#!/usr/bin/env bash
# `make arm64-emulation`: let the engine build and run images of another architecture (PLATFORM,
# linux/arm64 by default) through QEMU. Does nothing where BuildKit already lists that platform: an
# arm64 host, Docker Desktop (which registers QEMU itself), a host set up before. Otherwise, as root
# on Debian/Ubuntu, installs the distribution's qemu-user-static: its binfmt_misc handlers carry
# flag F (the kernel opens the emulator once), so they work inside containers with no emulator in
# the image. Elsewhere it says how (moby/buildkit docs/multi-platform.md: tonistiigi/binfmt).
set -euo pipefail

PLATFORM=${PLATFORM:-linux/arm64}
PLATFORM=${PLATFORM%/v8} # what BuildKit lists for linux/arm64/v8
say() { printf 'emulation: %s\n' "$*" >&2; }

# BuildKit lists what it can run (it probes each emulator); a "*" marks platforms set by hand.
listed() {
	local platforms
	platforms=$(docker buildx inspect 2>/dev/null | sed -n 's/^Platforms://p' | tr -d ' *')
	[[ ",$platforms," == *",$PLATFORM,"* ]]
}

if listed; then
	say "$PLATFORM runs here already"
	exit 0
fi

# QEMU's name for the architecture, and binfmt_misc's name for its handler.
case "${PLATFORM#linux/}" in
arm64* | aarch64*) qemu=aarch64 ;;
amd64*) qemu=x86_64 ;;
*)
	say "no recipe for $PLATFORM: run \`docker run --privileged --rm tonistiigi/binfmt --install all\`"
	exit 1
	;;
esac

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	say "$PLATFORM does not run here: as root, \`docker run --privileged --rm tonistiigi/binfmt --install ${PLATFORM#linux/}\`"
	say "(or on Debian/Ubuntu \`apt-get install qemu-user-static\`), then run this again"
	exit 1
fi

binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
if [ ! -e "$binfmt/qemu-$qemu" ]; then
	say "installing Debian's qemu-user-static (registers its binfmt_misc handlers)"
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support; } >&2
	# Without systemd, the package's own registration may not run: binfmt-support does it.
	[ -e "$binfmt/qemu-$qemu" ] || update-binfmts --enable "qemu-$qemu" >&2
fi
grep -qx 'flags: .*F.*' "$binfmt/qemu-$qemu" || {
	say "$binfmt/qemu-$qemu lacks flag F: containers can't reach the emulator; re-register it with --fix-binary"
	exit 1
}
listed || {
	say "the handler is registered but BuildKit does not list $PLATFORM (docker buildx inspect)"
	exit 1
}
say "$PLATFORM runs here now (QEMU user-mode emulation: expect builds several times slower)"
