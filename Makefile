# Build, measure and test the single-stage, multi-stage and distroless images side by side.
# Every variable below can be overridden: `make build PYTHON_IMAGE=python:3.13-slim-bookworm`.

IMAGE          ?= pyslim
# Base images are named once, in the Dockerfiles' ARG lines (Postgres and nginx in compose.yaml); read from
# there, so editing a Dockerfile changes what every target builds. `:=` reads each file once.
dockerfile_arg = $(shell sed -n 's/^ARG $(1)=//p' $(2))
PYTHON_IMAGE     ?= $(call dockerfile_arg,PYTHON_IMAGE,Dockerfile)
DEBIAN_IMAGE     ?= $(call dockerfile_arg,DEBIAN_IMAGE,Dockerfile.distroless)
DISTROLESS_IMAGE ?= $(call dockerfile_arg,DISTROLESS_IMAGE,Dockerfile.distroless)
compose_default = $(shell sed -n 's/.*$${$(1):-\([^}]*\)}.*/\1/p' compose.yaml)
POSTGRES_IMAGE   ?= $(call compose_default,POSTGRES_IMAGE)
NGINX_IMAGE      ?= $(call compose_default,NGINX_IMAGE)
PYTHON_IMAGE     := $(PYTHON_IMAGE)
DEBIAN_IMAGE     := $(DEBIAN_IMAGE)
DISTROLESS_IMAGE := $(DISTROLESS_IMAGE)
POSTGRES_IMAGE   := $(POSTGRES_IMAGE)
NGINX_IMAGE      := $(NGINX_IMAGE)
# Which image `make up` and `make dev` run: multi-stage (Dockerfile) or distroless (Dockerfile.distroless).
VARIANT        ?= multi-stage
DOCKERFILE      = $(if $(filter distroless,$(VARIANT)),Dockerfile.distroless,Dockerfile)
# A CA bundle for TLS-intercepting proxies, handed to pip as a build secret (never a layer).
CA_BUNDLE      ?= $(firstword $(PIP_CERT) $(SSL_CERT_FILE) $(REQUESTS_CA_BUNDLE))
PYTHON         ?= python3
# The oldest Python the host tools run on (pyproject.toml's ruff target-version says the same).
PYTHON_MIN     := 3.11
VENV           ?= .venv
PYTEST_ARGS    ?=
# The compose stack's published port: compose.yaml's default, unless WEB_PORT is set.
WEB_PORT       ?= $(call compose_default,WEB_PORT)
TEST_PATHS     ?= tests
# Where the compose stack reads the database password; created on first use, never committed.
DB_PASSWORD_FILE ?= .secrets/db_password

comma := ,
# Goals that run host tools in a venv check the Python first: a missing or too-old one fails here,
# at once, naming the version needed, rather than half-way through creating a venv.
ifneq ($(filter compare readme bench test lint lint-k8s requirements loadtest,$(MAKECMDGOALS)),)
python_check := $(shell $(PYTHON) -c 'import sys; print("ok" if sys.version_info >= ($(subst .,$(comma),$(PYTHON_MIN)),) else "Python " + sys.version.split()[0])' 2>&1)
ifneq ($(python_check),ok)
$(error PYTHON=$(PYTHON) is $(or $(python_check),missing); these tools need Python $(PYTHON_MIN) or later: install it or set PYTHON=/path/to/python3)
endif
endif
# Another platform than the engine's, e.g. PLATFORM=linux/arm64 (an amd64 engine runs it under QEMU:
# `make arm64-emulation`). Docker's classic image store keeps one platform per tag, so those images
# get a name of their own, $(IMAGE)-arm64, and `make compare` writes build/compare-arm64.*.
PLATFORM       ?=
platform_suffix = $(if $(PLATFORM),-$(word 2,$(subst /, ,$(PLATFORM))))
override IMAGE := $(patsubst %$(platform_suffix),%,$(IMAGE))$(platform_suffix)

# The offline/ scaffolding (engine bootstrap, stand-in base images) plugs in here when present;
# delete the folder and everything below works against a normal Docker setup.
-include offline/offline.mk

# The commit's own date, not the clock: rebuilding the same commit gives the same image ID.
# := with $(or): git runs once per make, not once per use of the (exported) variable.
REVISION := $(or $(REVISION),$(shell git rev-parse --short HEAD 2>/dev/null),unknown)
CREATED  := $(or $(CREATED),$(shell git log -1 --format=%cI 2>/dev/null),unknown)
# The repository the image is published from, for its org.opencontainers.image.source label:
# origin's URL as https, without any user or token in it (those must never reach a label).
# A remote that is not a URL (a local path) gives "unknown" rather than a wrong link.
SOURCE_URL := $(or $(SOURCE_URL),$(shell git remote get-url origin 2>/dev/null | sed -E \
	-e 's,^git@([^:/]+):,https://\1/,' -e 's,^(ssh|git)://([^@/]+@)?([^/:]+)(:[0-9]+)?/,https://\3/,' \
	-e 's,^https?://([^@/]+@)?,https://,' -e 's,(\.git)?/*$$,,' | grep '^https://'),unknown)
BUILD_FLAGS = --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
              --build-arg DEBIAN_IMAGE=$(DEBIAN_IMAGE) \
              --build-arg DISTROLESS_IMAGE=$(DISTROLESS_IMAGE) \
              --build-arg REVISION=$(REVISION) \
              --build-arg CREATED=$(CREATED) \
              --build-arg SOURCE_URL=$(SOURCE_URL) \
              $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) \
              $(if $(PLATFORM),--platform $(PLATFORM))

export IMAGE PLATFORM PYTHON_IMAGE DEBIAN_IMAGE DISTROLESS_IMAGE POSTGRES_IMAGE NGINX_IMAGE VARIANT DOCKERFILE CA_BUNDLE DB_PASSWORD_FILE REVISION CREATED SOURCE_URL WEB_PORT

.DEFAULT_GOAL := help

.PHONY: help  ## Show this help
help:
	@awk 'BEGIN {FS = "## "} /^\.PHONY: [a-z0-9-]+ +## / {sub(/^\.PHONY: /, "", $$1); printf "  \033[36m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build  ## Build the single-stage, multi-stage and distroless images
build: build-single build-multi build-distroless

.PHONY: build-single  ## Build the naive single-stage image
build-single:
	docker build $(BUILD_FLAGS) --file Dockerfile.single_stage --tag $(IMAGE):single-stage .

.PHONY: build-multi  ## Build the multi-stage image
build-multi:
	docker build $(BUILD_FLAGS) --file Dockerfile --tag $(IMAGE):multi-stage .

.PHONY: build-distroless  ## Build the distroless image (no shell, no apt, no pip)
build-distroless:
	docker build $(BUILD_FLAGS) --file Dockerfile.distroless --tag $(IMAGE):distroless .

# Measurements land in build/ (git-ignored): the first `make compare` of a fresh clone leaves
# its tracked files alone. `make readme` is the one way to publish them.
COMPARE_OUTPUTS = --json build/compare$(platform_suffix).json --svg build/compare$(platform_suffix).svg
# More images to measure as extra rows, e.g. builds of an earlier commit (start→200 runs are
# interleaved across all rows, so such a before/after pair is timed under the same load).
COMPARE_EXTRA ?=

.PHONY: compare  ## Measure the base, single-stage, multi-stage and distroless images side by side (writes build/ only)
compare: $(VENV)/.installed build build-no-bytecode
	$(VENV)/bin/python scripts/compare.py --base $(PYTHON_IMAGE) --single $(IMAGE):single-stage --multi $(IMAGE):multi-stage \
		--distroless-base $(DISTROLESS_IMAGE) --distroless $(IMAGE):distroless \
		--extra $(IMAGE):no-bytecode --extra $(IMAGE):distroless-no-bytecode $(COMPARE_EXTRA:%=--extra %) $(COMPARE_OUTPUTS) \
		$(if $(PLATFORM),--platform $(PLATFORM))

.PHONY: readme  ## make compare, then write its table into README.md and its chart to docs/compare.svg
readme:
	$(MAKE) compare COMPARE_OUTPUTS='--json build/compare.json --svg docs/compare.svg --readme README.md'

# The road not taken, measured next to the shipped images by `make compare`: no .pyc at all
# (PYTHONDONTWRITEBYTECODE=1, no warm-up run). Smaller, slower to start.
# The sed must change one line and drop the warm-up RUN (from `RUN ["python", "-c", "\` to `"]`);
# anything else means a Dockerfile changed shape.
no_bytecode = sed -e '/^RUN \["python", "-c", "\\$$/,/^"\]$$/d' \
	    -e 's/^    PYTHONUNBUFFERED=1$$/    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1/' \
	    $(1) > build/$(1).no-bytecode && \
	[ "$$(diff $(1) build/$(1).no-bytecode | grep -c '^>')" = 1 ] && \
	[ "$$(diff $(1) build/$(1).no-bytecode | grep -c '^<')" -gt 3 ] && \
	! grep -q "os.spawnvp" build/$(1).no-bytecode || \
	{ echo "build-no-bytecode: $(1) changed shape; update the sed above" >&2; exit 1; }

.PHONY: build-no-bytecode  ## Build the no-bytecode variants that `make compare` measures
build-no-bytecode:
	@mkdir -p build
	$(call no_bytecode,Dockerfile)
	docker build $(BUILD_FLAGS) --file build/Dockerfile.no-bytecode --tag $(IMAGE):no-bytecode .
	$(call no_bytecode,Dockerfile.distroless)
	docker build $(BUILD_FLAGS) --file build/Dockerfile.distroless.no-bytecode --tag $(IMAGE):distroless-no-bytecode .

.PHONY: bench  ## Time cold, code-only and requirements rebuilds (slow; drops BuildKit cache mounts)
bench:
	$(PYTHON) scripts/bench.py --image $(IMAGE) --json build/bench.json $(BUILD_FLAGS)

# After editing any requirements*.in: pins and hashes for every package, and no
# index or find-links lines from this machine's pip configuration. Only options Renovate's
# pip-compile manager accepts in the header it re-runs (it rejects --no-emit-find-links),
# so find-links lines are dropped after the fact.
PIP_COMPILE = $(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
LOCK_FILES  = requirements.txt requirements-dev.txt requirements-checkov.txt

.PHONY: requirements  ## Re-pin requirements*.txt (with hashes) from their .in files
requirements: $(VENV)/.installed
	$(foreach lock,$(LOCK_FILES),$(PIP_COMPILE) $(lock:.txt=.in) && sed -i.bak '/^--find-links /,/^$$/d' $(lock) && rm $(lock).bak &&) true

# checkov's own venv: its pins can't share one with pytest's (requirements-checkov.in says why).
CHECKOV_VENV ?= .venv-checkov
CHECKOV       = $(abspath $(CHECKOV_VENV))/bin/checkov
export CHECKOV

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check --requirement requirements-checkov.txt
	@touch $@

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --requirement requirements-dev.txt
	@touch $@

.PHONY: test  ## Build the images and prove every claim (needs Docker)
test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(VENV)/bin/python -m pytest --durations=15 $(PYTEST_ARGS) $(TEST_PATHS)

# The runtime contract (the tests marked `platform`) on both shipped images built for linux/arm64,
# what Apple Silicon and Graviton run. Opt-in: an amd64 engine emulates it, many times slower.
.PHONY: test-arm64  ## Build the multi-stage and distroless images for linux/arm64 and test their runtime contract (slow under QEMU)
test-arm64:
	$(MAKE) test-platform PLATFORM=linux/arm64

.PHONY: test-platform  ## Only the tests marked `platform` (the runtime contract), on the images built for PLATFORM
test-platform: $(VENV)/.installed
	$(VENV)/bin/python -m pytest --durations=15 -m platform $(PYTEST_ARGS) tests

# Every shell script in the repository; tests/test_lint.py fails when one is left out.
SHELL_SCRIPTS = .ci/run $(wildcard offline/*.sh offline/*/*.sh)
WORKFLOWS = $(wildcard .github/workflows/*.yml)

# Kubernetes manifests: every overlay is rendered, then checked against the API schemas of the
# oldest release they need (preStop's sleep action is on by default from 1.30) and of the newest
# the validator bundles, then by checkov. All offline: the tools and schemas ship in their wheels.
K8S_DIR      = deploy/kubernetes
K8S_OVERLAYS = $(notdir $(wildcard $(K8S_DIR)/overlays/*))
K8S_VERSIONS = 1.30.0 1.37.0
K8S_RENDERED = $(K8S_OVERLAYS:%=build/kubernetes/%.yaml)

.PHONY: lint-k8s  ## Render each Kubernetes overlay (build/kubernetes/), validate it per K8S_VERSIONS, run checkov
lint-k8s: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	@mkdir -p build/kubernetes
	$(foreach overlay,$(K8S_OVERLAYS),$(VENV)/bin/kubectl kustomize $(K8S_DIR)/overlays/$(overlay) > build/kubernetes/$(overlay).yaml &&) true
	$(foreach version,$(K8S_VERSIONS),$(VENV)/bin/kubernetes-validate --strict --quiet --kubernetes-version $(version) $(K8S_RENDERED) &&) true
	$(CHECKOV) --framework kubernetes --skip-download --compact --quiet $(K8S_RENDERED:%=--file %)

.PHONY: lint  ## hadolint, compose config, workflow checks (schema, zizmor), Renovate config, Kubernetes manifests, ruff, shellcheck
lint: $(VENV)/.installed $(DB_PASSWORD_FILE) lint-k8s
	$(VENV)/bin/hadolint Dockerfile Dockerfile.distroless Dockerfile.single_stage
	docker compose config --quiet
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(VENV)/bin/zizmor --offline --persona=pedantic --no-progress $(WORKFLOWS)
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.renovate renovate.json
	$(VENV)/bin/ruff check .
	$(VENV)/bin/shellcheck $(SHELL_SCRIPTS)
	$(VENV)/bin/ruff format --check .

# The folder is private (0700); the file itself is 0644 because compose bind-mounts it
# as is, and the app's non-root user must be able to read it inside the container.
$(DB_PASSWORD_FILE):
	@mkdir -p -m 0700 $(dir $@)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24), end="")' > $@
	@chmod 0644 $@
	@echo "created $@ (random; not committed)"

.PHONY: up  ## Start Postgres, the app and its nginx front on http://127.0.0.1:8000 (VARIANT=distroless for that image)
up: $(DB_PASSWORD_FILE)
	docker compose up --build --wait

# The same stack with the working tree mounted read-only over /app and gunicorn reloading on change.
DEV_COMPOSE = docker compose --file compose.yaml --file compose.dev.yaml

.PHONY: dev  ## Like `make up`, with your code mounted and gunicorn reloading on every save
dev: $(DB_PASSWORD_FILE)
	$(DEV_COMPOSE) up --build --wait

.PHONY: loadtest  ## 60 s of load on the stack (locust, 20 clients on / and /visits): req/s, p50/p99, worker RSS
loadtest: $(VENV)/.installed up
	@mkdir -p build
	$(VENV)/bin/python scripts/loadtest.py --url http://127.0.0.1:$(WEB_PORT) --container "$$(docker compose ps --quiet web)" \
		--duration 60 --concurrency 20 --json build/loadtest.json

.PHONY: down  ## Stop the stack (the database volume is kept)
down:
	docker compose down

.PHONY: logs  ## Follow the stack's logs
logs:
	docker compose logs --follow

.PHONY: clean  ## Remove the stack, its volume, the images and build outputs
clean:
	-docker compose down --volumes --remove-orphans
	-docker image rm $(IMAGE):single-stage $(IMAGE):multi-stage $(IMAGE):distroless $(IMAGE):no-bytecode $(IMAGE):distroless-no-bytecode
	rm -rf build $(VENV) $(CHECKOV_VENV)
