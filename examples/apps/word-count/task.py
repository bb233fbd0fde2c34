"""word-count: each chunk is a tar of some of the archive's documents (the `files` fan-out
cuts the customer's zip or tar). Counts the words of all of them: a word is a run of ASCII
letters, digits and apostrophes, lower-cased, with apostrophes trimmed from its ends.

The output is one JSON object, {"word": count}; the app's reduce step (reduce.py) adds them
up over every chunk into the counts of the whole archive.
"""
import json
import os
import re
import tarfile
from collections import Counter

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
min_length = int(params.get("min_length", 1))
word = re.compile(r"[a-z0-9']+")

counts = Counter()
with tarfile.open(os.path.join("input", "docs.tar")) as docs:
    for member in docs:
        if not member.isfile():
            continue
        text = docs.extractfile(member).read().decode("utf-8", errors="replace").lower()
        for found in word.findall(text):
            found = found.strip("'")
            if len(found) >= min_length:
                counts[found] += 1

with open(os.path.join("output", "counts.json"), "w", encoding="utf-8") as out:
    json.dump(dict(sorted(counts.items())), out)
