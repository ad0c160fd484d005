"""Parquet data sets larger than memory: read a row group at a time with pyarrow, never whole.

`ParquetStream` takes one `.parquet` file or a folder of `.parquet` shards (one schema; the
image, label and group columns as `datasets.load_dataset` reads them). Opening it reads only the
footers; `labels()`, `groups()` and `names()` read the small columns alone; `rows()` yields the
image bytes of chosen rows, one block of `buffer` row groups at a time.

Memory ceiling of `rows()`: the image bytes of at most `buffer` row groups (shuffled together)
plus pyarrow's working memory for one row group, whatever the file's size: with row groups of R
rows of B bytes, ~ buffer x R x B + ~90 MiB (measured by `scripts/stream_memory.py`: reading all
51,210 rows of 10 copies of train/, R = 1,000, B ~ 5 kB, raised RSS by 96 MiB with buffer 1 and
107 MiB with buffer 4). The small per-row columns of the whole data set stay in memory (~100
bytes a row).

Sharding for distributed training: `shard(rank, world)` gives a process every world-th row group
of an order, so the processes read disjoint row groups that together cover the data set.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from mrivision.inputs.datasets import IMAGE_COLUMNS, LABEL_COLUMNS, image_bytes, label_from_value, parquet_label_names

GROUP_COLUMN = "group"


@dataclass(frozen=True)
class RowGroup:
    """One row group of one file, and where its rows start in the whole data set."""

    file: Path
    index: int
    first_row: int
    num_rows: int


class ParquetStream:
    """A Parquet file or a folder of Parquet shards, read in row groups."""

    def __init__(self, path: str | Path) -> None:
        import pyarrow.parquet as pq

        path = Path(path)
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files or not all(f.suffix.lower() == ".parquet" and f.is_file() for f in files):
            raise ValueError(f"{path}: streaming reads a .parquet file or a folder of .parquet shards")
        self.files = files
        self.row_groups: list[RowGroup] = []
        first = 0
        for f in files:
            meta = pq.ParquetFile(f).metadata
            for i in range(meta.num_row_groups):
                n = meta.row_group(i).num_rows
                self.row_groups.append(RowGroup(f, i, first, n))
                first += n
        self.num_rows = first
        columns = pq.read_schema(files[0]).names
        self.image_col = next((c for c in IMAGE_COLUMNS if c in columns), None)
        self.label_col = next((c for c in LABEL_COLUMNS if c in columns), None)
        if self.image_col is None or self.label_col is None:
            raise ValueError(f"{files[0].name}: need an image column and a label column, found {columns}")
        self.group_col = GROUP_COLUMN if GROUP_COLUMN in columns else None

    def column(self, name: str) -> list:
        """One small column for every row (read column by column, never with the images)."""
        import pyarrow.parquet as pq

        return [v for f in self.files for v in pq.read_table(f, columns=[name]).column(name).to_pylist()]

    def labels(self, class_names: Sequence[str], label_names: Sequence[str] | None = None) -> np.ndarray:
        names = label_names or parquet_label_names(self.files[0], self.label_col)
        return np.array([label_from_value(v, class_names, names, self.files[0].name)
                         for v in self.column(self.label_col)], dtype=np.int64)

    def groups(self) -> list[str]:
        """Each row's scan or subject (the `group` column): what the validation split respects."""
        if self.group_col is None:
            raise ValueError(f"{self.files[0].name}: a streamed data set needs a '{GROUP_COLUMN}' column (each row's "
                             f"scan or subject) so that validation is split by subject; finding pseudo-scans "
                             f"by image similarity needs every image in memory")
        return [str(v) for v in self.column(self.group_col)]

    def names(self) -> list[str]:
        return [f"{rg.file.name}#{rg.first_row + i}" for rg in self.row_groups for i in range(rg.num_rows)]

    def shard(self, rank: int, world: int, order: Sequence[int] | None = None) -> list[int]:
        """This process's row groups: every `world`-th of `order` (default: file order), from `rank`."""
        order = range(len(self.row_groups)) if order is None else order
        return list(order)[rank::world]

    def rows(self, row_groups: Sequence[int], wanted: np.ndarray | None = None, buffer: int = 4,
             rng: np.random.Generator | None = None) -> Iterator[tuple[int, bytes]]:
        """(row index, image bytes) of the `wanted` rows (a boolean mask over all rows; None: every
        row) of `row_groups`, in that order; with `rng`, shuffled within blocks of `buffer` row groups."""
        import pyarrow.parquet as pq

        handles: dict[Path, pq.ParquetFile] = {}
        for start in range(0, len(row_groups), max(1, buffer)):
            block: list[tuple[int, bytes]] = []
            for g in row_groups[start:start + max(1, buffer)]:
                rg = self.row_groups[g]
                rows = np.arange(rg.first_row, rg.first_row + rg.num_rows)
                keep = np.ones(rg.num_rows, bool) if wanted is None else wanted[rows]
                if not keep.any():
                    continue
                f = handles.setdefault(rg.file, pq.ParquetFile(rg.file))
                cells = f.read_row_group(rg.index, columns=[self.image_col]).column(0)
                block += [(int(rows[i]), image_bytes(cells[int(i)].as_py())) for i in np.flatnonzero(keep)]
                del cells
            if rng is not None:
                block = [block[i] for i in rng.permutation(len(block))]
            yield from block
