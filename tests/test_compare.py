"""`make compare`'s report: it runs end to end and its sizes are docker's own, to the byte."""

import json
import subprocess
import sys

import pytest
from dockertools import ROOT, inspect

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def report(base_image, single_image, multi_image, distroless_base, distroless_image, tmp_path_factory):
    """compare.py run once over the five images (one start-up run each, to stay quick)."""
    out = tmp_path_factory.mktemp("compare")
    proc = subprocess.run(
        [sys.executable, "scripts/compare.py", "--base", base_image, "--single", single_image,
         "--multi", multi_image, "--distroless-base", distroless_base, "--distroless", distroless_image,
         "--runs", "1", "--json", str(out / "compare.json"), "--svg", str(out / "compare.svg")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads((out / "compare.json").read_text()), (out / "compare.svg").read_text()


def test_compare_sizes_match_docker_inspect_to_the_byte(report):
    """The uncompressed size of every row is `docker image inspect`'s Size, exactly."""
    _, data, _ = report
    for result in data["images"].values():
        assert result["size_bytes"] == inspect(result["image"])["Size"], result["image"]


def test_compare_prints_a_row_per_image_and_the_summary(report):
    """The table has every image and each headline comparison."""
    stdout, data, _ = report
    for result in data["images"].values():
        assert result["image"] in stdout
    for line in ("multi-stage vs single-stage:", "distroless vs multi-stage:", "distroless vs single-stage:",
                 "multi-stage minus its base:", "distroless minus its base:"):
        assert line in stdout
    assert data["errors"] == []


def test_compare_counts_fewer_sbom_packages_in_distroless(report):
    """The SBOM column measures the attack surface: distroless carries fewer packages than multi-stage,
    which carries fewer than single-stage, and every app image lists the app's Python packages."""
    _, data, _ = report
    sbom = {role: data["images"][role]["sbom"] for role in ("single", "multi", "distroless")}
    assert sbom["distroless"]["total"] < sbom["multi"]["total"] < sbom["single"]["total"], sbom
    assert all(counts["by_type"].get("python", 0) >= 9 for counts in sbom.values()), sbom


def test_compare_finds_compilers_only_in_single_stage(report):
    """The compilers column is read from each image's files, so it works without a shell."""
    _, data, _ = report
    found = {role: bool(r["compilers"]) for role, r in data["images"].items()}
    assert found == {"base": False, "single": True, "multi": False, "distroless_base": False, "distroless": False}


def test_compare_writes_an_svg_chart(report):
    """The chart is a standalone SVG naming each image."""
    _, data, svg = report
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for result in data["images"].values():
        assert result["image"] in svg
