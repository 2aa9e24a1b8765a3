"""The offline postgres stand-in honours the official postgres image's interface.

Each test starts its own containers from POSTGRES_IMAGE through the docker CLI; the
`tracked_docker` fixture (conftest.py) removes every container, volume and network it made.
"""

import os
import time

import pytest

IMAGE = os.environ.get("POSTGRES_IMAGE", "offline/postgres:17-trixie")
USER, DB = "app", "appdb"
# Quotes, a space and a dollar: proves the entrypoint passes the password through untouched.
PASSWORD = "s3cret 'pa$$ word\""
CREDENTIALS = {"POSTGRES_USER": USER, "POSTGRES_PASSWORD": PASSWORD, "POSTGRES_DB": DB}
PGDATA = "/var/lib/postgresql/data"

pytestmark = pytest.mark.docker


def server_args(name, env, network=None, volume=None):
    """Arguments for `docker run/create` of a server named `name`, reachable as host "db"."""
    args = ["--name", name]
    if network:
        args += ["--network", network, "--network-alias", "db"]
    if volume:
        args += ["-v", f"{volume}:{PGDATA}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    return [*args, IMAGE]


def start_server(tracked_docker, env=CREDENTIALS, network=None, volume=None):
    name = tracked_docker.container("db")
    tracked_docker("run", "-d", *server_args(name, env, network, volume))
    return name


def logs(tracked_docker, name):
    result = tracked_docker("logs", name, check=False)
    return result.stdout + result.stderr


def wait_ready(tracked_docker, name, user=USER, timeout=60):
    """Poll pg_isready over TCP: the init-time server listens on the unix socket only, so
    an answer on 127.0.0.1 means the real server is up and setup has finished."""
    deadline = time.monotonic() + timeout
    while True:
        probe = tracked_docker("exec", name, "pg_isready", "-q", "-h", "127.0.0.1", "-U", user, check=False)
        if probe.returncode == 0:
            return
        if tracked_docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != "true":
            pytest.fail(f"{name} exited before it was ready:\n{logs(tracked_docker, name)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{name} not ready after {timeout}s:\n{logs(tracked_docker, name)}")
        time.sleep(0.25)


def psql_from_client(tracked_docker, network, password, sql):
    """Run psql in a separate container on `network`, so the login goes over TCP to "db"."""
    # The tmpfs covers the image's VOLUME, so a throwaway client makes no anonymous volume.
    return tracked_docker(
        "run",
        "--rm",
        "--name",
        tracked_docker.container("client"),
        "--network",
        network,
        "--tmpfs",
        PGDATA,
        "-e",
        f"PGPASSWORD={password}",
        IMAGE,
        "psql",
        f"host=db port=5432 user={USER} dbname={DB} connect_timeout=10",
        "--no-psqlrc",
        "-v",
        "ON_ERROR_STOP=1",
        "-tA",
        "-c",
        sql,
        check=False,
    )


def psql_local(tracked_docker, name, sql):
    """psql inside the server container, over the unix socket (trusted, like upstream)."""
    return tracked_docker("exec", name, "psql", "-U", USER, "-d", DB, "-v", "ON_ERROR_STOP=1", "-tA", "-c", sql)


def test_accepts_password_login_over_tcp_from_another_container(tracked_docker):
    """A client container on the same docker network logs in over TCP with the password."""
    network = tracked_docker.network()
    db = start_server(tracked_docker, network=network)
    wait_ready(tracked_docker, db)
    result = psql_from_client(
        tracked_docker,
        network,
        PASSWORD,
        "select current_user, current_database(), inet_server_addr() is not null",
    )
    assert result.returncode == 0, result.stderr
    # inet_server_addr() is null on a unix socket, so "t" proves this was TCP.
    assert result.stdout.strip() == f"{USER}|{DB}|t"


def test_rejects_a_wrong_password(tracked_docker):
    """A TCP login with the wrong password is refused."""
    network = tracked_docker.network()
    db = start_server(tracked_docker, network=network)
    wait_ready(tracked_docker, db)
    result = psql_from_client(tracked_docker, network, "not-the-password", "select 1")
    assert result.returncode != 0, "a wrong password was accepted"
    assert f'password authentication failed for user "{USER}"' in result.stderr


def test_refuses_to_start_without_a_password(tracked_docker):
    """Without POSTGRES_PASSWORD the container exits non-zero and says why."""
    db = start_server(tracked_docker, env={"POSTGRES_USER": USER})
    exit_code = tracked_docker("wait", db, timeout=60).stdout.strip()
    assert exit_code != "0"
    output = logs(tracked_docker, db)
    assert "superuser password is not specified" in output
    assert "POSTGRES_PASSWORD" in output


def test_keeps_data_across_a_new_container_on_the_same_volume(tracked_docker):
    """A new container on the same named volume sees old rows and does not initdb again."""
    volume = tracked_docker.volume()
    first = start_server(tracked_docker, volume=volume)
    wait_ready(tracked_docker, first)
    psql_local(tracked_docker, first, "create table notes (body text); insert into notes values ('kept')")
    tracked_docker("stop", first)
    tracked_docker("rm", first)

    second = start_server(tracked_docker, volume=volume)
    wait_ready(tracked_docker, second)
    assert psql_local(tracked_docker, second, "select body from notes").stdout.strip() == "kept"
    output = logs(tracked_docker, second)
    assert "Skipping initialization" in output
    assert "init process complete" not in output


def test_password_file_sets_the_password(tracked_docker, tmp_path):
    """POSTGRES_PASSWORD_FILE (a docker secret) supplies the password instead of the variable."""
    network = tracked_docker.network()
    db = tracked_docker.container("db")
    env = {"POSTGRES_USER": USER, "POSTGRES_DB": DB, "POSTGRES_PASSWORD_FILE": "/run/secrets/pg_password"}
    tracked_docker("create", *server_args(db, env, network))
    # docker cp rather than a bind mount, so this also works against a remote engine.
    # The trailing newline is what `echo pw > file` leaves; it must not become part of it.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pg_password").write_text("from-the-file\n")
    tracked_docker("cp", str(secrets), f"{db}:/run/secrets")
    tracked_docker("start", db)
    wait_ready(tracked_docker, db)
    result = psql_from_client(tracked_docker, network, "from-the-file", "select 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_stops_cleanly_on_docker_stop(tracked_docker):
    """docker stop ends the server quickly with exit code 0, even with a session still open."""
    db = start_server(tracked_docker)
    wait_ready(tracked_docker, db)
    # An open session is what SIGTERM ("smart" shutdown) would wait for until docker's
    # timeout SIGKILLs the server; STOPSIGNAL SIGINT ("fast") aborts it and exits cleanly.
    tracked_docker("exec", "-d", db, "psql", "-U", USER, "-d", DB, "-c", "select pg_sleep(120)")
    deadline = time.monotonic() + 20
    while (
        psql_local(
            tracked_docker, db, "select count(*) from pg_stat_activity where wait_event = 'PgSleep'"
        ).stdout.strip()
        != "1"
    ):
        assert time.monotonic() < deadline, "the pg_sleep session never started"
        time.sleep(0.2)

    started = time.monotonic()
    tracked_docker("stop", "-t", "15", db, timeout=60)
    elapsed = time.monotonic() - started

    assert tracked_docker("inspect", "-f", "{{.State.ExitCode}}", db).stdout.strip() == "0"
    assert elapsed < 10, f"docker stop took {elapsed:.1f}s"
    output = logs(tracked_docker, db)
    assert "received fast shutdown request" in output
    assert output.rstrip().endswith("database system is shut down")


def test_runs_the_server_as_the_postgres_user(tracked_docker):
    """PID 1 is postgres, and every server process runs as the postgres user, not root."""
    db = start_server(tracked_docker)
    wait_ready(tracked_docker, db)
    postgres_uid = tracked_docker("exec", db, "id", "-u", "postgres").stdout.strip()
    rows = [line.split() for line in tracked_docker("exec", db, "ps", "-eo", "uid=,pid=,comm=").stdout.splitlines()]
    # Our own `ps` (started by docker exec, as root) is the one process that is not the server.
    server = [(uid, pid, comm) for uid, pid, comm in rows if comm != "ps"]
    assert ("1", "postgres") in [(pid, comm) for _, pid, comm in server]
    assert postgres_uid != "0"
    assert {uid for uid, _, _ in server} == {postgres_uid}, server
