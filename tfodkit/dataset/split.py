"""Deterministic stratified train/val/test split that keeps identical images (same sha256) together."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path
from typing import Sequence

from tfodkit.errors import TfodkitError
from tfodkit.user_files import read_user_text

_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class SplitItem:
    """One image as the splitter sees it."""

    key: str  # relative image path, unique
    sha256: str
    classes: frozenset[str]


def parse_fractions(text: str) -> dict[str, float]:
    """`train=0.8,val=0.1,test=0.1` -> {"train": 0.8, ...}; fractions are positive and sum to 1."""
    fractions: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise TfodkitError(f"--split: {part.strip()!r} is not NAME=FRACTION (e.g. train=0.8,val=0.1,test=0.1)")
        if name in fractions:
            raise TfodkitError(f"--split: split {name!r} is given twice")
        try:
            fraction = float(value)
        except ValueError:
            raise TfodkitError(f"--split: fraction of {name!r} is {value.strip()!r}, not a number") from None
        if not 0 < fraction <= 1:
            raise TfodkitError(f"--split: fraction of {name!r} is {fraction}; it must be in (0, 1]")
        fractions[name] = fraction
    if abs(sum(fractions.values()) - 1) > 1e-6:
        raise TfodkitError(f"--split: fractions sum to {sum(fractions.values()):g}, not 1")
    return fractions


def _quotas(fractions: dict[str, float], total: int) -> dict[str, int]:
    """Largest-remainder rounding of fraction x total; ties go to the split named first."""
    exact = {name: fraction * total for name, fraction in fractions.items()}
    quotas = {name: int(value) for name, value in exact.items()}
    order = sorted(fractions, key=lambda name: (-(exact[name] - quotas[name]), list(fractions).index(name)))
    for name in order[: total - sum(quotas.values())]:
        quotas[name] += 1
    return quotas


def stratified_split(items: Sequence[SplitItem], fractions: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Split keys so that each class reaches every split that can hold it (rarest class first, one group per
    split, largest split first), then, rarest class first, each remaining group goes to the open split that
    still wants most of that class (after Sechidis et al.'s iterative stratification, 2011); groups without
    objects fill what is left. Images with the same sha256 form one group and always land together. Split
    sizes are the fractions of the number of groups, rounded by largest remainder. Keys come shuffled."""
    groups: dict[str, list[SplitItem]] = {}
    for item in sorted(items, key=lambda item: item.key):
        groups.setdefault(item.sha256, []).append(item)
    group_list = list(groups.values())
    random.Random(seed).shuffle(group_list)
    classes_of = [frozenset().union(*(item.classes for item in group)) for group in group_list]

    split_names = list(fractions)
    by_size = sorted(split_names, key=lambda name: (-fractions[name], split_names.index(name)))
    room = _quotas(fractions, len(group_list))
    class_counts: dict[str, int] = {}
    for classes in classes_of:
        for name in classes:
            class_counts[name] = class_counts.get(name, 0) + 1
    wanted = {split: {name: fractions[split] * count for name, count in class_counts.items()}
              for split in split_names}
    assigned: dict[int, str] = {}
    present: dict[str, set[str]] = {split: set() for split in split_names}

    def assign(index: int, split: str) -> None:
        assigned[index] = split
        room[split] -= 1
        for name in classes_of[index]:
            wanted[split][name] -= 1
            present[split].add(name)

    rarest_first = sorted(class_counts, key=lambda name: (class_counts[name], name))
    for name in rarest_first:
        for split in by_size:
            if name in present[split] or room[split] <= 0:
                continue
            candidate = next((i for i, c in enumerate(classes_of) if i not in assigned and name in c), None)
            if candidate is None:
                break
            assign(candidate, split)

    for name in rarest_first:
        for index, classes in enumerate(classes_of):
            if index in assigned or name not in classes:
                continue
            open_splits = [split for split in by_size if room[split] > 0]
            assign(index, max(open_splits, key=lambda split: (wanted[split][name], room[split])))
    for index in range(len(group_list)):
        if index not in assigned:
            open_splits = [split for split in by_size if room[split] > 0]
            assign(index, max(open_splits, key=lambda split: room[split] / max(fractions[split], 1e-9)))

    result: dict[str, list[str]] = {split: [] for split in split_names}
    for index, group in enumerate(group_list):
        result[assigned[index]].extend(item.key for item in group)
    for split, keys in result.items():
        random.Random(f"{seed}:{split}").shuffle(keys)
    return result


def parse_split_files(text: str) -> dict[str, Path]:
    """`train=train.txt,val=val.txt` -> {"train": Path("train.txt"), ...}."""
    files: dict[str, Path] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name) or not value.strip():
            raise TfodkitError(f"--split-files: {part.strip()!r} is not NAME=FILE (e.g. train=train.txt,val=val.txt)")
        if name in files:
            raise TfodkitError(f"--split-files: split {name!r} is given twice")
        files[name] = Path(value.strip())
    return files


def read_split_list(path: Path) -> list[tuple[int, str]]:
    """(line number, entry) for each non-blank, non-comment line of a split list file."""
    lines = read_user_text(path, "split list").splitlines()
    entries = [(number, line.strip()) for number, line in enumerate(lines, start=1)]
    return [(number, entry) for number, entry in entries if entry and not entry.startswith("#")]
