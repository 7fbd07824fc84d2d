"""Shared by the benchmarks: write a section of a Markdown file between its `<!-- NAME: start/end -->` markers."""

from __future__ import annotations

import platform
from pathlib import Path


def update_section(path: Path, name: str, section: str) -> None:
    """Replace section `name` in `path` (create the file or append the section if absent), keeping the rest."""
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{section.rstrip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def publish(section: str, docs: Path | None, name: str) -> None:
    """Print a benchmark's section, and write it into `docs` as section `name` when a file is given."""
    print(section)
    if docs:
        update_section(docs, name, section)
        print(f"\nwrote the section into {docs}")


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the machine kind matters when comparing figures across runs)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.machine()
