#!/usr/bin/env bash
# Build a stand-in for debian:<suite>-slim from Debian's archive and import it as IMAGE.
# It copies what debuerreotype does to the official image (minbase, the docker-* apt and
# dpkg settings, the "slim" path excludes), because without those settings every later
# `apt-get update` layer silently keeps ~90 MB of /var/cache/apt/*.bin.
set -euo pipefail

IMAGE=${1:?usage: build.sh IMAGE [SUITE]}
SUITE=${2:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
LABEL=${3:-}
# Another architecture (arm64 on an amd64 host) needs the engine to run its binaries (QEMU's binfmt
# handlers, `make arm64-emulation`): debootstrap's second stage runs the target's dpkg in the chroot.
PLATFORM=${PLATFORM:-}
ARCH=${PLATFORM:+${PLATFORM#linux/}}
ARCH=${ARCH%%/*}

command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; } >&2

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase ${ARCH:+--arch="$ARCH"} "$SUITE" "$root" "$MIRROR" >&2

# debuerreotype-minimizing-config: the same file names and contents the official image has.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

# debuerreotype-slimify: keep dpkg from installing docs, and delete those already there.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CONF
(
	cd "$root/usr/share"
	find doc -mindepth 2 ! -name copyright ! -type d -delete
	find doc -depth -mindepth 1 -type d -empty -delete
	rm -rf groff/* info/* linda/* lintian/overrides/* man/*
	find locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
)

# The official image's sources: the release, its updates and its security suite, in deb822
# form. With the release alone, every image built on the stand-in would miss security fixes
# (libpq5's among them) that the official image's users get.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.pgp
SOURCES
# The official image is built with those suites too, so its packages carry their fixes.
chroot "$root" apt-get update -qq >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get dist-upgrade -y -qq >&2

# What debootstrap leaves behind that the official image does not ship.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
	"$root"/var/log/* "$root"/tmp/* "$root"/root/.bash_history
: >"$root/etc/machine-id"
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"

tar --numeric-owner --xattrs -C "$root" -c . |
	docker import ${PLATFORM:+--platform "$PLATFORM"} \
		--change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		${LABEL:+--change "LABEL $LABEL"} \
		--message "debootstrap --variant=minbase $SUITE, slimmed like debian:$SUITE-slim" \
		- "$IMAGE" >&2
