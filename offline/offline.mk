# Included by the top-level Makefile. Starts a Docker engine where none answers and builds
# stand-in base images where the official ones can't be pulled (see offline/README.md).

OFFLINE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Goals that need an engine and base images resolve them before make reads further.
OFFLINE_GOALS := bases build build-single build-multi build-no-bytecode build-distroless compare bench test test-platform up dev loadtest

ifneq ($(filter $(OFFLINE_GOALS),$(MAKECMDGOALS)),)
offline_ok := $(shell PLATFORM='$(PLATFORM)' PYTHON_IMAGE='$(PYTHON_IMAGE)' POSTGRES_IMAGE='$(POSTGRES_IMAGE)' NGINX_IMAGE='$(NGINX_IMAGE)' \
	DEBIAN_IMAGE='$(DEBIAN_IMAGE)' DISTROLESS_IMAGE='$(DISTROLESS_IMAGE)' CA_BUNDLE='$(CA_BUNDLE)' \
	$(OFFLINE_DIR)/bases.sh build/bases$(platform_suffix).env >&2 && echo ok)
ifneq ($(offline_ok),ok)
$(error offline/bases.sh failed (see above))
endif
include build/bases$(platform_suffix).env
endif

TEST_PATHS += $(OFFLINE_DIR)/tests
# Every base image, as the Makefile resolved it: what a second engine copies, what Renovate must find.
OFFLINE_IMAGES = $(PYTHON_IMAGE) $(DEBIAN_IMAGE) $(DISTROLESS_IMAGE) $(POSTGRES_IMAGE) $(NGINX_IMAGE)

.PHONY: engine  ## Start a Docker engine (installs one on Debian/Ubuntu as root if none answers); DOCKER_STORE=classic|containerd checks its image store
engine:
	@$(OFFLINE_DIR)/engine.sh

.PHONY: bases  ## Use the official base images, or build offline/ stand-ins where they can't be pulled
bases:
	@:

# The containerd image store (Docker 29's default, Docker Desktop's), tried on a second engine beside
# this one, as root on Linux (offline/dockerd.sh: its own data root, socket, bridge and addresses).
# The base images (official or stand-ins) are copied over from this engine where it has them, then
# the size tests and tests/test_compare.py (compare.py end to end over the five images, as `make compare`
# runs it, one start-up run each) run there, and that engine stops; its data root keeps the images.
# C8D_COMPARE=1 adds the full `make compare` (the no-bytecode variants, five start-up runs: slower).
# An engine that already uses the containerd store needs none of this: `DOCKER_STORE=containerd make test`.
C8D_HOST   ?= unix:///run/docker-containerd.sock
C8D_TESTS  ?= tests/test_compare.py tests/test_image.py tests/test_distroless.py
C8D_SELECT ?= compare or smaller_than or adds_at_most or is_at_most
C8D_ENV     = DOCKER_HOST=$(C8D_HOST) DOCKER_STORE=containerd

.PHONY: test-containerd-store  ## compare.py and the size tests on a second engine with the containerd image store (root, Linux)
test-containerd-store:
	$(C8D_ENV) $(OFFLINE_DIR)/engine.sh
	@for image in $(OFFLINE_IMAGES); do \
	  for candidate in $$image offline/$$image; do \
	    if docker image inspect $$candidate >/dev/null 2>&1 && ! $(C8D_ENV) docker image inspect $$candidate >/dev/null 2>&1; then \
	      echo "copying $$candidate to the containerd-store engine"; \
	      docker save $$candidate | $(C8D_ENV) docker load --quiet || exit 1; \
	    fi; \
	  done; \
	done
	$(C8D_ENV) $(MAKE) containerd-store-checks || { $(C8D_ENV) $(OFFLINE_DIR)/dockerd.sh stop; exit 1; }
	$(C8D_ENV) $(OFFLINE_DIR)/dockerd.sh stop

# Called by test-containerd-store, against the engine DOCKER_HOST names.
.PHONY: containerd-store-checks
containerd-store-checks:
	$(if $(C8D_COMPARE),$(MAKE) compare)
	$(MAKE) test TEST_PATHS="$(C8D_TESTS)" PYTEST_ARGS="-k '$(C8D_SELECT)' $(PYTEST_ARGS)"

# Tooling, not part of make test: CI's lint and test jobs as GitHub runs them (offline/rehearse-ci.sh).
.PHONY: rehearse-ci  ## As root: the workflow's lint and test steps from a fresh clone, as a non-root docker-group user
rehearse-ci:
	@IMAGE='$(IMAGE)-ci' CA_BUNDLE='$(CA_BUNDLE)' $(OFFLINE_DIR)/rehearse-ci.sh

# Tooling: a real Renovate run in local mode lists what it manages; fails if a lock file, a base image or
# an action is missing, or Renovate rejects a file (offline/renovate-extract.sh; needs npm).
.PHONY: renovate-extract  ## Run Renovate locally (extract only) and check it finds every lock file, base image and action
renovate-extract:
	@$(OFFLINE_DIR)/renovate-extract.sh build/renovate-extract.json \
		$(OFFLINE_IMAGES)

# QEMU for `make test-arm64` and PLATFORM=linux/arm64 builds on an amd64 engine; nothing where arm64 runs.
.PHONY: arm64-emulation  ## Let this engine build and run linux/arm64 images (QEMU's binfmt handlers; as root)
arm64-emulation:
	@PLATFORM=linux/arm64 $(OFFLINE_DIR)/emulation.sh

test-arm64: arm64-emulation
