"""Record what `make image-test` measured in bench/results/image.json.

    python tools/image_record.py STATE_DIR OUT_JSON

STATE_DIR holds tools/image.sh's build.json and tests.json of this run. A run that had to make
the base image (a machine where nothing was cached yet) is filed as "cold", any other as
"warm"; the other kind's figures are kept from OUT_JSON. The image's size, its torch and the
largest parts of its site-packages are read from podman."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def podman(*args: str) -> str:
    return subprocess.run(
        ["podman", *args], check=True, capture_output=True, text=True, env=os.environ
    ).stdout.strip()


def image_facts(image: str, base_image: str) -> dict[str, Any]:
    probe = (
        "import json, sys, torch; print(json.dumps({'python': sys.version.split()[0], "
        "'torch': torch.__version__, 'cuda': torch.version.cuda}))"
    )
    versions = json.loads(podman("run", "--rm", "--network=none", image, "python", "-c", probe))
    du = podman(
        "run", "--rm", "--network=none", image, "sh", "-c",
        "du -sm /opt/venv/lib/python3.11/site-packages/* | sort -rn | head -n 8",
    )  # fmt: skip
    largest = {}
    for line in du.splitlines():
        mb, path = line.split(maxsplit=1)
        largest[Path(path).name] = int(mb)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image))
    base_size = int(podman("image", "inspect", "--format", "{{.Size}}", base_image))
    return {"versions": versions, "largest": largest, "size": size, "base_size": base_size}


def dependencies_cached(build_log: Path) -> bool:
    """Whether podman reused the dependencies' layer (the RUN step that fills the wheelhouse)."""
    lines = build_log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "STEP" in line and "wheelhouse" in line:
            return i + 1 < len(lines) and lines[i + 1].startswith("--> Using cache")
    return False


def main(state_dir: str, out_path: str) -> int:
    state = Path(state_dir)
    build = json.loads((state / "build.json").read_text())
    tests = json.loads((state / "tests.json").read_text())
    out = Path(out_path)
    previous: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    facts = image_facts(build["image"], build["base_image"])
    cuda = facts["versions"]["cuda"]
    kind = "cold" if build["base_made"] else "warm"
    if kind == "warm" and not dependencies_cached(state / "build.log"):
        kind = "warm_dependencies_rebuilt"
    run = {
        "measured": time.strftime("%Y-%m-%d %H:%M", time.gmtime()) + " UTC",
        "base_image_s": build["base_s"],
        "image_build_s": build["build_s"],
        "tests_s": tests["tests_s"],
        "total_s": tests["total_s"],
        # other work on the machine slows every figure: the load when the run ended
        "load_average_1_5_15_min": [round(x, 1) for x in os.getloadavg()],
    }
    record: dict[str, Any] = {
        "what": "make image-test: podman's pieces, the local base image, podman build of the "
        "Dockerfile, then tests/image/ against the image",
        "image": build["image"],
        "size_bytes": facts["size"],
        "size_gb": round(facts["size"] / 1e9, 2),
        "size_note": "podman's uncompressed size of all layers, base included",
        "base_image": build["base_image"],
        "base_image_made_by": "tools/image-base.sh: debootstrap --variant=minbase bookworm + "
        "python3 python3-venv ca-certificates, updates applied, docs and apt lists removed",
        "base_image_size_bytes": facts["base_size"],
        "python": facts["versions"]["python"],
        "torch": facts["versions"]["torch"],
        "torch_variant": (
            f"CUDA {cuda} build with its nvidia-* wheels (PyPI's torch for x86_64 Linux)"
            if cuda
            else "CPU-only build"
        ),
        "torch_index_url": build["torch_index_url"],
        "largest_site_packages_mb": facts["largest"],
        "cold": previous.get("cold"),
        "warm": previous.get("warm"),
        "warm_dependencies_rebuilt": previous.get("warm_dependencies_rebuilt"),
        "cold_means": "a machine without the base image, podman's layers or the wheelhouse (a "
        "build cache mount): everything downloaded from Debian and PyPI (podman itself was "
        "installed already: tools/container-deps.sh took 12 s more where it was not)",
        "warm_means": "base image, podman's layers and the wheelhouse kept from an earlier "
        "run: the project's wheel and the small layers after it rebuild, the dependencies' layer "
        "is reused",
        "warm_dependencies_rebuilt_means": "base image and wheelhouse kept, the dependencies' "
        "layer rebuilt (as after a change of pyproject's dependency list, or pruned layers): "
        "installed from the wheelhouse, nothing downloaded but what it lacks",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, podman "
        + podman("version", "--format", "{{.Client.Version}}"),
    }
    record[kind] = run
    out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"image-test ({kind}): {json.dumps(run)}; size {record['size_gb']} GB; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
