# Included by the top-level Makefile. Starts a Docker engine where none answers and builds
# stand-in base images where the official ones can't be pulled (see offline/README.md).

OFFLINE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
# Goals that need an engine and base images resolve them before make reads further.
OFFLINE_GOALS := bases build build-single build-multi build-no-bytecode build-distroless compare bench test up dev loadtest

ifneq ($(filter $(OFFLINE_GOALS),$(MAKECMDGOALS)),)
offline_ok := $(shell PYTHON_IMAGE='$(PYTHON_IMAGE)' POSTGRES_IMAGE='$(POSTGRES_IMAGE)' NGINX_IMAGE='$(NGINX_IMAGE)' \
	DEBIAN_IMAGE='$(DEBIAN_IMAGE)' DISTROLESS_IMAGE='$(DISTROLESS_IMAGE)' CA_BUNDLE='$(CA_BUNDLE)' \
	$(OFFLINE_DIR)/bases.sh build/bases.env >&2 && echo ok)
ifneq ($(offline_ok),ok)
$(error offline/bases.sh failed (see above))
endif
include build/bases.env
endif

TEST_PATHS += $(OFFLINE_DIR)/tests

.PHONY: engine  ## Start a Docker engine (installs one on Debian/Ubuntu as root if none answers)
engine:
	@$(OFFLINE_DIR)/engine.sh

.PHONY: bases  ## Use the official base images, or build offline/ stand-ins where they can't be pulled
bases:
	@:

# Tooling, not part of make test: CI's lint and test jobs as GitHub runs them (offline/rehearse-ci.sh).
.PHONY: rehearse-ci  ## As root: the workflow's lint and test steps from a fresh clone, as a non-root docker-group user
rehearse-ci:
	@IMAGE='$(IMAGE)-ci' CA_BUNDLE='$(CA_BUNDLE)' $(OFFLINE_DIR)/rehearse-ci.sh

# Tooling: a real Renovate run in local mode lists what it manages; fails if a lock file, a base image or
# an action is missing, or Renovate rejects a file (offline/renovate-extract.sh; needs npm).
.PHONY: renovate-extract  ## Run Renovate locally (extract only) and check it finds every lock file, base image and action
renovate-extract:
	@$(OFFLINE_DIR)/renovate-extract.sh build/renovate-extract.json \
		$(PYTHON_IMAGE) $(DEBIAN_IMAGE) $(DISTROLESS_IMAGE) $(POSTGRES_IMAGE) $(NGINX_IMAGE)
