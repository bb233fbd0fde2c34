"""word-count's reduce step: runs once, after every chunk's counts were accepted, on devices
like any task (twice, on two parties' devices that must agree, on the open grid).

input/outputs.tar holds one file per chunk, named by the chunk's index (000000, 000001, ...),
each the {"word": count} object the task script wrote. The output adds them up, word by word,
and says how many words there were in all and how many distinct ones.
"""
import json
import os
import sys
import tarfile
from collections import Counter

counts = Counter()
chunks = 0
skipped = 0
with tarfile.open(os.path.join("input", "outputs.tar")) as outputs:
    for member in outputs:
        if not member.isfile():
            continue
        chunks += 1
        for found, n in json.load(outputs.extractfile(member)).items():
            # The grid's `numbers` validator lets through any tree of numbers: a count is a
            # whole number, and anything else (which no honest chunk writes) is left out
            # rather than failing the whole job here.
            if isinstance(n, int) and not isinstance(n, bool):
                counts[found] += n
            else:
                skipped += 1

print(f"INFO: {chunks} chunks, {len(counts)} distinct words", file=sys.stderr)
if skipped:
    print(f"WARNING: {skipped} counts that are not whole numbers left out", file=sys.stderr)
result = {
    "words": sum(counts.values()),
    "distinct": len(counts),
    "counts": dict(sorted(counts.items())),
}
with open(os.path.join("output", "counts.json"), "w", encoding="utf-8") as out:
    json.dump(result, out, sort_keys=True)
