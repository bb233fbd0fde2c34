"""line-stats: an app published from its folder with `idlegrid app push`.

Each task gets one chunk of the input's lines in input/ and writes one line of figures per
line to output/; the grid joins the chunks' outputs in order. Its parameters arrive as JSON
in IDLEGRID_PARAMS: {"lower": true} writes the longest word in lower case.
"""
import json
import os

from stats import describe

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
lower = bool(params.get("lower", False))

(chunk,) = os.listdir("input")
with open(os.path.join("input", chunk), encoding="utf-8", newline="") as src, open(
    os.path.join("output", "stats.tsv"), "w", encoding="utf-8", newline=""
) as out:
    for line in src:
        out.write(describe(line.rstrip("\r\n"), lower) + "\n")
