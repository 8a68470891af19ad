"""Print the project's dependencies from pyproject.toml, one per line, plus those of the optional
groups named in $EXTRAS (comma-separated): the image's requirements, which the Dockerfile
installs in a layer of their own (rebuilt only when this list changes)."""

from __future__ import annotations

import os
import sys
import tomllib


def main(pyproject: str = "pyproject.toml") -> int:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    extras = [e.strip() for e in os.environ.get("EXTRAS", "").split(",") if e.strip()]
    unknown = set(extras) - set(project.get("optional-dependencies", {}))
    if unknown:
        print(f"unknown EXTRAS: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    print("\n".join(requirements))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
