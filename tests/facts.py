"""Facts the product files state, each read from the file that states it: the drift tests compare them,
and the other tests use them instead of copying a number.

Each reader parses its file the way its own tool would (runpy for gunicorn.conf.py, an import for
app.py, yaml for compose and the manifests); nginx.conf and the Dockerfiles by their line syntax."""

import re
import runpy

import yaml
from dockertools import ROOT, dockerfile_arg

UNITS_S = {"ms": 0.001, "": 1, "s": 1, "m": 60, "h": 3600}
UNITS_BYTES = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def app_module():
    """The example app (app.py), imported as gunicorn imports it: for the example's own tests (tests/app/)."""
    import app

    return app


def app_fact(name):
    """A module constant of app.py, or one of its Flask settings (MAX_CONTENT_LENGTH)."""
    module = app_module()
    return getattr(module, name) if hasattr(module, name) else module.app.config[name]


def gunicorn_settings():
    """gunicorn.conf.py's settings as gunicorn reads them: the file run as Python, no PORT set."""
    import os

    saved = {name: os.environ.pop(name) for name in ("PORT", "WEB_CONCURRENCY") if name in os.environ}
    try:
        return {k: v for k, v in runpy.run_path(str(ROOT / "gunicorn.conf.py")).items() if not k.startswith("_")}
    finally:
        os.environ.update(saved)


CONTRACT = ("wsgi_app", "health_path", "ready_path", "warm_paths", "setup_command")


def contract():
    """The app contract gunicorn.conf.py declares: what the tests may know of the app, and no more."""
    settings = gunicorn_settings()
    missing = [name for name in CONTRACT if name not in settings]
    assert not missing, f"gunicorn.conf.py lost part of the app contract: {missing} (README: Adapt it to your app)"
    return {name: settings[name] for name in CONTRACT}


def gunicorn_port():
    """The port gunicorn binds by default."""
    host, _, port = gunicorn_settings()["bind"].rpartition(":")
    return int(port)


def nginx(directive):
    """Every value of an nginx.conf directive, in file order (comments ignored)."""
    text = re.sub(r"#.*", "", (ROOT / "deploy" / "proxy" / "nginx.conf").read_text())
    return [value.strip() for value in re.findall(rf"(?:^|[{{;\s]){directive}\s+([^;]+);", text)]


def nginx_one(directive):
    """The one value of an nginx.conf directive."""
    values = nginx(directive)
    assert len(values) == 1, f"deploy/proxy/nginx.conf sets {directive} {len(values)} times: {values}"
    return values[0]


def nginx_seconds(directive):
    """An nginx time (35s, 1m, 500ms) in seconds."""
    found = re.fullmatch(r"(\d+)(ms|s|m|h|)", nginx_one(directive))
    assert found, nginx_one(directive)
    return int(found.group(1)) * UNITS_S[found.group(2)]


def nginx_bytes(directive):
    """An nginx size (64k, 1m) in bytes."""
    found = re.fullmatch(r"(\d+)([kKmMgG]?)", nginx_one(directive))
    assert found, nginx_one(directive)
    return int(found.group(1)) * UNITS_BYTES[found.group(2).lower()]


def dockerfile_lines(dockerfile, instruction):
    """The arguments of every `INSTRUCTION ...` line of a Dockerfile."""
    return re.findall(rf"^{instruction} (.+)$", (ROOT / dockerfile).read_text(), re.MULTILINE)


def dockerfile_user(dockerfile):
    """The final stage's numeric USER of a Dockerfile, as (uid, gid)."""
    uid, gid = dockerfile_lines(dockerfile, "USER")[-1].split(":")
    return int(uid), int(gid)


def compose():
    """compose.yaml as YAML (defaults of ${VAR:-default} are left as written)."""
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def compose_seconds(duration):
    """A compose duration (15s, 1m30s) in seconds."""
    parts = re.findall(r"(\d+)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * UNITS_S[u] for n, u in parts)


def wsgi_module_file():
    """The file, relative to the repository root, of the module the contract's wsgi_app names
    (app:app → app.py; mypackage:create_app() → mypackage/__init__.py)."""
    module = ROOT / contract()["wsgi_app"].split(":")[0].replace(".", "/")
    return (module / "__init__.py" if module.is_dir() else module.with_suffix(".py")).relative_to(ROOT)


def dockerfile_packages(name, dockerfile):
    """The Debian packages a Dockerfile's `ARG name="pkg ..."` names by default: [] when it is empty
    (a pure-Python app)."""
    return dockerfile_arg(name, dockerfile).split()
