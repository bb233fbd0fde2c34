"""csv-totals: each chunk is a CSV file that starts with the input's header (the `csv`
partitioner gives it to every chunk), so columns are found by name in any chunk.

Writes, for each row, its first column and the sum of the columns named in the parameters
(IDLEGRID_PARAMS: {"columns": ["a", "b"]}), as CSV lines without a header: the grid joins
the chunks' outputs in order.
"""
import csv
import json
import os
import sys
from decimal import Decimal, InvalidOperation

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
columns = params["columns"]

(chunk,) = os.listdir("input")
with open(os.path.join("input", chunk), encoding="utf-8", newline="") as src, open(
    os.path.join("output", "totals.csv"), "w", encoding="utf-8", newline=""
) as dst:
    rows = csv.reader(src)
    header = next(rows)
    missing = [c for c in columns if c not in header]
    if missing:
        sys.exit(f"the header has no column {', '.join(missing)}: it has {', '.join(header)}")
    at = [header.index(c) for c in columns]
    out = csv.writer(dst, lineterminator="\n")
    for number, row in enumerate(rows, start=2):
        try:
            total = sum((Decimal(row[i]) for i in at), Decimal(0))
        except (InvalidOperation, IndexError):
            sys.exit(f"row {number} of the chunk has no number in every column asked")
        out.writerow([row[0], str(total)])
