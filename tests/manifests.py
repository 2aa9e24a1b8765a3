"""The Kubernetes manifests as a cluster receives them: `kubectl kustomize` output, read field by field."""

import re
import subprocess
from pathlib import Path

import yaml
from dockertools import ROOT, tool

K8S_DIR = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (K8S_DIR / "overlays").iterdir() if path.is_dir())
QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def kustomize(directory):
    """The objects `kubectl kustomize directory` renders, in its order."""
    proc = subprocess.run([tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def quantity_bytes(quantity):
    """Bytes in a Kubernetes memory quantity such as 192Mi."""
    found = re.fullmatch(r"(\d+)([kMG]i?|)", str(quantity))
    assert found, f"unsupported quantity {quantity!r}"
    return int(found.group(1)) * QUANTITY_UNITS[found.group(2)]


class Rendered:
    """One overlay rendered, with the one Deployment's pod and container at hand."""

    def __init__(self, overlay):
        self.overlay = overlay
        self.objects = kustomize(K8S_DIR / "overlays" / overlay)
        self.deployment = self.one("Deployment")
        self.pod = self.deployment["spec"]["template"]["spec"]
        containers = self.pod["containers"]
        assert len(containers) == 1, "the contract test maps one container to one docker run"
        self.container = containers[0]
        # Run one after another to completion before the app container starts, as the kubelet runs them.
        self.init_containers = self.pod.get("initContainers", [])

    def all(self, kind):
        """Every rendered object of a kind."""
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind):
        """The one rendered object of a kind."""
        found = self.all(kind)
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} objects"
        return found[0]

    def security(self, field, container=None):
        """A securityContext field as the kubelet resolves it: the container's wins over the pod's.
        The app container's unless another (an init container) is given; so for every method below."""
        container = container or self.container
        return container.get("securityContext", {}).get(field, self.pod.get("securityContext", {}).get(field))

    def env(self, container=None):
        """The container's environment: the ConfigMaps of envFrom, then env (which wins)."""
        container = container or self.container
        env = {}
        configmaps = {obj["metadata"]["name"]: obj for obj in self.all("ConfigMap")}
        for source in container.get("envFrom", []):
            env.update(configmaps[source["configMapRef"]["name"]].get("data", {}))  # an empty one has none
        for var in container.get("env", []):
            assert "value" in var, f"{var['name']}: only literal values map to docker run --env"
            env[var["name"]] = var["value"]
        return env

    def port(self, port):
        """A container port by number or by name, as probes and Services may give it."""
        for declared in self.container["ports"]:
            if port in (declared["containerPort"], declared.get("name")):
                return declared["containerPort"]
        raise AssertionError(f"{port!r} is not a port of the container")

    def probe(self, kind):
        """(path, container port, timeout in seconds) of startupProbe, livenessProbe or readinessProbe."""
        probe = self.container[kind]
        assert set(probe) & {"httpGet", "exec", "tcpSocket", "grpc"} == {"httpGet"}, f"{kind} is not httpGet"
        get = probe["httpGet"]
        assert get.get("scheme", "HTTP") == "HTTP", kind
        return get["path"], self.port(get["port"]), probe.get("timeoutSeconds", 1)

    def volume_mounts(self, volume_type, container=None):
        """[(volume, mount)] of the container's mounts whose volume is of volume_type (emptyDir, secret)."""
        volumes = {volume["name"]: volume for volume in self.pod.get("volumes", [])}
        return [
            (volumes[mount["name"]], mount)
            for mount in (container or self.container).get("volumeMounts", [])
            if volume_type in volumes[mount["name"]]
        ]

    def volume_mount(self, volume_type):
        """(volume, mount) of the container's one mount whose volume is of volume_type."""
        found = self.volume_mounts(volume_type)
        assert len(found) == 1, f"{self.overlay}: {len(found)} {volume_type} mounts"
        return found[0]

    def secret_files(self, container=None):
        """{path in the container: mode} of the files the secret volumes put there (none: {})."""
        files = {}
        for volume, mount in self.volume_mounts("secret", container):
            secret = volume["secret"]
            default_mode = secret.get("defaultMode", 0o644)
            for item in secret["items"]:
                files[str(Path(mount["mountPath"]) / item["path"])] = item.get("mode", default_mode)
        return files

    def mount_at(self, path, container=None):
        """(volume, mount) of the container's mount at path."""
        volumes = {volume["name"]: volume for volume in self.pod.get("volumes", [])}
        found = [m for m in (container or self.container).get("volumeMounts", []) if m["mountPath"] == path]
        assert len(found) == 1, f"{self.overlay}: {len(found)} mounts at {path}"
        return volumes[found[0]["name"]], found[0]
