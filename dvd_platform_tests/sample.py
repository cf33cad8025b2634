"""The test session's sample: a pagila-shaped folder, pagila itself or made by the generator.

Why one shape for both: a fresh machine has no ``../shared``, yet every test
must run there. So when pagila is absent (or ``DVD_TEST_SAMPLE=generated``
says so) the built-in generator's rows are laid out exactly like pagila, one
CSV per table: the reference tables as the generator's first-day snapshot,
the event tables as every generated rental and payment. Both kinds then go
through the same :class:`FolderSource`, the same seeding and the same
independent truth (``sample_truth``, plain Python over these CSVs), and
no test needs to know which one it got.

The generated folder covers pagila's calendar (2022-01-23..2022-08-23): the
days tests name are in both, the others are derived from the sample, and the
days that tests reserve for data of their own (September 2022 onwards) are
free either way. Its reference rows never change after the first day: the
generator's day-by-day changes are tested on their own (test_generator,
test_oltp).
"""

from __future__ import annotations

import os
import tempfile
from datetime import date, timedelta
from pathlib import Path

from dvd_platform.dev.seed.generator import GeneratedSource
from dvd_platform.contract.drops import drop_path
from dvd_platform.contract.tables import EVENT_TABLES, TABLES

PAGILA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "pagila"
KINDS = ("auto", "pagila", "generated")
# pagila's calendar and about its size (16k rentals): 0.56 x 133 rentals a day x 213 days. (Its last 96 days alone
# were tried: no suite time that stood out from run-to-run spread, BENCHMARKS.md section 17.)
GENERATED = GeneratedSource(scale=0.56, seed=42, start=date(2022, 1, 23), days=213)


def sample_kind() -> str:
    """``pagila`` or ``generated``: forced by DVD_TEST_SAMPLE, else pagila where it is on disk."""
    wanted = os.environ.get("DVD_TEST_SAMPLE", "auto")
    if wanted not in KINDS:
        raise ValueError(f"DVD_TEST_SAMPLE={wanted!r}: use one of {', '.join(KINDS)}")
    if wanted == "pagila" and not PAGILA.is_dir():
        raise FileNotFoundError(f"DVD_TEST_SAMPLE=pagila, but there is no pagila sample at {PAGILA}")
    if wanted == "auto":
        return "pagila" if PAGILA.is_dir() else "generated"
    return wanted


def sample_folder(work_dir: Path) -> Path:
    """The folder of the session's sample CSVs (pagila's, or generated under ``work_dir``)."""
    if sample_kind() == "pagila":
        return PAGILA
    return write_generated_folder(GENERATED, work_dir / "generated-sample")


def write_generated_folder(source: GeneratedSource, out: Path) -> Path:
    """Lay the generator's drops out like pagila: one CSV per table, header once.

    The drop files are concatenated byte for byte (minus each file's header
    line), so the folder's rows are exactly the generated text.
    """
    first, last = source.day_range()
    days = [first + timedelta(n) for n in range((last - first).days + 1)]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dvd-sample-") as drops:
        source.write_days(days, Path(drops))
        for table in TABLES:
            wanted = days if table in EVENT_TABLES else days[:1]
            with open(out / f"{table}.csv", "wb") as target:
                for n, day in enumerate(wanted):
                    text = drop_path(Path(drops), table, day).read_bytes()
                    target.write(text if n == 0 else text.split(b"\n", 1)[1])
    return out
