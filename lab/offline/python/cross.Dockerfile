# The same stand-in (Dockerfile, next to this file) for another architecture than the engine's, e.g.
# linux/arm64 on an amd64 host. Compiling CPython under QEMU takes hours on a small host, so this
# recipe cross-compiles it on the build platform with Debian's cross toolchain and the target's -dev
# packages (Debian multiarch), then installs the result and its runtime libraries on the target's
# Debian stand-in. Same configure options, compiler flags (dpkg-buildflags for the target), install
# steps and clean-up as Dockerfile; each difference carries a comment. bases.sh picks this file only
# when PLATFORM is not the engine's own platform.

ARG BASE=offline/debian:trixie-slim
# The build platform's Debian stand-in: where the compiler runs.
ARG BUILD_BASE=offline/debian:trixie-slim

FROM --platform=$BUILDPLATFORM ${BUILD_BASE} AS cross
ARG TARGETARCH

ENV GPG_KEY 7169605F62C751356D054A26A821E680E5FA6305
ENV PYTHON_VERSION 3.13.5
ENV PYTHON_SHA256 93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640

# Dockerfile's build dependencies, for the target architecture; tk-dev is left out (its X11 -dev
# closure is large, and the slim image can't load _tkinter anyway: its Tk libraries are purged), so
# lib-dynload has no _tkinter module. python3.13 is the build-platform interpreter a cross build
# needs (--with-build-python): Debian trixie's, the same 3.13 feature release.
RUN set -eux; \
	dpkg --add-architecture "$TARGETARCH"; \
	apt-get update; \
	apt-get install -y --no-install-recommends \
		"crossbuild-essential-$TARGETARCH" \
		dpkg-dev \
		gnupg \
		make \
		pkgconf \
		python3.13 \
		wget \
		xz-utils \
		"libbluetooth-dev:$TARGETARCH" \
		"libbz2-dev:$TARGETARCH" \
		"libc6-dev:$TARGETARCH" \
		"libdb-dev:$TARGETARCH" \
		"libffi-dev:$TARGETARCH" \
		"libgdbm-dev:$TARGETARCH" \
		"liblzma-dev:$TARGETARCH" \
		"libncursesw5-dev:$TARGETARCH" \
		"libreadline-dev:$TARGETARCH" \
		"libsqlite3-dev:$TARGETARCH" \
		"libssl-dev:$TARGETARCH" \
		"uuid-dev:$TARGETARCH" \
		"zlib1g-dev:$TARGETARCH" \
	; \
	rm -rf /var/lib/apt/lists/*

RUN --mount=type=bind,source=python-signing-key.asc,target=/usr/src/python-signing-key.asc \
	set -eux; \
	wget -O python.tar.xz "http://deb.debian.org/debian/pool/main/p/python3.13/python3.13_$PYTHON_VERSION.orig.tar.xz"; \
	echo "$PYTHON_SHA256 *python.tar.xz" | sha256sum -c -; \
	wget -O python.tar.xz.asc "http://deb.debian.org/debian/pool/main/p/python3.13/python3.13_$PYTHON_VERSION.orig.tar.xz.asc"; \
	GNUPGHOME="$(mktemp -d)"; export GNUPGHOME; \
	gpg --batch --import /usr/src/python-signing-key.asc; \
	gpg --batch --assert-signer "$GPG_KEY" --verify python.tar.xz.asc python.tar.xz; \
	gpgconf --kill all; \
	rm -rf "$GNUPGHOME" python.tar.xz.asc; \
	mkdir -p /usr/src/python; \
	tar --extract --directory /usr/src/python --strip-components=1 --file python.tar.xz; \
	rm python.tar.xz; \
	\
	cd /usr/src/python; \
	gnuArch="$(dpkg-architecture --query DEB_BUILD_GNU_TYPE)"; \
	hostArch="$(dpkg-architecture --host-arch "$TARGETARCH" --query DEB_HOST_GNU_TYPE)"; \
# pkg-config must read the target's .pc files, not the build platform's.
	export PKG_CONFIG_LIBDIR="/usr/lib/$hostArch/pkgconfig:/usr/share/pkgconfig"; \
# configure can't run test programs or probe the target's /dev when cross-compiling: these are
# the answers a native build finds on Linux with glibc.
	export ac_cv_file__dev_ptmx=yes ac_cv_file__dev_ptc=no ac_cv_buggy_getaddrinfo=no; \
	./configure \
		--build="$gnuArch" \
		--host="$hostArch" \
		--with-build-python=python3.13 \
		--enable-loadable-sqlite-extensions \
		--enable-option-checking=fatal \
		--enable-shared \
		--with-ensurepip \
	; \
	nproc="$(nproc)"; \
	EXTRA_CFLAGS="$(DEB_HOST_ARCH="$TARGETARCH" dpkg-buildflags --get CFLAGS)"; \
	LDFLAGS="$(DEB_HOST_ARCH="$TARGETARCH" dpkg-buildflags --get LDFLAGS)"; \
	LDFLAGS="${LDFLAGS:--Wl},--strip-all"; \
		arch="$TARGETARCH"; \
		case "$arch" in \
			amd64|arm64) \
				EXTRA_CFLAGS="${EXTRA_CFLAGS:-} -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"; \
				;; \
			i386) \
				;; \
			*) \
				EXTRA_CFLAGS="${EXTRA_CFLAGS:-} -fno-omit-frame-pointer"; \
				;; \
		esac; \
	make -j "$nproc" \
		"EXTRA_CFLAGS=${EXTRA_CFLAGS:-}" \
		"LDFLAGS=${LDFLAGS:-}" \
	; \
	rm python; \
	make -j "$nproc" \
		"EXTRA_CFLAGS=${EXTRA_CFLAGS:-}" \
		"LDFLAGS=${LDFLAGS:--Wl},-rpath='\$\$ORIGIN/../lib'" \
		python \
	; \
# Into a separate root, copied onto the target's Debian below (the build platform's /usr/local must
# not receive target binaries).
	make install DESTDIR=/rootfs; \
	\
	cd /; \
	rm -rf /usr/src/python; \
	\
	find /rootfs/usr/local -depth \
		\( \
			\( -type d -a \( -name test -o -name tests -o -name idle_test \) \) \
			-o \( -type f -a \( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' \) \) \
		\) -exec rm -rf '{}' + \
	; \
# make install's ensurepip step ran on the build platform's interpreter, which installs pip into
# its own prefix (/rootfs/usr): pip is installed on the target below, as that step does natively.
	rm -rf /rootfs/usr/bin /rootfs/usr/lib; \
# The target packages whose libraries the build links: installed on the target below, where
# Dockerfile's own ldd step then marks their closure as manual, as upstream does.
	find /rootfs/usr/local -type f -executable -not \( -name '*tkinter*' \) -print0 \
		| xargs -0 "$hostArch-readelf" --dynamic 2>/dev/null \
		| awk '/\(NEEDED\)/ { gsub(/[][]/, "", $NF); print $NF }' \
		| sort -u \
		| grep -v '^libpython' \
		| sed "s|^|*/$hostArch/|" \
		| xargs -r dpkg-query --search \
		| awk 'sub(":$", "", $1) { print $1 }' \
		| sed 's/:[a-z0-9]*$//' \
		| sort -u > /rootfs/runtime-packages.txt; \
	cat /rootfs/runtime-packages.txt; \
	[ -s /rootfs/runtime-packages.txt ]

FROM ${BASE}

# ensure local python is preferred over distribution python
ENV PATH /usr/local/bin:$PATH

# runtime dependencies
RUN set -eux; \
	apt-get update; \
	apt-get install -y --no-install-recommends \
		ca-certificates \
		netbase \
		tzdata \
	; \
	apt-get dist-clean

ENV GPG_KEY 7169605F62C751356D054A26A821E680E5FA6305
ENV PYTHON_VERSION 3.13.5
ENV PYTHON_SHA256 93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640

# Dockerfile's install and clean-up, with the compiled tree copied in instead of built here: the
# libraries it links are installed, then upstream's ldd pass marks what it needs, the rest is purged.
RUN --mount=type=bind,from=cross,source=/rootfs,target=/rootfs \
	set -eux; \
	\
	savedAptMark="$(apt-mark showmanual)"; \
	apt-get update; \
	xargs -a /rootfs/runtime-packages.txt apt-get install -y --no-install-recommends; \
	cp -a /rootfs/usr/local/. /usr/local/; \
	\
	ldconfig; \
# make install's last step (ENSUREPIP=upgrade), then the clean-up's *.pyc rule for what it compiled.
	python3 -E -m ensurepip --upgrade --root=/; \
	find /usr/local -depth -type f -name '*.pyc' -exec rm -rf '{}' +; \
	\
	apt-mark auto '.*' > /dev/null; \
	apt-mark manual $savedAptMark; \
	find /usr/local -type f -executable -not \( -name '*tkinter*' \) -exec ldd '{}' ';' \
		| awk '/=>/ { so = $(NF-1); if (index(so, "/usr/local/") == 1) { next }; gsub("^/(usr/)?", "", so); printf "*%s\n", so }' \
		| sort -u \
		| xargs -rt dpkg-query --search \
		| awk 'sub(":$", "", $1) { print $1 }' \
		| sort -u \
		| xargs -r apt-mark manual \
	; \
	apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \
	apt-get dist-clean; \
	\
	export PYTHONDONTWRITEBYTECODE=1; \
	python3 --version; \
	pip3 --version

# make some useful symlinks that are expected to exist ("/usr/local/bin/python" and friends)
RUN set -eux; \
	for src in idle3 pip3 pydoc3 python3 python3-config; do \
		dst="$(echo "$src" | tr -d 3)"; \
		[ -s "/usr/local/bin/$src" ]; \
		[ ! -e "/usr/local/bin/$dst" ]; \
		ln -svT "$src" "/usr/local/bin/$dst"; \
	done

LABEL org.opencontainers.image.description="Local stand-in for python:3.13-slim-trixie, cross-compiled from source like docker-library/python"

CMD ["python3"]
