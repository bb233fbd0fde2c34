"""monte-carlo-pi: each chunk is JSON lines, one item of the sweep a line
({"index": 0, "seed": 7, "params": {"samples": 10000}}). For each item, throw `samples` random
points at the unit square, seeded by the item's seed, and count those inside the quarter
circle: 4 * inside / samples estimates pi.

The output is one JSON object of numbers, {"pi": {"<samples>": estimate}}, which the grid's
`stats` fan-in turns into the mean, spread and 95% confidence interval of every seed's
estimate, for each number of samples. A chunk of several items (chunk_items > 1) writes the
mean of its items' estimates.

Python's random.Random(seed) gives the same numbers on every device and Python version, so
two devices given the same item write the same bytes: that is how the grid checks them.
"""
import json
import os
import random

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
default_samples = params.get("samples", 100_000)

estimates = {}
with open(os.path.join("input", "items.jsonl"), encoding="utf-8") as items:
    for line in items:
        item = json.loads(line)
        samples = int(item["params"].get("samples", default_samples))
        if samples < 1:
            raise SystemExit(f"item {item['index']}: samples must be at least 1")
        rng = random.Random(item["seed"])
        inside = 0
        for _ in range(samples):
            x = rng.random()
            y = rng.random()
            if x * x + y * y <= 1.0:
                inside += 1
        estimates.setdefault(str(samples), []).append(4.0 * inside / samples)

result = {"pi": {k: sum(v) / len(v) for k, v in sorted(estimates.items())}}
with open(os.path.join("output", "pi.json"), "w", encoding="utf-8") as out:
    json.dump(result, out, sort_keys=True)
