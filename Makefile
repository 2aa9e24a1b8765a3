# Build, run and test the three images. Set any variable on the command line or in the environment:
# `make build PYTHON_IMAGE=mirror.example/python:3.13-slim-trixie`.
IMAGE ?= pyslim
# Base images are named once, in the Dockerfiles' ARG lines (Postgres and nginx in compose.yaml).
arg = $(shell sed -n 's/^ARG $(1)=//p' $(2))
compose_default = $(shell sed -n 's/.*$${$(1):-\([^}]*\)}.*/\1/p' compose.yaml)
PYTHON_IMAGE     ?= $(call arg,PYTHON_IMAGE,Dockerfile)
DEBIAN_IMAGE     ?= $(call arg,DEBIAN_IMAGE,Dockerfile.distroless)
DISTROLESS_IMAGE ?= $(call arg,DISTROLESS_IMAGE,Dockerfile.distroless)
POSTGRES_IMAGE   ?= $(call compose_default,POSTGRES_IMAGE)
NGINX_IMAGE      ?= $(call compose_default,NGINX_IMAGE)
$(foreach v,PYTHON_IMAGE DEBIAN_IMAGE DISTROLESS_IMAGE POSTGRES_IMAGE NGINX_IMAGE,$(eval $(v) := $($(v))))
VARIANTS   = single-stage multi-stage distroless
dockerfile = $(if $(filter single-stage,$(1)),Dockerfile.single_stage,$(if $(filter distroless,$(1)),Dockerfile.distroless,Dockerfile))
# Which image `make up` and `make dev` run: multi-stage or distroless.
VARIANT   ?= multi-stage
DOCKERFILE = $(call dockerfile,$(VARIANT))
# A CA bundle for a TLS-intercepting proxy, handed to pip as a build secret (never a layer).
CA_BUNDLE ?= $(firstword $(PIP_CERT) $(SSL_CERT_FILE) $(REQUESTS_CA_BUNDLE))
PYTHON    ?= python3
VENV      ?= .venv
TEST_PATHS ?= tests
DB_PASSWORD_FILE ?= .secrets/db_password
# Labels: the commit, its own date (rebuilding a commit gives the same image), origin as https, no token.
REVISION   := $(or $(REVISION),$(shell git rev-parse --short HEAD 2>/dev/null),unknown)
CREATED    := $(or $(CREATED),$(shell git log -1 --format=%cI 2>/dev/null),unknown)
# The image's own date (its config's "created"): the commit's too, so one commit builds one image.
SOURCE_DATE_EPOCH := $(or $(SOURCE_DATE_EPOCH),$(shell git log -1 --format=%ct 2>/dev/null),0)
SOURCE_URL := $(or $(SOURCE_URL),$(shell git remote get-url origin 2>/dev/null | sed -E \
	-e 's,^git@([^:/]+):,https://\1/,' -e 's,^(ssh|git)://([^@/]+@)?([^/:]+)(:[0-9]+)?/,https://\3/,' \
	-e 's,^https?://([^@/]+@)?,https://,' -e 's,(\.git)?/*$$,,' | grep '^https://'),unknown)
comma := ,
BUILD_FLAGS = $(foreach a,PYTHON_IMAGE DEBIAN_IMAGE DISTROLESS_IMAGE REVISION CREATED SOURCE_URL SOURCE_DATE_EPOCH,--build-arg $(a)=$($(a))) \
	$(if $(CA_BUNDLE),--secret id=ca$(comma)src=$(CA_BUNDLE)) $(if $(PLATFORM),--platform $(PLATFORM))
export IMAGE PLATFORM PYTHON_IMAGE DEBIAN_IMAGE DISTROLESS_IMAGE POSTGRES_IMAGE NGINX_IMAGE VARIANT DOCKERFILE \
	CA_BUNDLE DB_PASSWORD_FILE REVISION CREATED SOURCE_URL SOURCE_DATE_EPOCH
export CHECKOV = $(abspath $(VENV)-checkov)/bin/checkov
# The host tools' oldest Python is pyproject.toml's requires-python: a missing or older one stops here.
PYTHON_MIN := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"/\1/p' pyproject.toml)
ifneq ($(filter test lint requirements,$(MAKECMDGOALS)),)
ifneq ($(shell $(PYTHON) -c 'import sys; print(sys.version_info >= ($(subst .,$(comma),$(PYTHON_MIN)),))' 2>&1),True)
$(error PYTHON=$(PYTHON) is missing or too old: these tools need Python $(PYTHON_MIN) or later)
endif
endif
.DEFAULT_GOAL := help
.PHONY: help build reproduce up dev down test lint requirements clean
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  %-22s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
build: ## Build the three images, tagged pyslim:single-stage, :multi-stage, :distroless
	$(foreach v,$(VARIANTS),docker build $(BUILD_FLAGS) --file $(call dockerfile,$(v)) --tag $(IMAGE):$(v) . &&) true
# Two clean clones of HEAD (a commit: uncommitted changes are not in it), each shipped image built
# from each with no cache, then compared: the same image ID, or the first layer and files that differ.
SHIPPED = multi-stage distroless
reproduce: ## Build multi-stage and distroless twice from clean clones of HEAD, no cache; compare them
	rm -rf build/reproduce && git clone --quiet . build/reproduce/a && git clone --quiet . build/reproduce/b
	$(foreach c,a b,$(foreach v,$(SHIPPED),docker build --quiet --no-cache $(BUILD_FLAGS) --file build/reproduce/$(c)/$(call dockerfile,$(v)) \
		--tag $(IMAGE)-reproduce:$(v)-$(c) build/reproduce/$(c) &&)) true
	$(PYTHON) tests/reproduce.py $(foreach v,$(SHIPPED),$(IMAGE)-reproduce:$(v)-a $(IMAGE)-reproduce:$(v)-b)
up: $(DB_PASSWORD_FILE) ## Run the app behind nginx on http://127.0.0.1:8000, with Postgres (VARIANT=distroless too)
	docker compose up --build --wait
dev: $(DB_PASSWORD_FILE) ## Like up, with your code mounted and gunicorn reloading on every save
	docker compose --file compose.yaml --file compose.dev.yaml up --build --wait
down: ## Stop the stack (its volumes are kept)
	docker compose down
test: $(VENV)/.installed $(VENV)/.checkov ## Build the images, test them, and run the app's own tests (tests/app/)
	$(VENV)/bin/python -m pytest --durations=15 $(PYTEST_ARGS) $(TEST_PATHS)
lint: $(VENV)/.installed $(VENV)/.checkov ## Lint Dockerfiles, compose, workflow, Kubernetes manifests, shell, Python
	$(VENV)/bin/python -m pytest -m lint $(PYTEST_ARGS) tests
# Pins with hashes; the header is what Renovate re-runs, so only options it accepts (not
# --no-emit-find-links): this machine's find-links lines are dropped after the fact.
LOCKS = pyproject.toml:requirements.txt tests/requirements.in:tests/requirements.txt \
	tests/requirements-checkov.in:tests/requirements-checkov.txt
lock = $(word $(1),$(subst :, ,$(2)))
requirements: $(VENV)/.installed ## Re-pin requirements.txt and the test tools' locks, with hashes
	$(foreach l,$(LOCKS),$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--output-file $(call lock,2,$(l)) $(call lock,1,$(l)) && sed -i.bak '/^--find-links /,/^$$/d' $(call lock,2,$(l)) && \
		rm $(call lock,2,$(l)).bak &&) true
clean: ## Remove the stack and its volumes, the images, the venvs and build/
	-docker compose down --volumes --remove-orphans
	-docker image rm $(VARIANTS:%=$(IMAGE):%) $(foreach c,a b,$(SHIPPED:%=$(IMAGE)-reproduce:%-$(c)))
	rm -rf build $(VENV) $(VENV)-checkov
# checkov's pins can't share a venv with pytest's (tests/requirements-checkov.in says why).
$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install --quiet --disable-pip-version-check -r $< && touch $@
$(VENV)/.checkov: tests/requirements-checkov.txt
	$(PYTHON) -m venv $(VENV)-checkov && $(VENV)-checkov/bin/pip install --quiet --disable-pip-version-check -r $< && touch $@
# The folder is private; the file is 0644 because compose bind-mounts it for the app's user.
$(DB_PASSWORD_FILE):
	@mkdir -p -m 0700 $(dir $@)
	@$(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(24), end="")' > $@ && chmod 0644 $@
