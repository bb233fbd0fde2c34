"""Example python-map task script: for each number in the chunk, say whether it is prime.

Runs in a scratch directory holding input/ (this chunk's lines) and an empty output/;
params arrive as JSON in IDLEGRID_PARAMS. Exit status 0 means success.
"""
import json
import os

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
label = params.get("label", "prime")


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


(chunk,) = os.listdir("input")
with open(os.path.join("input", chunk)) as src, open("output/result.txt", "w") as out:
    for line in src:
        n = int(line)
        out.write(f"{n} {label if is_prime(n) else '-'}\n")
