# Build, measure and test the single-stage and multi-stage images side by side.
# Every variable below can be overridden: `make build PYTHON_IMAGE=python:3.13-slim-bookworm`.

IMAGE          ?= pyslim
PYTHON_IMAGE   ?= python:3.13-slim-trixie
POSTGRES_IMAGE ?= postgres:17-trixie
NGINX_IMAGE    ?= nginx:trixie
# A CA bundle for TLS-intercepting proxies, handed to pip as a build secret (never a layer).
CA_BUNDLE      ?= $(firstword $(PIP_CERT) $(SSL_CERT_FILE) $(REQUESTS_CA_BUNDLE))
PYTHON         ?= python3
VENV           ?= .venv
PYTEST_ARGS    ?=
# The compose stack's published port (compose.yaml reads WEB_PORT too).
WEB_PORT       ?= 8000
TEST_PATHS     ?= tests
# Where the compose stack reads the database password; created on first use, never committed.
DB_PASSWORD_FILE ?= .secrets/db_password

# The offline/ scaffolding (engine bootstrap, stand-in base images) plugs in here when present;
# delete the folder and everything below works against a normal Docker setup.
-include offline/offline.mk

# The commit's own date, not the clock: rebuilding the same commit gives the same image ID.
# := with $(or): git runs once per make, not once per use of the (exported) variable.
REVISION := $(or $(REVISION),$(shell git rev-parse --short HEAD 2>/dev/null),unknown)
CREATED  := $(or $(CREATED),$(shell git log -1 --format=%cI 2>/dev/null),unknown)
BUILD_FLAGS = --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
              --build-arg REVISION=$(REVISION) \
              --build-arg CREATED=$(CREATED) \
              $(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE))
comma := ,

export IMAGE PYTHON_IMAGE POSTGRES_IMAGE NGINX_IMAGE CA_BUNDLE DB_PASSWORD_FILE REVISION CREATED WEB_PORT

.DEFAULT_GOAL := help

.PHONY: help  ## Show this help
help:
	@awk 'BEGIN {FS = "## "} /^\.PHONY: [a-z-]+ +## / {sub(/^\.PHONY: /, "", $$1); printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build  ## Build both images
build: build-single build-multi

.PHONY: build-single  ## Build the naive single-stage image
build-single:
	docker build $(BUILD_FLAGS) --file Dockerfile.single_stage --tag $(IMAGE):single-stage .

.PHONY: build-multi  ## Build the multi-stage image
build-multi:
	docker build $(BUILD_FLAGS) --file Dockerfile --tag $(IMAGE):multi-stage .

.PHONY: compare  ## Measure base, single-stage and multi-stage images side by side
compare: build build-no-bytecode
	$(PYTHON) scripts/compare.py --base $(PYTHON_IMAGE) --single $(IMAGE):single-stage --multi $(IMAGE):multi-stage \
		--extra $(IMAGE):no-bytecode --json build/compare.json --svg docs/compare.svg --readme README.md

# The road not taken, measured next to the multi-stage image by `make compare`: no .pyc at
# all (pip --no-compile, PYTHONDONTWRITEBYTECODE=1, no stdlib warm-up). Smaller, slower to start.
.PHONY: build-no-bytecode  ## Build the no-bytecode variant that `make compare` measures
build-no-bytecode:
	@mkdir -p build
	sed -e 's/--require-hashes/--no-compile --require-hashes/' \
	    -e '/^RUN python -c "import /d' \
	    -e 's/^    PYTHONUNBUFFERED=1$$/    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1/' \
	    Dockerfile > build/Dockerfile.no-bytecode
	@[ $$(diff Dockerfile build/Dockerfile.no-bytecode | grep -c '^>') = 2 ] || \
	    { echo "build-no-bytecode: Dockerfile changed shape; update the sed above" >&2; exit 1; }
	docker build $(BUILD_FLAGS) --file build/Dockerfile.no-bytecode --tag $(IMAGE):no-bytecode .

.PHONY: bench  ## Time cold, code-only and requirements rebuilds (slow; drops BuildKit cache mounts)
bench:
	$(PYTHON) scripts/bench.py --image $(IMAGE) --json build/bench.json $(BUILD_FLAGS)

$(VENV)/.installed: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --requirement requirements-dev.txt
	@touch $@

# hey (Debian's package) is the load generator of `make loadtest` and of the suite's shorter
# load test. CI machines start bare: as root with apt-get it comes from the archive; elsewhere
# this says how to get it.
.PHONY: hey  ## Install the hey load generator if it is missing (Debian/Ubuntu, as root)
hey:
	@command -v hey >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "hey: installing Debian's package"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hey >/dev/null; \
	  else \
	    echo "hey is not installed: \`apt-get install hey\` (Debian/Ubuntu) or \`go install github.com/rakyll/hey@latest\`" >&2; \
	    exit 1; \
	  fi; }

.PHONY: test  ## Build the images and prove every claim (needs Docker)
test: $(VENV)/.installed hey
	$(VENV)/bin/python -m pytest --durations=15 $(PYTEST_ARGS) $(TEST_PATHS)

.PHONY: lint  ## hadolint both Dockerfiles and validate compose.yaml
lint: $(VENV)/.installed $(DB_PASSWORD_FILE)
	$(VENV)/bin/hadolint Dockerfile Dockerfile.single_stage
	docker compose config --quiet

# The folder is private (0700); the file itself is 0644 because compose bind-mounts it
# as is, and the app's non-root user must be able to read it inside the container.
$(DB_PASSWORD_FILE):
	@mkdir -p -m 0700 $(dir $@)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24), end="")' > $@
	@chmod 0644 $@
	@echo "created $@ (random; not committed)"

.PHONY: up  ## Start Postgres, the multi-stage app and its nginx front on http://127.0.0.1:8000
up: $(DB_PASSWORD_FILE)
	docker compose up --build --wait

.PHONY: loadtest  ## 60 s of load on the stack (hey, 20 clients on / and /visits): req/s, p50/p99, worker RSS
loadtest: hey up
	@mkdir -p build
	$(PYTHON) scripts/loadtest.py --url http://127.0.0.1:$(WEB_PORT) --container "$$(docker compose ps --quiet web)" \
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
	-docker image rm $(IMAGE):single-stage $(IMAGE):multi-stage $(IMAGE):no-bytecode
	rm -rf build $(VENV)
