"""chapters' partition step: runs once, first, on a device like any task (twice, on two
parties' devices that must agree, on the open grid).

input/book.txt is the customer's whole book. A chapter starts at a line whose first word is the
heading word (CHAPTER unless the job's `heading` says otherwise); what comes before the first
heading is a chapter of its own, the front matter. The output is a tar whose files are the
chunks, in order: one per chapter, named by its number. The grid reads the tar, checks it and
sends each file to a device as one task's input.
"""
import io
import json
import os
import sys
import tarfile

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
heading = params.get("heading", "CHAPTER").lower()

with open(os.path.join("input", "book.txt"), encoding="utf-8", errors="replace") as book:
    lines = book.read().splitlines(keepends=True)

chapters = [[]]
for line in lines:
    words = line.split()
    if words and words[0].lower() == heading and chapters[-1]:
        chapters.append([])
    chapters[-1].append(line)

with tarfile.open(os.path.join("output", "chapters.tar"), "w", format=tarfile.USTAR_FORMAT) as out:
    for number, chapter in enumerate(chapters, start=1):
        data = "".join(chapter).encode("utf-8")
        info = tarfile.TarInfo(f"{number:04}.txt")
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        out.addfile(info, io.BytesIO(data))

print(f"INFO: {len(chapters)} chapters", file=sys.stderr)
