#!/usr/bin/env bash
# A small stand-in for docker-library/postgres's entrypoint, with the same interface:
# POSTGRES_PASSWORD[_FILE], POSTGRES_USER, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, PGDATA,
# /docker-entrypoint-initdb.d/*.sql. Not copied: *.sh init scripts, POSTGRES_INITDB_ARGS.
set -Eeuo pipefail

# usage: file_env VAR [DEFAULT]. VAR_FILE lets docker/compose secrets supply the value;
# setting both is ambiguous, so refuse, as upstream does.
file_env() {
	local var=$1 file_var=${1}_FILE val=${2:-}
	if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
		printf >&2 'error: both %s and %s are set (but are exclusive)\n' "$var" "$file_var"
		exit 1
	fi
	if [[ -n ${!var:-} ]]; then
		val=${!var}
	elif [[ -n ${!file_var:-} ]]; then
		val=$(<"${!file_var}")
	fi
	export "$var=$val"
	unset "$file_var"
}

# Options that make postgres print and exit need no database (and work as root).
wants_help() {
	local arg
	for arg; do
		case $arg in -'?' | --help | --describe-config | -V | --version) return 0 ;; esac
	done
	return 1
}

# `docker run IMAGE -c shared_buffers=256MB` means "postgres with these flags".
if [[ ${1:-} == -* ]]; then
	set -- postgres "$@"
fi
# Anything else (psql, pg_isready, bash, postgres --version) runs untouched.
if [[ ${1:-} != postgres ]] || wants_help "$@"; then
	exec "$@"
fi

# Read secrets while still root: a bind-mounted secret file may be unreadable by postgres.
# The values are exported, so the re-executed script below sees them without the files.
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
: "${POSTGRES_HOST_AUTH_METHOD:=}"

if [[ $(id -u) == 0 ]]; then
	# A new volume or bind mount can be root-owned; postgres refuses a data directory it
	# does not own or that others can read. Then drop to postgres (it refuses to run as
	# root) and re-run this script; `exec` all the way so postgres ends up as PID 1.
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

# An existing cluster is reused as is (one from the real image too): the POSTGRES_* variables
# only matter the first time, like upstream.
if [[ -s $PGDATA/PG_VERSION ]]; then
	printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
	exec "$@"
fi

if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
	cat >&2 <<-'EOE'
		Error: Database is uninitialized and superuser password is not specified.
		       You must specify POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty
		       value for the superuser. For example, "-e POSTGRES_PASSWORD=password" on
		       "docker run".

		       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all connections
		       without a password. This is *not* recommended.
	EOE
	exit 1
fi

# --pwfile keeps the password off the command line (and out of `ps`); initdb rejects an
# empty file, hence the newline (docker-library/postgres#1025).
initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")

# initdb's pg_hba.conf trusts only the local socket and loopback; let every other host in
# with a password (scram-sha-256 unless told otherwise), on all interfaces.
printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

# Create the database and run init SQL on a socket-only temporary server, so nothing can
# connect over TCP (and `pg_isready -h 127.0.0.1` stays false) until setup is complete.
pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username="$POSTGRES_USER")
if [[ $POSTGRES_DB != postgres ]]; then
	"${psql[@]}" --dbname=postgres --set=db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
fi
for f in /docker-entrypoint-initdb.d/*.sql; do
	[[ -e $f ]] || continue
	printf '%s: running %s\n' "$0" "$f"
	"${psql[@]}" --dbname="$POSTGRES_DB" -f "$f"
done
pg_ctl -D "$PGDATA" -m fast -w stop

printf '\nPostgreSQL init process complete; ready for start up.\n\n'
exec "$@"
