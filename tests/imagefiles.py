"""What `docker save` holds, read the same way on Docker's classic and containerd image stores: each
layer's file tree, its diff_id and sizes, the image's Size (bytes of file content in its layers, as
dive counts them), an OCI layout for SBOM tools, and which store the engine uses. Standard library only:
the tests and lab/scripts/compare.py share this one definition."""

import gzip
import hashlib
import json
import os
import pathlib
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import zlib

WHITEOUT = ".wh."


def docker_stdout(*args):
    """Run a docker CLI command and return its stdout; raise RuntimeError on failure."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"`docker {args[0]}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


class LayerReader:
    """Read-through wrapper of a layer tar: counts its bytes and hashes them (the layer's diff_id);
    optionally also counts what gzip -6 makes of them."""

    def __init__(self, raw, compress=True):
        self.raw, self.raw_bytes, self.gzip_bytes = raw, 0, 0
        self.sha256 = hashlib.sha256()
        self.zip = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None  # wbits 31: gzip container

    def read(self, size=-1):
        """Read from the wrapped stream, feeding the hash and the compressor."""
        data = self.raw.read(size)
        self.raw_bytes += len(data)
        self.sha256.update(data)
        if self.zip:
            self.gzip_bytes += len(self.zip.compress(data))
        return data

    def finish(self):
        """Consume the rest of the stream (tar padding included) and flush the compressor."""
        while self.read(1 << 20):
            pass
        if self.zip:
            self.gzip_bytes += len(self.zip.flush())


class Prefixed:
    """A stream with its first bytes, already read to sniff the format, put back in front."""

    def __init__(self, head, rest):
        self.head, self.rest = head, rest

    def read(self, size=-1):
        """Read the put-back bytes first, then the stream."""
        if not self.head:
            return self.rest.read(size)
        if size is None or size < 0:
            data, self.head = self.head + self.rest.read(), b""
            return data
        data, self.head = self.head[:size], self.head[size:]
        return data


GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"


def uncompressed(blob):
    """The plain bytes of a blob of `docker save`: as is (classic store), or gunzipped (containerd store)."""
    head = blob.read(4)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=Prefixed(head, blob), mode="rb")
    if head == ZSTD_MAGIC:
        raise RuntimeError("a zstd-compressed layer: this Python's standard library can't read it")
    return Prefixed(head, blob)


def layer_nodes(stream):
    """Map a layer tar's paths to (size, is_dir) as dive's AddPath does; also sum the entries' sizes."""
    nodes, content_bytes = {}, 0
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            content_bytes += member.size
            path = posixpath.normpath(member.name).strip("/")
            if path in ("", "."):
                continue
            parts = path.split("/")
            for i in range(1, len(parts)):  # a parent missing from the tar gets an empty payload
                nodes.setdefault("/" + "/".join(parts[:i]), (0, False))
            if not parts[-1].startswith(WHITEOUT + WHITEOUT):  # dive skips .wh..wh..opq markers
                nodes["/" + path] = (member.size, member.isdir())
    return nodes, content_bytes


def read_archive(image, compress=True):
    """Stream `docker save IMAGE` (nothing written to disk) through read_save_stream."""
    return read_saved(image, lambda stream: read_save_stream(stream, compress))


def read_saved(image, read):
    """read(stream) of `docker save IMAGE`'s output, as it streams; docker's error if it fails."""
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        result = read(proc.stdout)
        # tarfile stops at the end-of-archive marker; the padding after it must be read too, or
        # docker save, still writing it, dies of SIGPIPE (seen under load on the containerd store).
        while proc.stdout.read(1 << 16):
            pass
        return result
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            raise RuntimeError(f"`docker save` exited {proc.returncode}: {stderr}")


def read_save_stream(stream, compress=True):
    """Sizes, diff_id and file tree of each layer of a `docker save` archive, in manifest.json's order.
    The archive's layout differs between image stores (plain tars, or an OCI layout of gzip blobs);
    manifest.json names the layers in both."""
    blobs, manifest = {}, None
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:  # manifest.json comes last: try every blob as a layer tar
            if not member.isfile():
                continue
            data = archive.extractfile(member)
            if member.name == "manifest.json":
                manifest = json.load(data)
                continue
            reader = LayerReader(uncompressed(data), compress)
            try:
                nodes, content_bytes = layer_nodes(reader)
            except tarfile.ReadError:  # the image config or an OCI index or manifest, not a layer
                nodes, content_bytes = None, 0
            reader.finish()
            blobs[member.name] = {
                "name": member.name,
                "diff_id": "sha256:" + reader.sha256.hexdigest(),
                "tar_bytes": reader.raw_bytes,
                "gzip_bytes": reader.gzip_bytes,
                "content_bytes": content_bytes,
                "nodes": nodes,
            }
    if manifest is None:
        raise RuntimeError("no manifest.json in the `docker save` archive")
    missing = [name for name in manifest[0]["Layers"] if blobs.get(name, {}).get("nodes") is None]
    if missing:
        raise RuntimeError(f"layers listed in manifest.json but missing or not tars: {missing}")
    return [blobs[name] for name in manifest[0]["Layers"]]


def image_size(layers):
    """Size: the bytes of file content in the image's layers, each layer counted (one listed twice, twice)."""
    return sum(layer["content_bytes"] for layer in layers)


def save_oci_layout(image, dest):
    """`docker save IMAGE` unpacked into dest as an OCI layout whose index.json names the image's own
    manifest. The containerd store's index.json names an index (the image and its attestations), which
    syft's oci-dir reader refuses, and its gzip layers defeat syft's docker-archive reader."""
    proc = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
        for member in archive:
            target = pathlib.Path(dest, member.name)
            if not member.isfile() or ".." in pathlib.PurePosixPath(member.name).parts:
                continue  # only blobs and the few JSON files, never a path outside dest
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(archive.extractfile(member), out)
    stderr = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise RuntimeError(f"`docker save` exited {proc.returncode}: {stderr}")
    index_path = pathlib.Path(dest, "index.json")
    index = json.loads(index_path.read_text())
    while index["manifests"][0]["mediaType"].endswith("image.index.v1+json"):
        nested = json.loads(pathlib.Path(dest, "blobs", *index["manifests"][0]["digest"].split(":")).read_text())
        runnable = [m for m in nested["manifests"] if (m.get("platform") or {}).get("os") != "unknown"]
        index = {**index, "manifests": runnable[:1]}
    index_path.write_text(json.dumps(index))


def sbom(image, syft):
    """syft's JSON SBOM of the image. syft reads the image's OCI layout from `docker save`, which both
    image stores write (Docker 25+): its docker source can't read the containerd store's layers."""
    with tempfile.TemporaryDirectory(prefix="compare-sbom-") as layout:
        save_oci_layout(image, layout)
        proc = subprocess.run(
            [syft, "scan", f"oci-dir:{layout}", "--output", "syft-json", "--quiet"],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "SYFT_CHECK_FOR_APP_UPDATE": "false"},
        )
    if proc.returncode != 0:
        raise RuntimeError(f"syft exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return json.loads(proc.stdout)


def image_store():
    """The engine's image store: "containerd" (containerd-snapshotter) or "classic" (a graph driver)."""
    status = json.loads(docker_stdout("info", "--format", "{{json .DriverStatus}}") or "null") or []
    return "containerd" if ["driver-type", "io.containerd.snapshotter.v1"] in status else "classic"
