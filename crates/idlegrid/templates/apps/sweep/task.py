"""A sweep app: the job's input describes parameter sets and seeds, e.g.
{"grid": {"mu": [0, 1]}, "seeds": 16}; the grid makes one task per item (the `sweep` fan-out),
each chunk JSON lines of {"index", "seed", "params"}.

Write one JSON object of numbers to output/: the `stats` fan-in gives, for every key, the
count, mean, standard deviation and 95% confidence interval over all the tasks. Seed every
random number from the item, never from the clock: the app asks for replication, so two
devices must write the same bytes for the same item.
"""
import json
import os
import random

params = json.loads(os.environ.get("IDLEGRID_PARAMS", "{}"))
draws = int(params.get("draws", 1000))

results = {}
with open(os.path.join("input", "items.jsonl"), encoding="utf-8") as items:
    for line in items:
        item = json.loads(line)
        mu = float(item["params"].get("mu", 0.0))
        rng = random.Random(item["seed"])
        mean = sum(rng.gauss(mu, 1.0) for _ in range(draws)) / draws
        results.setdefault(f"mu={mu}", []).append(mean)

with open(os.path.join("output", "result.json"), "w", encoding="utf-8") as out:
    json.dump({"mean": {k: sum(v) / len(v) for k, v in sorted(results.items())}}, out)
