"""Issue 21's proof: the template adapted to an app of another shape than the example, by README's "Adapt it to
your app" steps one for one, in a copy without lab/ as a user's clone has it; then that copy's own `make test`
and `make up`. The app (fixtures/second_app/) is a package with an app factory, Jinja templates, a static file,
SQLite in $DATA_DIR and no Postgres, so every place the template names the example app shows up."""

import os
import re
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
from dockertools import RUN_ID, copy_tracked, free_port, http, wait_for_status

pytestmark = [pytest.mark.docker, pytest.mark.compose, pytest.mark.adapt]
SECOND_APP = Path(__file__).parent / "fixtures" / "second_app"
CONTRACT = {
    "wsgi_app": '"notes:create_app()"',
    # Not the example's /healthz and /readyz: only paths read from the contract can answer.
    "health_path": '"/-/live"',
    "ready_path": '"/-/ready"',
    "warm_paths": '["/", "/new", "/-/ready"]',
    "setup_command": '["flask", "--app", "notes", "init-db"]',
}
# Skips that removing the example app explains, and the action pins' check against GitHub, which a machine
# without network can't reach (the example's run skips it too); any other skip hides an unchecked contract.
EXPECTED_SKIP = re.compile(r"example app|git ls-remote https://github\.com/\S+ failed \(offline\?\)", re.IGNORECASE)


def edit(path, old, new, count=1):
    """Replace old by new in the file, failing (as a user would be stuck) when the template no longer has old."""
    text = path.read_text()
    assert text.count(old) == count, (
        f"{path.name} no longer holds {old!r} {count} time(s): the template changed, update this step of the test"
    )
    path.write_text(text.replace(old, new))


def set_line(path, pattern, line):
    """Replace the one line matching pattern (a regex anchored at a line start) by line."""
    text, n = re.subn(rf"^{pattern}.*$", line.replace("\\", r"\\"), path.read_text(), flags=re.MULTILINE)
    assert n == 1, f"{path.name}: {n} lines match {pattern!r}, expected 1: the template changed, update this test"
    path.write_text(text)


def user_env(copy):
    """The environment a user's shell has: their registry's base images and CA bundle, nothing of this run's make
    (MAKEFLAGS would hand the outer command line's variables to the copy's make), and names of their own so
    nothing collides with other runs on this engine."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "COMPOSE_", "VIRTUAL_ENV"))}
    for name in ("REVISION", "CREATED", "SOURCE_URL", "DOCKERFILE", "VARIANT", "DB_PASSWORD_FILE", "CHECKOV"):
        env.pop(name, None)
    return {
        **env,
        "IMAGE": f"notes-{RUN_ID}",
        "COMPOSE_PROJECT_NAME": f"notes-{RUN_ID}",
        "WEB_PORT": str(free_port()),
    }


def make(copy, env, *targets, timeout):
    """`make targets` in the copy; a failure shows the end of make's output, where make and pytest say why."""
    start = time.monotonic()
    proc = subprocess.run(
        ["make", *targets], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    # pip's notes on index locations of the host's own config are noise here: the tail is for make's and pytest's words.
    output = [line for line in (proc.stdout + proc.stderr).splitlines() if not line.startswith("WARNING: Location ")]
    took = time.monotonic() - start
    assert proc.returncode == 0, (
        f"`make {' '.join(targets)}` in the adapted copy ({copy}) failed with {proc.returncode} after {took:.0f} s;"
        f" its last lines:\n" + "\n".join(output[-60:])
    )
    return proc.stdout


def git(copy, *args):
    subprocess.run(
        ["git", "-c", "user.name=adapt", "-c", "user.email=adapt@example.invalid", *args],
        cwd=copy,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A user's clone of the template (tracked files, lab/ left out), adapted to the notes app by the README's steps."""
    copy = copy_tracked(tmp_path_factory.mktemp("adapted"))
    shutil.rmtree(copy / "lab")
    git(copy, "init", "--quiet")
    git(copy, "add", "--all")
    git(copy, "commit", "--quiet", "--message", "the template")
    env = user_env(copy)

    # Step 1: "Replace `app.py` with your code and list each top-level file or folder in `.dockerignore`
    # (`!mypackage/`): nothing else names your files."
    (copy / "app.py").unlink()
    shutil.copytree(SECOND_APP / "notes", copy / "notes")
    edit(copy / ".dockerignore", "\n!app.py\n", "\n!notes/\n")

    # Step 2: "Set the contract in `gunicorn.conf.py`: `wsgi_app`, `health_path`, `ready_path`, `warm_paths`,
    # `setup_command`." (abridged: the README says what each is)
    for name, value in CONTRACT.items():
        set_line(copy / "gunicorn.conf.py", rf"{name} = ", f"{name} = {value}")

    # Step 3: "Keep the app's state in `$DATA_DIR` (`/data`)". Nothing to edit: notes/ opens
    # $DATA_DIR/notes.sqlite already.

    # Step 4: "Put your dependencies in `pyproject.toml` and run `make requirements`."
    pyproject = copy / "pyproject.toml"
    text, n = re.subn(
        r"^dependencies = \[\n.*?^\]\n",
        'dependencies = ["flask", "gunicorn"]\n',
        pyproject.read_text(),
        flags=re.S | re.M,
    )
    assert n == 1, "pyproject.toml has no multi-line `dependencies = [...]`: the template changed, update step 4"
    pyproject.write_text(text)
    make(copy, env, "requirements", timeout=900)
    assert "psycopg2" not in (copy / "requirements.txt").read_text(), "`make requirements` left psycopg2 pinned"

    # Step 5: "Name the Debian packages your wheels compile against and link in the `BUILD_PACKAGES` and
    # `RUNTIME_PACKAGES` lines atop the three Dockerfiles (both empty for pure Python)." flask and gunicorn are.
    for dockerfile in ("Dockerfile", "Dockerfile.distroless", "Dockerfile.single_stage"):
        set_line(copy / dockerfile, "ARG BUILD_PACKAGES=", 'ARG BUILD_PACKAGES=""')
    for dockerfile in ("Dockerfile", "Dockerfile.distroless"):
        set_line(copy / dockerfile, "ARG RUNTIME_PACKAGES=", 'ARG RUNTIME_PACKAGES=""')

    # Step 6: "Replace `tests/app/` with your tests (their own `conftest.py` too); what they import on the host
    # goes in `tests/requirements.in`, then `make requirements`." They import flask and pytest, both there
    # already: nothing to add, no second `make requirements`.
    shutil.rmtree(copy / "tests" / "app")
    shutil.copytree(SECOND_APP / "tests", copy / "tests" / "app")

    # Step 7: "In `compose.yaml`, give `x-app` your app's environment; no Postgres? delete the `db` service and
    # what names it (`depends_on`, the `PG*` variables, the `db_password` secret)." The app's environment is FORWARDED_ALLOW_IPS alone (the proxy's, kept); the db service,
    # libpq's variables, the password secret, the database volume and the depends_on entries go.
    compose = copy / "compose.yaml"
    text = compose.read_text()
    for pattern in (
        # libpq's variables and their comment, in x-app's environment
        r"    # libpq's own variables.*?PGPASSWORD_FILE: [^\n]*\n",
        # x-app's secrets: db_password
        r"  secrets:\n    - db_password\n",
        # the db service
        r"  db:\n    image: \$\{POSTGRES_IMAGE.*?\n\n",
        # setup's and web's waits for it
        r"    depends_on:\n      db:\n        condition: service_healthy\n(?!      )",
        r"      db:\n        condition: service_healthy\n",
        r"  db-data:\n",
        r"  db_password:\n    file: [^\n]*\n",
    ):
        text, n = re.subn(pattern, "", text, count=1, flags=re.S)
        assert n == 1, f"compose.yaml has no {pattern!r}: the template changed, update step 7 of this test"
    assert not re.search(r"\bdb\b|PG[A-Z]|POSTGRES", text), f"compose.yaml still names Postgres:\n{text}"
    compose.write_text(text)

    # Step 8: "In `deploy/kubernetes/base/`, the probes' paths are `health_path` and `ready_path`, the
    # ConfigMap your app's environment; no Postgres? delete its `PG*` entries, `PGPASSWORD_FILE` and the
    # `db-password` volume with its mounts." The app reads no variable of its own: libpq's literals go.
    deployment = copy / "deploy" / "kubernetes" / "base" / "deployment.yaml"
    edit(deployment, "path: /healthz\n", "path: /-/live\n", count=2)
    edit(deployment, "path: /readyz\n", "path: /-/ready\n")
    text = deployment.read_text()
    for pattern, count in (
        # PGPASSWORD_FILE, in the setup initContainer and the app container (the env list it was alone in)
        (
            r"          env:\n(?:            #[^\n]*\n)*            - name: PGPASSWORD_FILE\n              value: [^\n]*\n",
            2,
        ),
        # the password's mounts, and its volume with the comment above it
        (r"            - name: db-password\n              mountPath: [^\n]*\n              readOnly: true\n", 2),
        (
            r"        # Created outside git[^\n]*\n        #[^\n]*\n        - name: db-password\n(?:          [^\n]*\n)+",
            1,
        ),
    ):
        text, n = re.subn(pattern, "", text)
        assert n == count, f"deployment.yaml: {n} of {pattern!r}, expected {count}: the template changed, update step 8"
    assert not re.search(r"PG[A-Z]|db-password", text), f"deployment.yaml still names Postgres:\n{text}"
    deployment.write_text(text)
    edit(
        copy / "deploy" / "kubernetes" / "base" / "kustomization.yaml",
        "    literals:\n      - PGHOST=postgres\n      - PGUSER=app\n      - PGDATABASE=app\n",
        "",
    )

    git(copy, "add", "--all")
    git(copy, "commit", "--quiet", "--message", "adapted to notes")
    yield copy, env
    subprocess.run(["docker", "compose", "down", "--volumes"], cwd=copy, env=env, capture_output=True, timeout=180)
    for variant in ("single-stage", "multi-stage", "distroless"):
        subprocess.run(["docker", "image", "rm", f"{env['IMAGE']}:{variant}"], capture_output=True, timeout=60)


def test_make_test_passes_in_the_adapted_copy(adapted):
    """Step 9, "`make test`: the tests name what disagrees": the contract tests on both shipped images and the app's own tests, all of them
    run. A skip for any reason but the example app's absence is a contract left unchecked for this app."""
    copy, env = adapted
    # -rA: pytest names every test that passed, so the app's own tests are seen to have run, each of them.
    out = make(copy, env, "test", "PYTEST_ARGS=-rA", timeout=1500)
    assert re.search(r"^=+ .*\bpassed\b.* in [\d.]+s", out, re.MULTILINE), (
        f"pytest's summary is missing:\n{out[-3000:]}"
    )
    own = re.findall(r"^def (test_\w+)", (SECOND_APP / "tests" / "test_notes.py").read_text(), re.MULTILINE)
    missing = [name for name in own if f"PASSED tests/app/test_notes.py::{name}" not in out]
    assert own and not missing, f"the app's own tests did not all pass in `make test`: {missing}"
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    unexpected = [line for line in skipped if not EXPECTED_SKIP.search(line)]
    assert not unexpected, "tests skipped for another reason than the missing example app:\n" + "\n".join(unexpected)


def test_a_note_outlives_down_and_up(adapted):
    """Step 9, "`make up` to run it": a note posted through the proxy is still listed after `docker compose down`
    (volumes kept) and `make up` again: the app's state lives in the app-data volume."""
    copy, env = adapted
    url = f"http://127.0.0.1:{env['WEB_PORT']}"
    note = f"adapted-{RUN_ID}"
    make(copy, env, "up", timeout=900)
    # urllib follows the app's 303 to the list, as a browser does.
    status, _, page = http(url + "/new", "POST", urllib.parse.urlencode({"body": note}).encode())
    assert status == 200 and f"<li>{note}</li>" in page, f"POST /new through the proxy answered {status}:\n{page}"
    subprocess.run(["docker", "compose", "down"], cwd=copy, env=env, check=True, capture_output=True, timeout=180)
    make(copy, env, "up", timeout=600)
    wait_for_status(url + "/-/ready", timeout=30)
    assert f"<li>{note}</li>" in http(url + "/")[2], "the note is gone after `docker compose down` and `make up`"
    down = subprocess.run(["docker", "compose", "down", "--volumes"], cwd=copy, env=env, capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
