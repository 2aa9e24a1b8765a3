# Multi-stage build: compile in a throwaway builder stage, ship only what runs.
# No "# syntax=" line: it would pull a frontend image from Docker Hub, and the BuildKit
# built into Docker >= 23 already knows RUN --mount, COPY --link and build secrets.

# Both stages must start from the same image: the venv's scripts and pyvenv.cfg point at
# the interpreter by absolute path (/usr/local/bin/python3), which must exist in the final stage.
ARG PYTHON_IMAGE=python:3.13-slim-trixie
# Debian packages your wheels need: headers to compile them (builder), libraries to run them (runtime).
# Empty for a pure-Python app. Dockerfile.distroless and Dockerfile.single_stage name the same.
ARG BUILD_PACKAGES="libpq-dev"
ARG RUNTIME_PACKAGES="libpq5"

FROM ${PYTHON_IMAGE} AS builder
ARG BUILD_PACKAGES

# A compiler and the headers, to build extensions (psycopg2) against Debian's libraries.
# They stay in this stage.
# Debian versions are not pinned: the archive drops old versions on every security update,
# so a pin breaks the build; the base image's tag fixes the Debian release instead.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends build-essential ${BUILD_PACKAGES}; \
    rm -rf /var/lib/apt/lists/*

# Install into a venv, not the system site-packages: the venv is one directory to copy whole,
# console scripts (bin/gunicorn) included. Copying only site-packages leaves them behind.
# It is created without pip: the base image's pip installs into it with --python.
# The CA bundle (optional) is a secret: pip trusts a TLS-intercepting proxy, no layer keeps it.
# requirements.txt is bind-mounted rather than copied, so it leaves no layer behind either.
# --no-compile: bytecode is written in the final stage, for the modules the app imports only.
# Compiled extensions inherit the interpreter's -g; nothing reads debug symbols at run time.
RUN --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    --mount=type=secret,id=ca \
    set -eux; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    python -m venv --without-pip /opt/venv; \
    pip --python /opt/venv/bin/python install \
        --disable-pip-version-check \
        --no-compile \
        --require-hashes \
        --root-user-action=ignore \
        --requirement /tmp/requirements.txt; \
    find /opt/venv -name '*.so' -exec strip --strip-unneeded {} +

FROM ${PYTHON_IMAGE} AS runtime
ARG RUNTIME_PACKAGES

# The libraries the extensions link (libpq5 for psycopg2); no compiler, no headers.
# Unpinned on purpose, as in the builder stage.
# hadolint ignore=DL3008
RUN set -eux; \
    if [ -n "${RUNTIME_PACKAGES}" ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES}; \
    fi; \
# apt's lists, dpkg's and apt's logs, dpkg's backup of its database, ldconfig's cache of file
# times: nothing reads them at run time, and the layer would keep them (about 0.3 MB).
    rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log /var/lib/dpkg/status-old \
        /var/cache/ldconfig/aux-cache; \
# distroless's nonroot UID, so one volume serves either image. A fixed number lets Kubernetes'
# runAsNonRoot verify it. /data: the app's one writable directory, empty and the app user's.
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid nonroot --no-log-init --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot; \
    install -d -o nonroot -g nonroot /data

# --link: this layer does not depend on the layers below it, so a new base reuses it.
COPY --link --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data

# Code is owned by root and only readable by the app user: a compromised worker can't rewrite it.
# The context is .dockerignore's allowlist, so that list alone says which files ship
# (requirements.txt comes along: 15 kB, and a record of what the venv holds).
# --chmod: a checkout's modes don't reach the image (under umask 077 they are 0600, which the
# app user could not read); 0755 because it applies to directories too, which need x.
WORKDIR /app
COPY --link --chmod=0755 . ./

# The base image ships no .pyc files, pip installed the venv without them, and the app user
# can't write them: every worker would compile what it imports on every start, several times
# slower than loading bytecode. Starting gunicorn and requesting gunicorn.conf.py's warm_paths once,
# as root, writes bytecode for exactly the modules that starting and serving import.
RUN ["python", "gunicorn.conf.py", "warm-up"]

USER 65532:65532
EXPOSE 8000

# Exec form and the standard library only: no shell, no curl in the image. GET health_path.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --start-interval=1s --retries=3 \
    CMD ["python", "gunicorn.conf.py", "health"]

# Exec form: gunicorn is PID 1 and receives docker stop's SIGTERM itself. The app is wsgi_app.
CMD ["gunicorn", "--config", "gunicorn.conf.py"]

# Last, so a new revision or date changes only metadata, never a cached layer.
# SOURCE_URL: `make build` derives it from the git remote, CI from the repository it runs in.
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="pyslim" \
      org.opencontainers.image.description="Flask + gunicorn + psycopg2, built multi-stage" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
