"""A map app: the grid cuts the input on line ends (the `lines` fan-out), runs this script on
each chunk on a device, and joins the outputs in order (the `concat` fan-in).

The chunk is the one file in input/; write exactly one file to output/. Parameters arrive as
JSON in IDLEGRID_PARAMS. Give the same output for the same chunk on any device
("deterministic": true), so results can be checked by running a chunk twice.
"""
import json
import os

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
prefix = params.get("prefix", "")

(chunk,) = os.listdir("input")
with open(os.path.join("input", chunk), encoding="utf-8", newline="") as src, open(
    os.path.join("output", "lines.txt"), "w", encoding="utf-8", newline=""
) as out:
    for line in src:
        out.write(prefix + line.rstrip("\r\n").upper() + "\n")
