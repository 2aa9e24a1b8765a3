"""Helpers for the tests: the real docker CLI through subprocess, HTTP, layer scans."""

import contextlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import imagefiles

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_arg(name, dockerfile="Dockerfile"):
    """The default of `ARG name=...` in a Dockerfile, quotes removed (may be empty): base images and OS
    packages are named there and only there."""
    found = re.search(rf"^ARG {name}=(\"[^\"\n]*\"|\S*)$", (ROOT / dockerfile).read_text(), re.MULTILINE)
    assert found, f"{dockerfile} has no ARG {name}=..."
    return found.group(1).strip('"')


def compose_default(name):
    """The ${name:-default} that compose.yaml falls back to, or None where it names no such image (an
    app without Postgres has no POSTGRES_IMAGE)."""
    found = re.search(rf"\${{{name}:-([^}}]+)}}", (ROOT / "compose.yaml").read_text())
    return found.group(1) if found else None


IMAGE = os.environ.get("IMAGE", "pyslim")
# `make test` passes the resolved images (official, or offline stand-ins); pytest alone reads the defaults.
BASE_IMAGES = {
    "PYTHON_IMAGE": os.environ.get("PYTHON_IMAGE") or dockerfile_arg("PYTHON_IMAGE"),
    "DEBIAN_IMAGE": os.environ.get("DEBIAN_IMAGE") or dockerfile_arg("DEBIAN_IMAGE", "Dockerfile.distroless"),
    "DISTROLESS_IMAGE": os.environ.get("DISTROLESS_IMAGE")
    or dockerfile_arg("DISTROLESS_IMAGE", "Dockerfile.distroless"),
}
PYTHON_IMAGE = BASE_IMAGES["PYTHON_IMAGE"]
DISTROLESS_IMAGE = BASE_IMAGES["DISTROLESS_IMAGE"]
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE") or compose_default("POSTGRES_IMAGE")
NGINX_IMAGE = os.environ.get("NGINX_IMAGE") or compose_default("NGINX_IMAGE")
CA_BUNDLE = os.environ.get("CA_BUNDLE") or None
# `make test-arm64` (PLATFORM=linux/arm64) builds and runs the images for another platform than the engine's.
PLATFORM = os.environ.get("PLATFORM") or None
# Such images may run under QEMU, where builds and process starts are many times slower: every wait
# for them is this many times longer. (The timing tests are not run there: they would time QEMU.)
EMULATION_FACTOR = 6 if PLATFORM else 1
RUN_ID = uuid.uuid4().hex[:8]


def docker_or_fail(*args, check=True, timeout=600, **kwargs):
    """The completed `docker ...` process (text output captured); the test fails with docker's
    output when it exits non-zero, unless check=False."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def build(dockerfile, tag, *extra, context=ROOT, ca_bundle=CA_BUNDLE):
    """docker build with BuildKit, the chosen base image and the optional CA secret."""
    args = ["build", "--progress=plain", "--file", str(dockerfile), "--tag", tag]
    for arg, image in BASE_IMAGES.items():
        args += ["--build-arg", f"{arg}={image}"]
    # The labels `make build` sets, so both build the same image instead of retagging.
    for arg in ("REVISION", "CREATED", "SOURCE_URL", "SOURCE_DATE_EPOCH"):
        if os.environ.get(arg):
            args += ["--build-arg", f"{arg}={os.environ[arg]}"]
    if ca_bundle:
        args += ["--secret", f"id=ca,src={ca_bundle}"]
    if PLATFORM:
        args += ["--platform", PLATFORM]
    return docker_or_fail(*args, *extra, str(context), timeout=1200 * EMULATION_FACTOR)


def copy_tracked(dest):
    """Copy this repository's tracked files into dest, as a template user's fresh clone has them."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, names.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def context_files(root=ROOT):
    """The files `docker build` sends from root, .dockerignore applied by docker itself."""
    proc = subprocess.run(
        ["docker", "build", "--quiet", "--output", "type=tar,dest=-", "--file", "-", str(root)],
        input=b"FROM scratch\nCOPY . /\n",
        capture_output=True,
        check=True,
        timeout=120,
    )
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        return sorted(member.name for member in tar if member.isfile())


def inspect(image):
    """The image's `docker image inspect` document."""
    return json.loads(docker_or_fail("image", "inspect", image).stdout)[0]


def image_size(image):
    """The image's Size as `make compare` reports it: the bytes of file content in its layers, read from
    `docker save`, so the same on both image stores (inspect's Size is packed content on containerd's)."""
    return imagefiles.image_size(imagefiles.read_archive(image, compress=False))


def image_store():
    """The engine's image store: "containerd" or "classic"."""
    return imagefiles.image_store()


def scan_layers(image, keep):
    """Paths of the entries, in every layer of `docker save image`, for which keep(layer, entry) is true."""
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    found, layers = [], 0
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        for blob in filter(tarfile.TarInfo.isfile, archive):
            # Layers are tar files; the image config and manifests are JSON, which tarfile rejects.
            with contextlib.suppress(tarfile.ReadError):
                with tarfile.open(fileobj=archive.extractfile(blob), mode="r|*") as layer:
                    found += [entry.name for entry in layer if keep(layer, entry)]
                    layers += 1
    assert proc.wait() == 0, f"docker save {image} failed"
    # A layer that could not be read would make every "absent from all layers" check vacuous.
    assert layers == len(set(inspect(image)["RootFS"]["Layers"])), f"read {layers} layers of {image}"
    return found


def layer_paths(image):
    """Every path in every layer of the image, deletions (whiteouts) included."""
    return scan_layers(image, lambda layer, entry: True)


def layer_files_containing(image, needle: bytes):
    """Paths of regular files in any layer of the image whose content contains needle."""
    return scan_layers(image, lambda layer, entry: entry.isfile() and needle in layer.extractfile(entry).read())


@contextlib.contextmanager
def exported(image):
    """The image's merged filesystem (docker export) as a tar read as it streams, for images with no
    shell to ask: read each file's content while iterating."""
    name = docker_or_fail("create", image).stdout.strip()
    try:
        proc = subprocess.Popen(["docker", "export", name], stdout=subprocess.PIPE)
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            yield archive
        assert proc.wait() == 0, f"docker export of {image} failed"
    finally:
        docker_or_fail("rm", name, check=False)


def image_files(image):
    """{path: TarInfo} of the image's merged filesystem."""
    with exported(image) as archive:
        return {"/" + entry.name.removeprefix("./"): entry for entry in archive}


def image_texts(image, path):
    """{path: text} of the regular files at or under path in an image with no shell to `cat` them:
    one `docker cp` streams them all as a tar. Bytecode (__pycache__) is not text and is left out."""
    name = docker_or_fail("create", image).stdout.strip()
    try:
        proc = subprocess.run(["docker", "cp", f"{name}:{path}", "-"], capture_output=True, check=True, timeout=60)
    finally:
        docker_or_fail("rm", name, check=False)
    parent = os.path.dirname(path.rstrip("/"))
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as archive:
        return {
            os.path.join(parent, entry.name): archive.extractfile(entry).read().decode()
            for entry in archive
            if entry.isfile() and "__pycache__" not in entry.name.split("/")
        }


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, method="GET", data=None, timeout=5):
    """(status, headers, body) of one request; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode()


def wait_for_status(url, status=200, timeout=10.0):
    """Poll url until it answers with status; return seconds waited, fail after timeout."""
    start = time.monotonic()
    last = None
    while time.monotonic() - start < timeout * EMULATION_FACTOR:
        try:
            if http(url, timeout=1)[0] == status:
                return time.monotonic() - start
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise AssertionError(f"{url} did not answer {status} within {timeout * EMULATION_FACTOR}s (last error: {last})")


def stretched_health_timeout(image):
    """Under emulation, the image's HEALTHCHECK timeout times EMULATION_FACTOR (e.g. "18s"): the probe
    is a process start too. Only that field is overridden (docker run --health-timeout, or compose's
    healthcheck.timeout); None when not emulated or the image has no HEALTHCHECK."""
    health = inspect(image)["Config"].get("Healthcheck") if EMULATION_FACTOR > 1 else None
    return f"{health['Timeout'] * EMULATION_FACTOR // 10**9}s" if health else None


class Container:
    """A detached container with port 8000 published on a random loopback port."""

    def __init__(self, image, *run_args, command=()):
        self.name = f"pyslim-test-{RUN_ID}-{uuid.uuid4().hex[:6]}"
        self.started = time.monotonic()
        health_timeout = stretched_health_timeout(image)
        emulated = ["--health-timeout", health_timeout] if health_timeout else []
        docker_or_fail(
            "run",
            "--detach",
            "--name",
            self.name,
            "--publish",
            "127.0.0.1::8000",
            *emulated,
            *run_args,
            image,
            *command,
        )
        port = docker_or_fail("port", self.name, "8000/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        self.url = f"http://127.0.0.1:{port}"

    def exec(self, *cmd, check=True):
        """Run a command inside the container."""
        return docker_or_fail("exec", self.name, *cmd, check=check)

    def state(self):
        """The container's .State from docker inspect."""
        return json.loads(docker_or_fail("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self):
        """Everything the container wrote to stdout and stderr."""
        proc = docker_or_fail("logs", self.name, check=False)
        return proc.stdout + proc.stderr

    def remove(self):
        """Remove the container whatever state it is in."""
        docker_or_fail("rm", "--force", "--volumes", self.name, check=False)


def shell(image, script, user=None):
    """Run a sh script in a throwaway container of image and return its stdout."""
    args = ["run", "--rm", "--network", "none", "--entrypoint", "/bin/sh"]
    if user is not None:
        args += ["--user", user]
    return docker_or_fail(*args, image, "-c", script).stdout


def no_traceback(body):
    """True when a response body shows no Python traceback or exception dump."""
    return not re.search(r"Traceback|File \"/|psycopg2\.\w+Error", body)


def tool(name):
    """A command-line tool installed by tests/requirements.txt next to this interpreter, or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise AssertionError(f"{name} is not installed: `pip install -r tests/requirements.txt`")
    return found


def make_variable(name, cwd=ROOT, env=None, makefile="Makefile"):
    """The value the Makefile in cwd gives a variable, without running any of its targets.
    A second makefile holds the printing rule: evaluating it from the command line needs GNU make 3.82,
    and macOS has 3.81."""
    with tempfile.NamedTemporaryFile("w", suffix=".mk") as printer:
        printer.write(f"print-variable:\n\t@echo $({name})\n")
        printer.flush()
        proc = subprocess.run(
            ["make", "--no-print-directory", "-s", "-f", makefile, "-f", printer.name, "print-variable"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class Stack:
    """A compose project of its own, on a random loopback port, with a throwaway password."""

    def __init__(self, tmp_path, variant="multi-stage"):
        self.project = f"pyslim-test-{RUN_ID}-{variant}"
        self.port = free_port()
        password = tmp_path / "db_password"
        password.write_text(f"pw-{RUN_ID}")
        password.chmod(0o644)
        self.env = {**os.environ, "WEB_PORT": str(self.port), "DB_PASSWORD_FILE": str(password), "VARIANT": variant}
        if health_timeout := stretched_health_timeout(f"{IMAGE}:{variant}"):
            override = tmp_path / "emulation.yaml"
            override.write_text(f"services:\n  web:\n    healthcheck:\n      timeout: {health_timeout}\n")
            self.env["COMPOSE_FILE"] = os.pathsep.join([str(ROOT / "compose.yaml"), str(override)])
        self.url = f"http://127.0.0.1:{self.port}"

    def compose(self, *args, check=True, timeout=180):
        """docker compose for this project."""
        return docker_or_fail(
            "compose",
            "--project-directory",
            str(ROOT),
            "--project-name",
            self.project,
            *args,
            check=check,
            timeout=timeout,
            env=self.env,
        )

    def container(self, service):
        """The container id of a service."""
        return self.compose("ps", "--all", "--quiet", service).stdout.strip()

    def started_at(self, service):
        """When the service's container last started (changes on every restart)."""
        return docker_or_fail("inspect", "--format", "{{.State.StartedAt}}", self.container(service)).stdout.strip()


class LogWindow:
    """The log lines containers write from now on: `docker logs` now, diffed against later."""

    def __init__(self, *containers):
        self.containers = containers
        self.seen = {name: self._lines(name) for name in containers}

    @staticmethod
    def _lines(name):
        proc = docker_or_fail("logs", name, check=False)
        return proc.stdout.splitlines(), proc.stderr.splitlines()

    def new_lines(self):
        """Every line written since the window opened, stdout and stderr, all containers."""
        lines = []
        for name in self.containers:
            out, err = self._lines(name)
            old_out, old_err = self.seen[name]
            lines += out[len(old_out) :] + err[len(old_err) :]
        return lines

    def wait_for(self, needle, count=1, timeout=10.0):
        """New lines, once `count` of them contain needle (logs reach docker asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.new_lines()
            if sum(needle in line for line in lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


def venv_elf_machines(image):
    """{path: e_machine} of every ELF file in the image's venv (/opt/venv), read by the image's own Python,
    so it works without a shell."""
    code = (
        "import os\n"
        "for root, _, names in os.walk('/opt/venv'):\n"
        "    for path in (os.path.join(root, name) for name in names):\n"
        "        head = b'' if os.path.islink(path) else open(path, 'rb').read(20)\n"
        "        if head[:4] == b'\\x7fELF':\n"
        "            print(path, int.from_bytes(head[18:20], 'little'))\n"
    )
    out = docker_or_fail("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", code).stdout
    return {path: int(machine) for path, machine in (line.split() for line in out.splitlines())}


def platform_elf_machine():
    """(architecture, ELF e_machine) the images are for: PLATFORM's (`make test-arm64`), else the engine's.
    e_machine as elf.h numbers it (EM_X86_64, EM_AARCH64), for each architecture the images ship for."""
    engine = docker_or_fail("version", "--format", "{{.Server.Arch}}").stdout.strip()
    arch = PLATFORM.split("/")[1] if PLATFORM else engine
    return arch, {"amd64": 62, "arm64": 183}[arch]


@contextlib.contextmanager
def dev_tree(dest):
    """A copy of the tracked tree in dest to run `make dev` and `make up` in, as a user would, and the
    environment make runs in for it: an image, a compose project, a loopback port and a throwaway
    password of its own. Yields (copy, env, url); removes the stack, its volumes and its image after."""
    copy = copy_tracked(dest)
    copy.chmod(0o755)  # a checkout is; pytest's 0700 temp dir would hide the code from the app's user
    password = copy / "db_password"
    password.write_text(f"pw-{RUN_ID}")
    password.chmod(0o644)
    port = free_port()
    env = {
        **os.environ,
        "IMAGE": f"pyslim-test-dev-{RUN_ID}",
        "COMPOSE_PROJECT_NAME": f"pyslim-test-dev-{RUN_ID}",
        "WEB_PORT": str(port),
        "DB_PASSWORD_FILE": str(password),
    }
    try:
        yield copy, env, f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(
            ["docker", "compose", "down", "--volumes", "--remove-orphans"],
            cwd=copy,
            env=env,
            capture_output=True,
            timeout=120,
        )
        docker_or_fail("image", "rm", f"{env['IMAGE']}:multi-stage", check=False)


def make_in(copy, env, goal):
    """Run a make goal in a dev_tree copy, as a user would; fail with make's output if it fails."""
    proc = subprocess.run(["make", goal], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def save_as_editor(path, text):
    """Write text to path the way an editor saves: a new file renamed over the old (0644, readable by
    the image's user through a bind mount)."""
    new = path.with_name(path.name + ".new")
    new.write_text(text)
    new.chmod(0o644)
    os.replace(new, path)


def libraries_resolve(image, paths):
    """(every path resolves, the loader's report) for shared objects in image, each listed with the
    image's own dynamic loader (the ld-linux python3 itself was mapped with): no shell or ldd needed,
    any architecture, so the same check runs on slim and distroless images."""
    code = (
        "import subprocess, sys\n"
        "loader = next(l.split()[-1] for l in open('/proc/self/maps') if '/ld-linux' in l)\n"
        "bad = 0\n"
        "for path in sys.argv[1:]:\n"
        "    out = subprocess.run([loader, '--list', path], capture_output=True, text=True)\n"
        "    print(path, out.returncode, out.stdout, out.stderr)\n"
        "    bad += out.returncode != 0 or 'not found' in out.stdout\n"
        "sys.exit(bad)\n"
    )
    proc = docker_or_fail(
        "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", code, *paths, check=False
    )
    return proc.returncode == 0, proc.stdout + proc.stderr


def sbom(image):
    """syft's JSON SBOM of the image, read from the local engine as `make compare` reads it (either
    image store, no registry, no network)."""
    return imagefiles.sbom(image, tool("syft"))


# `docker run` as a hardened deployment runs the app: read-only root, no capabilities, no privilege
# gain, few processes, little memory.
HARDENED = (
    "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--pids-limit", "64", "--memory", "256m",
)  # fmt: skip
