"""chapters' task: one chapter in (input/book.txt holds just it), one JSON line out: its title
(the first non-empty line), its words, its sentences (runs ending in . ! or ?) and its longest
word (the first of the longest). IDLEGRID_TASK names the chapter's file in the partition
step's output.
"""
import json
import os
import re

task = json.loads(os.environ.get("IDLEGRID_TASK", "{}"))
with open(os.path.join("input", "book.txt"), encoding="utf-8", errors="replace") as chapter:
    text = chapter.read()

title = next((line.strip() for line in text.splitlines() if line.strip()), "")
words = re.findall(r"[A-Za-z0-9']+", text)
longest = ""
for word in words:
    if len(word) > len(longest):
        longest = word
line = {
    "chapter": task.get("name", ""),
    "title": title,
    "words": len(words),
    "sentences": len(re.findall(r"[.!?]+(?:\s|$)", text)),
    "longest": longest,
}
with open(os.path.join("output", "chapter.jsonl"), "w", encoding="utf-8") as out:
    out.write(json.dumps(line, sort_keys=True) + "\n")
