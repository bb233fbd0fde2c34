"""E2E fixture: numbers, hashes and reverses every line of its chunk.

Output line for input line `text` with global index `n` (0-based over the whole input):
    f"{n}:{sha256(text)[:16]}:{text[::-1]}\n"
The global index comes from IDLEGRID_CHUNK_INDEX and the `chunk_lines` param, so a chunk
given the wrong index, or chunks concatenated out of order, change the output.
Optional params: `sleep` (seconds to sleep before working, after touching ./started so a
test can see the script is running); `runs_log` (a file outside the sandbox to which each run
appends its chunk index, so a test can count how often each chunk ran).
"""
import hashlib
import json
import os
import time

params = json.loads(os.environ["IDLEGRID_PARAMS"])
chunk = int(os.environ["IDLEGRID_CHUNK_INDEX"])
base = chunk * int(params["chunk_lines"])

with open("started", "w") as marker:
    marker.write(str(os.getpid()))
if "runs_log" in params:
    with open(params["runs_log"], "a") as runs:
        runs.write(f"{chunk}\n")
time.sleep(float(params.get("sleep", 0)))

(name,) = os.listdir("input")
with open(os.path.join("input", name), encoding="utf-8", newline="") as src, open(
    os.path.join("output", "out.txt"), "w", encoding="utf-8", newline=""
) as out:
    for i, line in enumerate(src):
        assert line.endswith("\n"), f"line {base + i} has no newline: {line!r}"
        text = line[:-1]
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        out.write(f"{base + i}:{digest}:{text[::-1]}\n")
