"""Benchmark `tfodkit make-tfrecords --workers 2` against the I/O floor measured in the same run.

Generates LabelImg sets of ~150 KB JPEGs in bench/out/ (git-ignored, reused by later runs), then for each size:
the floor (read every image, write the same bytes once to one file) and the conversion, with images/s, MB/s,
the ratio to the floor and the peak memory (RSS summed over the converter's process tree)."""

from __future__ import annotations

import argparse
import io
import os
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

from tests.labelimg_data import xml_text  # noqa: E402

WIDTH, HEIGHT = 640, 480
CLASSES = ("car", "person", "bicycle", "dog")
SECTION_START, SECTION_END = "<!-- bench_make_tfrecords: start -->", "<!-- bench_make_tfrecords: end -->"


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
    """Seconds to read every image and write the same bytes once; total bytes."""
    images = sorted(folder.glob("*.jpg"))
    target = OUT / "floor.bin"
    start = time.perf_counter()
    total = 0
    with open(target, "wb") as out:
        for path in images:
            data = path.read_bytes()
            out.write(data)
            total += len(data)
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


def update_docs(path: Path, section: str) -> None:
    """Replace this benchmark's section in `path` (create the file if absent), keeping every other section."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{SECTION_START}\n{section.rstrip()}\n{SECTION_END}"
    if SECTION_START in text and SECTION_END in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + block + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000, help="size of the large set (default: 2000)")
    parser.add_argument("--small", type=int, default=500, help="size of the small set (default: 500)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--docs", type=Path, help="write the results as a section of this Markdown file")
    args = parser.parse_args()

    large, small = OUT / f"set_{args.images}", OUT / f"set_{args.small}"
    start = time.perf_counter()
    generate(large, args.images)
    subset(large, small, args.small)
    print(f"data ready in {time.perf_counter() - start:.1f} s ({large}, {small})")

    rows = []
    for folder, count in ((small, args.small), (large, args.images)):
        floor = min(io_floor(folder)[0] for _ in range(args.repeat))
        total = io_floor(folder)[1]
        runs = [convert(folder, args.workers) for _ in range(args.repeat)]
        seconds = min(run[0] for run in runs)
        peak = max(run[1] for run in runs)
        cpu = min(run[2] for run in runs)
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
    section = "\n".join([
        "## make-tfrecords",
        "",
        f"`make bench` (= `.venv/bin/python bench/bench_make_tfrecords.py`): generated LabelImg sets of "
        f"{WIDTH}x{HEIGHT} JPEGs (quality 90) with 1-4 boxes each, converted with "
        f"`tfodkit make-tfrecords DIR --workers {args.workers} --split train=0.8,val=0.1,test=0.1` "
        "(whole process, start-up included, fastest of "
        f"{args.repeat}). The I/O floor, measured in the same run, reads every image and writes the same bytes "
        "once to one file (page cache warm for both). Peak RSS sums the converter and its workers.",
        "",
        *table,
        "",
        f"Machine: {os.cpu_count()} CPU cores, shared with other jobs while measured (wall times vary with "
        f"their load, the CPU column much less); Python {sys.version.split()[0]}.",
        "",
        "The target of 0.6 of the floor is not reached. With the page cache warm the floor runs at memory speed "
        "(about 1 GB/s), while the converter does real work per image in Python: parse the XML, identify the image "
        "and hash it (sha256) in a first pass, then read and hash it again, serialise the Example, compute the "
        "TFRecord CRC-32C (vectorised NumPy, since no TensorFlow or native crc32c library is imported in the "
        "workers) and send the record to the writing process. Peak memory does not grow with the dataset: records "
        "stream through a bounded number of in-flight chunks.",
    ])
    print()
    print(section)
    if args.docs:
        update_docs(args.docs, section)
        print(f"\nwrote the section into {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
