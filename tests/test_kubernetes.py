"""deploy/kubernetes as `make lint` checks it: every overlay renders, validates against the named
Kubernetes releases and passes checkov; and what the rendered objects promise, field by field."""

import json
import os
import subprocess

import facts
import pytest
from dockertools import tool
from manifests import K8S_DIR, OVERLAYS, Rendered, kustomize

pytestmark = pytest.mark.lint
# The oldest release the manifests need (preStop's sleep action is on by default from 1.30), and the
# newest kubernetes-validate bundles.
K8S_VERSIONS = ["1.30.0", "1.37.0"]


@pytest.fixture(scope="module")
def rendered_files(tmp_path_factory):
    """Each overlay rendered to a file."""
    out = tmp_path_factory.mktemp("kubernetes")
    files = []
    for overlay in OVERLAYS:
        proc = subprocess.run(
            [tool("kubectl"), "kustomize", str(K8S_DIR / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        (out / f"{overlay}.yaml").write_text(proc.stdout)
        files.append(str(out / f"{overlay}.yaml"))
    return files


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request):
    """One overlay, rendered."""
    return Rendered(request.param)


def test_each_shipped_image_has_an_overlay():
    """One overlay per shipped image: both are validated and contract-tested."""
    assert {"multi-stage", "distroless"} <= set(OVERLAYS)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlays_match_kubernetes_schema(rendered_files, version):
    """kubernetes-validate --strict (bundled schemas, offline) accepts every rendered object."""
    proc = subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, *rendered_files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("passed for resource") == sum(len(kustomize(K8S_DIR / "overlays" / o)) for o in OVERLAYS)


def test_checkov_clean(rendered_files, tmp_path):
    """checkov's Kubernetes policies all pass on every overlay, bar the skips the Deployment justifies."""
    proc = subprocess.run(
        [
            os.environ.get("CHECKOV") or tool("checkov"),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--output",
            "json",
            *[arg for path in rendered_files for arg in ("--file", path)],
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [(c["check_id"], c["resource"]) for r in reports for c in r["results"]["failed_checks"]]
    assert proc.returncode == 0 and not failed, failed or proc.stderr
    # An empty scan would be clean too: every overlay's Deployment must have been checked.
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed >= 50 * len(rendered_files), passed


def test_every_checkov_skip_gives_a_reason(rendered):
    """A checkov.io/skip annotation names the check and says why, after the '='."""
    skips = {
        k: v
        for k, v in rendered.deployment["metadata"].get("annotations", {}).items()
        if k.startswith("checkov.io/skip")
    }
    for key, value in skips.items():
        check, _, reason = value.partition("=")
        assert check.startswith("CKV") and len(reason.split()) >= 4, f"{key}: {value}"


def test_overlay_sets_the_image_tag(rendered):
    """The base names the image without a tag; each overlay's images: sets the tag named after it."""
    base = next(obj for obj in kustomize(K8S_DIR / "base") if obj["kind"] == "Deployment")
    assert base["spec"]["template"]["spec"]["containers"][0]["image"] == "pyslim"
    assert rendered.container["image"] == f"pyslim:{rendered.overlay}"


def test_security_context_states_the_image_contract(rendered):
    """Non-root, read-only root, no privilege escalation, no capabilities, the runtime's seccomp profile."""
    assert rendered.security("runAsNonRoot") is True
    assert rendered.security("readOnlyRootFilesystem") is True
    assert rendered.security("allowPrivilegeEscalation") is False
    assert rendered.container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "add" not in rendered.container["securityContext"]["capabilities"]
    assert rendered.security("seccompProfile") == {"type": "RuntimeDefault"}


def test_tmp_is_a_memory_backed_empty_dir(rendered):
    """/tmp is an emptyDir in RAM with a size limit, so a read-only root still has a scratch dir."""
    volume, _ = rendered.mount_at("/tmp")
    assert volume["emptyDir"]["medium"] == "Memory" and volume["emptyDir"]["sizeLimit"]


def test_secrets_reach_the_pod_only_as_files(rendered):
    """No Secret in any env var of any container, init or app: a Secret is a file of a secret volume
    (the example's PGPASSWORD_FILE: tests/app/test_example_kubernetes.py)."""
    for spec in [rendered.container, *rendered.init_containers]:
        assert all("secretKeyRef" not in var.get("valueFrom", {}) for var in spec.get("env", []))
        assert all("secretRef" not in source for source in spec.get("envFrom", []))


def test_init_container_runs_the_setup_step(rendered):
    """One initContainer, of the app's image, runs gunicorn.conf.py's setup (setup_command) before the
    app starts: the one-off step of the contract, as compose's `setup` service runs it."""
    (init,) = rendered.init_containers
    assert init["image"] == rendered.container["image"]
    assert init["command"] == ["python", "gunicorn.conf.py", "setup"] and not init.get("args")


@pytest.mark.parametrize("field", ["envFrom", "env", "securityContext", "volumeMounts"])
def test_init_container_sees_what_the_app_sees(rendered, field):
    """The setup step gets the app's settings, restrictions and volumes, so what it prepares (tables,
    files in $DATA_DIR) is what the app then finds, and it can do nothing the app could not."""
    (init,) = rendered.init_containers
    assert init.get(field) == rendered.container.get(field)


def test_probe_paths_are_the_contracts(rendered):
    """Startup and liveness ask the contract's health_path, readiness its ready_path (gunicorn.conf.py)."""
    contract = facts.contract()
    paths = {kind: rendered.probe(kind)[0] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {
        "startupProbe": contract["health_path"],
        "livenessProbe": contract["health_path"],
        "readinessProbe": contract["ready_path"],
    }


def test_rolling_update_never_drops_below_the_replica_count(rendered):
    """Two replicas; a rollout adds a pod before it removes one."""
    spec = rendered.deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("kind", ["Service", "PodDisruptionBudget", "NetworkPolicy"])
def test_selector_matches_the_pods(rendered, kind):
    """The Service, the PodDisruptionBudget and the NetworkPolicy select exactly the Deployment's pods."""
    spec = rendered.one(kind)["spec"]
    selector = spec.get("selector") or spec["podSelector"]
    selector = selector.get("matchLabels", selector)
    labels = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    assert selector and selector.items() <= labels.items(), (selector, labels)
    assert rendered.deployment["spec"]["selector"]["matchLabels"] == selector


def test_service_targets_the_container_port(rendered):
    """The Service's targetPort resolves to a port the container declares."""
    for port in rendered.one("Service")["spec"]["ports"]:
        rendered.port(port["targetPort"])


def test_termination_grace_covers_pre_stop_and_graceful_timeout(rendered):
    """terminationGracePeriodSeconds outlasts the preStop sleep plus gunicorn's graceful_timeout."""
    pre_stop = rendered.container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert rendered.pod["terminationGracePeriodSeconds"] > pre_stop + facts.gunicorn_settings()["graceful_timeout"]


def test_liveness_and_startup_probes_stay_short(rendered):
    """health_path answers from the process alone, never waiting on a database (gunicorn.conf.py), so
    its probes need no long timeout. (Readiness against the example's connect timeout:
    tests/app/test_example_kubernetes.py.)"""
    assert rendered.probe("livenessProbe")[2] <= 2
    assert rendered.probe("startupProbe")[2] <= 2
