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

.PHONY: engine  ## Start a Docker engine (installs one on Debian/Ubuntu as root if none answers)
engine:
	@$(OFFLINE_DIR)/engine.sh

.PHONY: bases  ## Use the official base images, or build offline/ stand-ins where they can't be pulled
bases:
	@:

# QEMU for `make test-arm64` and PLATFORM=linux/arm64 builds on an amd64 engine; nothing where arm64 runs.
.PHONY: arm64-emulation  ## Let this engine build and run linux/arm64 images (QEMU's binfmt handlers; as root)
arm64-emulation:
	@PLATFORM=linux/arm64 $(OFFLINE_DIR)/emulation.sh

test-arm64: arm64-emulation
