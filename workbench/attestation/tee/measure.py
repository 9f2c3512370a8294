"""What the simulated TEE measures: a manifest of the code a kernel runs, hashed with SHA-384.

The manifest is text, one entry per line, sorted, so two machines with the same install
produce the same measurement (no absolute paths, times, host names or file modes)::

    workbench-measurement-v1
    interpreter <implementation> <version>
    kernels/<relative path> <sha256 of the file>
    workbench/<relative path> <sha256 of the file>

It covers every file of the installed ``workbench`` package except interpreter caches, the
kernelspec files under ``kernels/`` when that folder exists next to the package (a source
checkout or an editable install), and the interpreter implementation and version.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import workbench

MANIFEST_HEADER = "workbench-measurement-v1"
# Caches the interpreter or tools write next to sources: not part of what runs.
EXCLUDED_DIRS = frozenset(
    {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
)
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Measurement:
    measurement: str
    manifest: tuple[str, ...]
    package_files: int
    kernelspec_files: int
    interpreter: str

    def covers(self) -> dict[str, int | str]:
        return {
            "package_files": self.package_files,
            "kernelspec_files": self.kernelspec_files,
            "interpreter": self.interpreter,
        }

    def to_json(self) -> dict[str, object]:
        return {
            "tee": "simulated",
            "measurement": self.measurement,
            "algorithm": "sha384",
            "covers": self.covers(),
            "manifest": list(self.manifest),
        }


def default_package_dir() -> Path:
    return Path(workbench.__file__).resolve().parent


def default_kernels_dir() -> Path:
    return default_package_dir().parent / "kernels"


def interpreter_id() -> str:
    return f"{sys.implementation.name} {platform.python_version()}"


def _included(path: Path, root: Path) -> bool:
    relative = path.relative_to(root)
    if any(part in EXCLUDED_DIRS for part in relative.parts[:-1]):
        return False
    return path.is_file() and not path.name.endswith(EXCLUDED_SUFFIXES)


def _entries(root: Path, prefix: str) -> list[str]:
    if not root.is_dir():
        return []
    entries = []
    for path in root.rglob("*"):
        if _included(path, root):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            entries.append(f"{prefix}/{path.relative_to(root).as_posix()} {digest}")
    return entries


def measure_install(
    package_dir: Path | None = None, kernels_dir: Path | None = None
) -> Measurement:
    """Measure the installed package, kernelspecs and interpreter."""
    package_entries = _entries(package_dir or default_package_dir(), "workbench")
    kernel_entries = _entries(kernels_dir or default_kernels_dir(), "kernels")
    interpreter = interpreter_id()
    manifest = (
        MANIFEST_HEADER,
        f"interpreter {interpreter}",
        *sorted(kernel_entries + package_entries),
    )
    digest = hashlib.sha384("".join(line + "\n" for line in manifest).encode("utf-8"))
    return Measurement(
        measurement=digest.hexdigest(),
        manifest=manifest,
        package_files=len(package_entries),
        kernelspec_files=len(kernel_entries),
        interpreter=interpreter,
    )
