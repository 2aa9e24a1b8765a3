"""Compare two builds of one image: identical, or the first layer that differs and the files in it.

    python tests/reproduce.py IMAGE_A IMAGE_B [IMAGE_A2 IMAGE_B2 ...]

`make reproduce` builds each shipped image twice, from two clean clones with no cache, and runs this on
each pair. Ours, not diffoscope or diffoci: those need tools the host doesn't have (libarchive, a Go
binary); this reads `docker save` with the standard library, on either image store.
"""

import datetime
import hashlib
import io
import json
import sys
import tarfile

from imagefiles import docker_stdout, read_saved, uncompressed

SHOWN = 20  # files listed for the first differing layer; the rest are counted


def image_id(image):
    """The image's ID: its config's digest (classic store) or its index's (containerd store)."""
    return docker_stdout("image", "inspect", "--format", "{{.Id}}", image).strip()


def entry(member, data):
    """What a tar entry puts on disk, the content as its digest: equal entries, equal files."""
    fields = {
        "type": member.type.decode(),
        "mode": oct(member.mode),
        "owner": f"{member.uid}:{member.gid}",
        "mtime": datetime.datetime.fromtimestamp(member.mtime, datetime.UTC).isoformat(),
        "size": member.size,
        "link": member.linkname,
        "xattrs": sorted(member.pax_headers.items()),
    }
    if data is not None:
        fields["sha256"] = hashlib.sha256(data.read()).hexdigest()
    return fields


def saved(image):
    """The image's config digest, its config and, in order, each layer's {path: entry}, streamed from
    `docker save`. The config digest names the image on either store: it covers every layer's digest."""
    return read_saved(image, read_blobs)


def read_blobs(stream):
    """saved()'s reading of a `docker save` archive."""
    blobs, manifest = {}, None
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not member.isfile():
                continue
            raw = archive.extractfile(member).read()
            if member.name == "manifest.json":
                manifest = json.loads(raw)
                continue
            try:
                blobs[member.name] = json.loads(raw)
            except ValueError:
                blobs[member.name] = layer_entries(raw)
    config = manifest[0]["Config"]  # blobs/sha256/<hex> (Docker 25+) or <hex>.json
    digest = "sha256:" + config.rsplit("/", 1)[-1].removesuffix(".json")
    return digest, blobs[config], [blobs[name] for name in manifest[0]["Layers"]]


def layer_entries(raw):
    """{path: entry} of one layer blob, plain or gzip."""
    entries = {}
    with tarfile.open(fileobj=uncompressed(io.BytesIO(raw)), mode="r|") as tar:
        for member in tar:
            entries["/" + member.name.strip("/")] = entry(member, tar.extractfile(member) if member.isfile() else None)
    return entries


def layer_steps(config):
    """The Dockerfile step that made each layer, from the config's history (empty layers skipped)."""
    return [h.get("created_by", "?") for h in config.get("history", []) if not h.get("empty_layer")]


def differences(a, b):
    """Lines naming each path whose entry differs between two layers, and the fields that differ."""
    lines = []
    for path in sorted(a.keys() | b.keys()):
        if path not in b:
            lines.append(f"  {path}: only in the first")
        elif path not in a:
            lines.append(f"  {path}: only in the second")
        elif a[path] != b[path]:
            fields = [f"{k} {a[path].get(k)} vs {b[path].get(k)}" for k in a[path] if a[path][k] != b[path].get(k)]
            lines.append(f"  {path}: " + "; ".join(f if len(f) < 150 else f.split(" ")[0] for f in fields))
    return lines


def report(image_a, image_b):
    """(True, the image's digest) if the two images are the same image; else (False, what a human reads
    to find why not)."""
    id_a = image_id(image_a)
    if id_a == image_id(image_b):
        return True, id_a
    # The containerd store's ID names an index that may hold a build's attestation, dated by the clock.
    (id_a, config_a, layers_a), (id_b, config_b, layers_b) = saved(image_a), saved(image_b)
    if id_a == id_b:
        return True, id_a
    lines = [f"{image_a} {id_a}", f"{image_b} {id_b}"]
    steps = layer_steps(config_a)
    differing = [i for i in range(max(len(layers_a), len(layers_b))) if layers_a[i : i + 1] != layers_b[i : i + 1]]
    if not differing:
        keys = sorted(k for k in config_a.keys() | config_b.keys() if config_a.get(k) != config_b.get(k))
        return False, "\n".join([*lines, f"every layer is the same; the config differs in: {', '.join(keys)}"])
    first = differing[0]
    step = steps[first] if first < len(steps) else "?"
    found = differences(
        layers_a[first] if first < len(layers_a) else {}, layers_b[first] if first < len(layers_b) else {}
    )
    lines += [f"layers that differ: {', '.join(str(i + 1) for i in differing)} of {len(layers_a)}"]
    lines += [f"first, layer {first + 1}, made by: {step[:200]}", f"{len(found)} files differ:", *found[:SHOWN]]
    if len(found) > SHOWN:
        lines.append(f"  ... and {len(found) - SHOWN} more")
    return False, "\n".join(lines)


def main(images):
    """Print identical/different for each pair; exit 1 if any pair differs."""
    if not images or len(images) % 2:
        sys.exit(__doc__)
    failed = False
    for image_a, image_b in zip(images[::2], images[1::2], strict=True):
        same, found = report(image_a, image_b)
        if same:
            print(f"identical: {image_a} and {image_b} are {found}")
        else:
            failed = True
            print(f"different: {image_a} and {image_b}\n{found}")
    sys.exit(failed)


if __name__ == "__main__":
    main(sys.argv[1:])
