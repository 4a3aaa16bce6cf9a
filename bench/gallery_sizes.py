"""Sizes for the gallery benchmarks: small by default (CI runs every benchmark once), the issue's
full sizes with FASTFACE_BENCH_FULL=1 (1M x 128 rows, 100k enrolments), or set one by one."""
import os

FULL = os.environ.get("FASTFACE_BENCH_FULL") == "1"
ROWS = int(os.environ.get("FASTFACE_BENCH_ROWS", 1_000_000 if FULL else 20_000))
ENROL = int(os.environ.get("FASTFACE_BENCH_ENROL", 100_000 if FULL else 1_000))
DIM = 128


def report(title: str, lines: list[str]) -> None:
    """Figures go to stdout (pytest -s shows them) and, when FASTFACE_BENCH_REPORT names a file,
    are appended there."""
    text = "\n".join([f"== {title} (rows {ROWS}, dim {DIM})", *lines]) + "\n"
    print("\n" + text)
    if os.environ.get("FASTFACE_BENCH_REPORT"):
        with open(os.environ["FASTFACE_BENCH_REPORT"], "a") as f:
            f.write(text)
