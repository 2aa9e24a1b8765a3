#!/bin/sh
# Upstream's template step: each $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX
# becomes the same path under $NGINX_ENVSUBST_OUTPUT_DIR, with only the variables set in
# the environment substituted (so nginx's own $variables survive).
# Sourced by docker-entrypoint.sh: no `exit`, no `set -e` changes, local names prefixed.
_tpl_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
_tpl_suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
_tpl_out="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"

if [ -d "$_tpl_dir" ]; then
	if [ ! -w "$_tpl_out" ]; then
		echo "$0: ERROR: $_tpl_dir exists, but $_tpl_out is not writable" >&2
		return 0
	fi
	# Literal ${NAME} words for envsubst, one per variable name: the split is the point.
	# shellcheck disable=SC2016,SC2046
	_tpl_vars=$(printf '${%s} ' $(env | cut -d= -f1))
	find "$_tpl_dir" -follow -type f -name "*$_tpl_suffix" -print | while IFS= read -r _tpl; do
		_tpl_rel="${_tpl#"$_tpl_dir/"}"
		_tpl_dest="$_tpl_out/${_tpl_rel%"$_tpl_suffix"}"
		mkdir -p "$(dirname "$_tpl_dest")"
		echo "$0: Running envsubst on $_tpl to $_tpl_dest"
		envsubst "$_tpl_vars" <"$_tpl" >"$_tpl_dest"
	done
fi
