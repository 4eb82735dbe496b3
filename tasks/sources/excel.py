"""Read one sheet of an ``.xlsx`` workbook as it is (every cell as text), through calamine."""

from __future__ import annotations

from pathlib import Path

import fastexcel
import polars as pl

from tasks.config import SourceConfig
from tasks.errors import SourceError

EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xlsb", ".xls")


def read_excel(path: Path, src: SourceConfig) -> pl.DataFrame:
    """Read the source's sheet (the first by default); dates come as ISO 8601 text."""
    if not path.exists():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        sheets = fastexcel.read_excel(str(path)).sheet_names
    except Exception as err:  # calamine raises its own types for a file that is no workbook
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(f"{path.name} is not a readable workbook ({first})") from None
    if src.sheet is not None and src.sheet not in sheets:
        raise SourceError(
            f"{path.name} has no sheet {src.sheet!r}; its sheets are {', '.join(sheets)}"
        )
    name = src.sheet if src.sheet is not None else sheets[0]
    # every cell as text, like a CSV: the canonical cast decides, and reports what fails
    return pl.read_excel(path, engine="calamine", sheet_name=name, infer_schema_length=0)
