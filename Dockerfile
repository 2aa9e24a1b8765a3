# Multi-stage build: compile in a throwaway builder stage, ship only what runs (README: "The
# Dockerfile, step by step"). No "# syntax=" line: Docker >= 23's BuildKit knows every feature used.

# One base for both stages: the venv points at /usr/local/bin/python3 by absolute path.
ARG PYTHON_IMAGE=python:3.13-slim-trixie
# Debian packages your wheels compile against (builder) and link (runtime); empty for pure Python.
# Dockerfile.distroless and Dockerfile.single_stage name the same.
ARG BUILD_PACKAGES="libpq-dev"
ARG RUNTIME_PACKAGES="libpq5"
# The time of every file the build writes, never the clock's: the same commit builds the same image,
# and a layer changes only when its inputs do. (The image's date is SOURCE_DATE_EPOCH: `make build`
# passes the commit's.) rules_pkg's "portable mtime", 2000-01-01.
ARG FILE_MTIME=946684800

FROM ${PYTHON_IMAGE} AS builder
ARG BUILD_PACKAGES
ARG FILE_MTIME

# A compiler and headers, left behind with this stage. Unpinned: Debian's archive drops old
# versions on every security update; the base image's tag fixes the release.
# hadolint ignore=DL3008
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends build-essential ${BUILD_PACKAGES}; \
    rm -rf /var/lib/apt/lists/*

# A venv without pip, filled by the base's pip: one directory to copy, console scripts included.
# Pip's download cache, the lock file and a proxy's CA bundle are mounts: no layer keeps them. Not
# pip's cache of the wheels it compiled: one compiled for the other Dockerfile or an older -dev
# package would come back. No bytecode yet (the warm-up writes it for what runs). Extensions compiled without debug information (it
# would carry pip's random build path into their build ID) and stripped of symbols.
RUN --mount=type=cache,target=/root/.cache/pip/http-v2 \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    --mount=type=secret,id=ca \
    set -eux; \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    export CFLAGS=-g0 CXXFLAGS=-g0; \
    python -m venv --without-pip /opt/venv; \
    pip --python /opt/venv/bin/python install \
        --disable-pip-version-check \
        --no-compile \
        --require-hashes \
        --root-user-action=ignore \
        --requirement /tmp/requirements.txt; \
    find /opt/venv -name '*.so' -exec strip --strip-unneeded {} +; \
    find /opt -exec touch --no-dereference --date="@${FILE_MTIME}" {} +

# The code, as .dockerignore's allowlist has it: root-owned, readable by the app user whatever the
# checkout's modes (0755: directories need x), and with FILE_MTIME, not the checkout's times.
COPY --chmod=0755 . /app
RUN find /app -exec touch --no-dereference --date="@${FILE_MTIME}" {} +

FROM ${PYTHON_IMAGE} AS runtime
ARG RUNTIME_PACKAGES
ARG FILE_MTIME

# The libraries the extensions link; a numeric non-root user (distroless's 65532, so one volume serves
# either image) and its empty /data. apt's lists and logs stay in /tmp, and what dpkg and ldconfig keep
# of the base's is emptied, not deleted: a deleted file leaves a marker stamped with the clock. Then
# every file this step wrote takes FILE_MTIME (useradd's password date too).
# hadolint ignore=DL3008
RUN set -eux; \
    since="$(date +%s.%N)"; \
    if [ -n "${RUNTIME_PACKAGES}" ]; then \
        apt-get -o Dir::State::Lists=/tmp/apt update; \
        apt-get -o Dir::State::Lists=/tmp/apt -o Dir::Log=/tmp/apt -o Dpkg::Options::=--log=/dev/null \
            install -y --no-install-recommends ${RUNTIME_PACKAGES}; \
        rm -rf /tmp/apt; \
        truncate -s 0 /var/lib/dpkg/status-old /var/cache/ldconfig/aux-cache; \
    fi; \
    export SOURCE_DATE_EPOCH="${FILE_MTIME}"; \
    groupadd --gid 65532 nonroot; \
    useradd --uid 65532 --gid nonroot --no-log-init --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot; \
    install -d -o nonroot -g nonroot /data; \
    find / -xdev -newermt "@${since}" -exec touch --no-dereference --date="@${FILE_MTIME}" {} +

# --link: independent of the layers below, so a new base reuses it.
COPY --link --from=builder /opt /opt

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data

# The code last.
COPY --link --from=builder /app /app
WORKDIR /app

# Bytecode for exactly what starting and serving import: gunicorn started once, warm_paths requested;
# hash-based, with FILE_MTIME (gunicorn.conf.py says why).
RUN ["python", "gunicorn.conf.py", "warm-up"]

USER 65532:65532
EXPOSE 8000

# Exec form, the standard library only: GET health_path.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --start-interval=1s --retries=3 \
    CMD ["python", "gunicorn.conf.py", "health"]

# Exec form: gunicorn is PID 1 and gets docker stop's SIGTERM; it serves wsgi_app.
CMD ["gunicorn", "--config", "gunicorn.conf.py"]

# Last, so a new commit changes only metadata, never a cached layer.
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="pyslim" \
      org.opencontainers.image.description="Flask + gunicorn + psycopg2, built multi-stage" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
