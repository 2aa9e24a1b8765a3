"""Bytecode for exactly what runs: every module that starting, serving and the HEALTHCHECK import
is loaded from a .pyc the image ships, and no .pyc is shipped for a module nothing imports.

The app runs as the image runs it, next to the compose stack's Postgres (so /readyz and /visits take
their successful paths), with PYTHONVERBOSE=1: the interpreter then logs, for every import, whether
it loaded the module's .pyc ("# <pyc> matches <py>") or compiled its source ("# code object from <py>").
"""

import re

import pytest
from dockertools import BASE_IMAGES, Container, docker_or_fail, http, image_files, inspect, wait_for_status

pytestmark = [pytest.mark.docker, pytest.mark.compose]
PYC = re.compile(r"^(?P<dir>/.*)/__pycache__/(?P<stem>[^/]+)\.cpython-\d+\.pyc$")
FROM_BYTECODE = re.compile(r"# (/\S+\.pyc) matches (/\S+\.py)$", re.MULTILINE)
FROM_SOURCE = re.compile(r"# code object from (/\S+\.py)$", re.MULTILINE)
# Modules these images carry and the app never imports: pip's and the test tooling's helpers,
# optional workers, debuggers, the standard library's test and async machinery.
NEVER_IMPORTED = [
    r"/site-packages/flask/testing\.py$",
    r"/site-packages/werkzeug/debug/__init__\.py$",
    r"/site-packages/jinja2/sandbox\.py$",
    r"/site-packages/psycopg2/pool\.py$",
    r"/site-packages/click/_termui_impl\.py$",
    r"/site-packages/gunicorn/workers/gthread\.py$",
    r"/python3\.\d+/unittest/__init__\.py$",
    r"/python3\.\d+/asyncio/__init__\.py$",
    r"/python3\.\d+/pydoc\.py$",
]
SHIPPED = {"multi-stage": ("multi_image", "PYTHON_IMAGE"), "distroless": ("distroless_image", "DISTROLESS_IMAGE")}


def shipped_bytecode(files, base):
    """{source path: pyc path} for every .pyc in files (an image's) that its base lacks."""
    in_base = {path for path in image_files(base) if PYC.match(path)}
    found = {}
    for path in files:
        match = PYC.match(path)
        if match and path not in in_base:
            found[f"{match['dir']}/{match['stem']}.py"] = path
    return found


@pytest.fixture(scope="module", params=list(SHIPPED))
def variant(request):
    """Each shipped image, its base, its compose stack and what a verbose run of it imported."""
    fixture, base_arg = SHIPPED[request.param]
    image = request.getfixturevalue(fixture)
    stack = request.getfixturevalue("multi_stack" if request.param == "multi-stage" else "distroless_stack")
    files = image_files(image)
    return {
        "image": image,
        "files": files,
        "bytecode": shipped_bytecode(files, BASE_IMAGES[base_arg]),
        "imports": verbose_run(image, stack),
    }


def verbose_run(image, stack):
    """Run the image next to the stack's database with PYTHONVERBOSE=1, serve every route (and an
    error of each kind), run the HEALTHCHECK, stop it; return {"bytecode": {py: pyc}, "source": [py]}."""
    app = Container(
        image,
        "--network",
        f"{stack.project}_default",
        "--env",
        "PYTHONVERBOSE=1",
        # One worker: two would write their import lines to the same pipe at once.
        "--env",
        "WEB_CONCURRENCY=1",
        "--env",
        "PGHOST=db",
        "--env",
        "PGUSER=app",
        "--env",
        "PGDATABASE=app",
        "--env",
        "PGPASSWORD_FILE=/run/secrets/db_password",
        "--volume",
        f"{stack.env['DB_PASSWORD_FILE']}:/run/secrets/db_password:ro",
    )
    try:
        wait_for_status(app.url + "/readyz", timeout=20)
        answers = [
            http(app.url + "/")[0],
            http(app.url + "/readyz")[0],
            http(app.url + "/visits")[0],
            http(app.url + "/visits", method="POST", data=b"")[0],
            http(app.url + "/no-such-page")[0],
            http(app.url + "/", method="DELETE")[0],
            http(app.url + "/visits", method="POST", data=b"x" * 100_000)[0],
        ]
        assert answers == [200, 200, 200, 200, 404, 405, 413], answers
        healthcheck = inspect(image)["Config"]["Healthcheck"]["Test"]
        assert healthcheck[0] == "CMD", healthcheck
        verbose = docker_or_fail("exec", "--env", "PYTHONVERBOSE=1", app.name, *healthcheck[1:]).stderr
        docker_or_fail("stop", app.name)
        logs = app.logs() + verbose
    finally:
        app.remove()
    return {
        "bytecode": {py: pyc for pyc, py in FROM_BYTECODE.findall(logs)},
        "source": sorted(set(FROM_SOURCE.findall(logs))),
    }


def test_every_module_that_runs_is_loaded_from_bytecode(variant):
    """Starting gunicorn, serving /, /readyz, /visits and errors, the HEALTHCHECK and stopping
    compile nothing: each module they import comes from a .pyc in the image."""
    imports = variant["imports"]
    print(f"{variant['image']}: {len(imports['bytecode'])} modules loaded from bytecode")
    assert imports["source"] == [], "compiled from source at run time"
    assert len(imports["bytecode"]) > 200, "the verbose run logged too few imports to mean anything"


def test_no_bytecode_for_modules_never_imported(variant):
    """Every .pyc the image adds belongs to a module that run imported; pip's usual compile-all
    would also have covered the rest, such as these never-imported modules."""
    shipped, imported = variant["bytecode"], variant["imports"]["bytecode"]
    print(f"{variant['image']}: {len(shipped)} .pyc added to the base, for these modules:")
    print("\n".join(sorted(shipped)))
    assert sorted(set(shipped) - set(imported)) == []
    files = variant["files"]
    for pattern in NEVER_IMPORTED:
        sources = [path for path in files if re.search(pattern, path)]
        assert sources, f"no module matches {pattern}: pick another never-imported example"
        assert [path for path in sources if path in shipped] == [], pattern
