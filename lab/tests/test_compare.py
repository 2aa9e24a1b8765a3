"""`make compare`'s report: it runs end to end, its sizes mean the same on both image stores, and it leaves git clean."""

import ast
import io
import json
import pathlib
import subprocess
import sys
import tarfile

import pytest
from dockertools import ROOT, copy_tracked, image_size, image_store, inspect, make_variable

sys.path.insert(0, str(ROOT / "lab" / "scripts"))
import compare  # noqa: E402

pytestmark = pytest.mark.docker
START, END = "<!-- compare:start -->", "<!-- compare:end -->"


def tracked_copy(dest):
    """A git repository at dest holding this tree's tracked files, with the published results
    (the README's compare block and lab/docs/compare.svg) blanked, so that any rewrite of them shows."""
    copy_tracked(dest)
    head, rest = (dest / "README.md").read_text().split(START, 1)
    (dest / "README.md").write_text(f"{head}{START}\n{END}{rest.split(END, 1)[1]}")
    (dest / "lab" / "docs" / "compare.svg").write_text("<svg/>\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    for args in (["init", "-q"], ["add", "--all"], ["commit", "-q", "-m", "copy"]):
        subprocess.run(git + args, cwd=dest, check=True, capture_output=True)
    return dest


@pytest.fixture(scope="module")
def report(base_image, single_image, multi_image, distroless_base, distroless_image, tmp_path_factory):
    """compare.py run once over the five images with the outputs `make compare` gives it, in a scratch
    copy of the tree (one start-up run per image, to stay quick); also what `git status` said afterwards."""
    copy = tracked_copy(tmp_path_factory.mktemp("compare"))
    outputs = make_variable("COMPARE_OUTPUTS", makefile="lab/Makefile").split()
    proc = subprocess.run(
        [
            sys.executable,
            "lab/scripts/compare.py",
            "--base",
            base_image,
            "--single-stage",
            single_image,
            "--multi-stage",
            multi_image,
            "--distroless-base",
            distroless_base,
            "--distroless",
            distroless_image,
            "--runs",
            "1",
            *outputs,
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = subprocess.run(["git", "status", "--porcelain"], cwd=copy, capture_output=True, text=True).stdout
    written = dict(zip(outputs[::2], outputs[1::2], strict=True))
    return {
        "stdout": proc.stdout,
        "data": json.loads((copy / written["--json"]).read_text()),
        "svg": (copy / written["--svg"]).read_text(),
        "written": written,
        "status": status,
    }


def test_compare_reads_every_layer_whole(report):
    """Each layer compare.py read (a plain tar on the classic store, gzip on the containerd one) hashes
    to its diff_id: no layer missed, none cut short, so the sizes summed over them are the image's."""
    for result in report["data"]["images"].values():
        read = [layer["diff_id"] for layer in result["layer_details"]]
        assert read == inspect(result["image"])["RootFS"]["Layers"], result["image"]


def test_compare_size_is_the_tests_size_and_within_0_1_percent_of_the_classic_stores(report):
    """Size is one figure: the one the size tests read (image_size), and on the classic store within 0.1%
    of `docker image inspect`'s Size. On the containerd store inspect's Size is the packed content (and,
    from moby/moby#53426, plus the unpacked snapshots): nothing to compare with there."""
    store = image_store()
    assert report["data"]["host"]["image_store"] == store
    for result in report["data"]["images"].values():
        assert result["size_bytes"] == image_size(result["image"]), result["image"]
        if store == "classic":
            classic = inspect(result["image"])["Size"]
            assert abs(result["size_bytes"] - classic) <= 0.001 * classic, (result["image"], classic)


def test_compare_prints_a_row_per_image_and_the_summary(report):
    """The table has every image and each headline comparison."""
    for result in report["data"]["images"].values():
        assert result["image"] in report["stdout"]
    for line in (
        "multi-stage vs single-stage:",
        "distroless vs multi-stage:",
        "distroless vs single-stage:",
        "multi-stage minus its base:",
        "distroless minus its base:",
    ):
        assert line in report["stdout"]
    assert report["data"]["errors"] == []


def test_compare_counts_fewer_sbom_packages_in_distroless(report):
    """The SBOM column measures the attack surface: distroless carries fewer packages than multi-stage,
    which carries fewer than single-stage, and every app image lists the app's Python packages."""
    data = report["data"]
    sbom = {role: data["images"][role]["sbom"] for role in ("single-stage", "multi-stage", "distroless")}
    assert sbom["distroless"]["total"] < sbom["multi-stage"]["total"] < sbom["single-stage"]["total"], sbom
    assert all(counts["by_type"].get("python", 0) >= 9 for counts in sbom.values()), sbom


def test_compare_finds_compilers_only_in_single_stage(report):
    """The compilers column is read from each image's files, so it works without a shell."""
    data = report["data"]
    found = {role: bool(r["compilers"]) for role, r in data["images"].items()}
    assert found == {
        "base": False,
        "single-stage": True,
        "multi-stage": False,
        "distroless-base": False,
        "distroless": False,
    }


def test_compare_writes_an_svg_chart(report):
    """The chart is a standalone SVG naming each image."""
    svg = report["svg"]
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for result in report["data"]["images"].values():
        assert result["image"] in svg


def test_compare_leaves_tracked_files_alone(report):
    """Run as `make compare` runs it, compare.py changes no tracked file: a fresh clone stays clean."""
    assert report["status"] == ""


def test_compare_writes_its_results_under_build(report):
    """The JSON and the chart land in build/, which .gitignore covers; the README is not an output."""
    assert "--readme" not in report["written"]
    assert all(path.startswith("build/") for path in report["written"].values())


def test_compare_reads_docker_save_to_its_end(tmp_path, monkeypatch):
    """read_archive reads the padding after the archive's end marker too: a `docker save` still
    writing it when the reader stops would die of SIGPIPE (it did, under load, on the containerd store).
    A stand-in `docker` writes a one-layer archive followed by 1 MiB of padding, more than a pipe holds."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("app/hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    archive = tmp_path / "save.tar"
    with tarfile.open(archive, mode="w") as tar:
        for name, data in (("layer.tar", layer.getvalue()), ("manifest.json", b'[{"Layers": ["layer.tar"]}]')):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with archive.open("ab") as out:
        out.write(bytes(1 << 20))
    fake = tmp_path / "docker"
    fake.write_text(f"#!/bin/sh\nexec cat '{archive}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert compare.image_size(compare.read_archive("any", compress=False)) == 5


def test_compare_has_one_flag_per_variant():
    """The variants' flags are their names; the old short ones, --single and --multi, are refused rather
    than taken as abbreviations of the new."""
    args = compare.parse_args(["--syft", "syft", "--base", "b", "--single-stage", "s", "--multi-stage", "m"])
    assert compare.images_by_role(args) == {"base": "b", "single-stage": "s", "multi-stage": "m"}
    for old in (["--single", "s", "--multi-stage", "m"], ["--single-stage", "s", "--multi", "m"]):
        with pytest.raises(SystemExit):
            compare.parse_args(["--syft", "syft", "--base", "b", *old])


def test_compare_marks_stand_in_images_in_the_table():
    """A row whose image is an offline/ stand-in says so, in the text table and in the README's, outside
    the name's code span; the figures of a stand-in are not the registry image's. Other rows are unmarked."""
    rows = compare.table_rows(
        {"base": {"image": "offline/python:3.13-slim-trixie"}, "multi-stage": {"image": "pyslim:multi-stage"}}
    )
    assert [row[0] for row in rows[1:]] == ["offline/python:3.13-slim-trixie (stand-in)", "pyslim:multi-stage"]
    table = compare.markdown(rows, [], "measured").splitlines()
    assert table[2].startswith("| `offline/python:3.13-slim-trixie` (stand-in) | err |"), table[2]
    assert table[3].startswith("| `pyslim:multi-stage` | err |"), table[3]


def test_compare_functions_fit_on_a_screen():
    """No function of compare.py, nested ones included, runs over 50 lines from its def to its last line:
    parse, probe, measure and write each stay readable on their own."""
    tree = ast.parse(pathlib.Path(compare.__file__).read_text(encoding="utf-8"))
    long = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50
    }
    assert long == {}, long
