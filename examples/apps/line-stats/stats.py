"""What line-stats says of one line (imported by task.py: a bundle may hold several files)."""


def describe(line, lower=False):
    """`words<TAB>characters<TAB>longest word` for one line (without its line end)."""
    words = line.split()
    longest = max(words, key=len) if words else ""
    if lower:
        longest = longest.lower()
    return f"{len(words)}\t{len(line)}\t{longest}"
