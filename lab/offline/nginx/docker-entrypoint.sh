#!/bin/sh
# A small stand-in for nginxinc/docker-nginx's entrypoint, with the same interface: for
# `nginx` and `nginx-debug`, run /docker-entrypoint.d/*.sh and source *.envsh (executable
# ones, in version order) first; NGINX_ENTRYPOINT_QUIET_LOGS silences it. Anything else
# runs untouched.
set -e

entrypoint_log() {
	if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
		echo "$@"
	fi
}

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
	if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
		entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
		# A file list, not a pipe into `while`: *.envsh must be sourced in this shell so its
		# exports reach nginx.
		# A for loop, not `find | while read`: a pipe would source the scripts in a subshell and
		# lose their exports. Upstream's scripts have no spaces in their names.
		# shellcheck disable=SC2044
		for f in $(find /docker-entrypoint.d/ -follow -type f -print | sort -V); do
			case "$f" in
			*.envsh | *.sh)
				if [ -x "$f" ]; then
					entrypoint_log "$0: Running $f"
					# shellcheck source=/dev/null
					. "$f"
				else
					entrypoint_log "$0: Ignoring $f, not executable"
				fi
				;;
			*) entrypoint_log "$0: Ignoring $f" ;;
			esac
		done
		entrypoint_log "$0: Configuration complete; ready for start up"
	else
		entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
	fi
fi

exec "$@"
