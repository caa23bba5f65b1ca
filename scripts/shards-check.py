#!/usr/bin/env python3
"""The deterministic checks of scripts/shards-e2e.sh over its work directory, once the shards
have run and been merged:

    python3 scripts/shards-check.py WORK SHARDS

  - the shards' plans (plan-I.txt, `run --plan-only --shard I/SHARDS`) are disjoint in users
    and together are the scenario's (plan-whole.txt), line for line;
  - each shard's history (shards/*-shard-I-of-SHARDS/history.json) has only its own users;
  - the merged histograms (merged/*/histograms.json) are the exact sum of the shards', bucket by
    bucket, and the merged report plans the scenario's users.
Prints a line for the plans and one for the histograms; each failed check is a
"shards-e2e: FAIL" line on stderr and exit 1.
"""
import glob
import json
import os
import sys
from collections import Counter


def load(path):
    with open(path) as f:
        return json.load(f)


def plan(work, name):
    """A plan file's lines as (user, drop, arrival) tuples."""
    with open(os.path.join(work, name)) as f:
        return [tuple(map(int, line.split())) for line in f if line.strip()]


def buckets(path):
    """A histograms.json as {(operation, outcome): Counter(bucket value -> count)}."""
    out = {}
    for op, outcomes in load(path)["histograms"].items():
        for outcome, h in outcomes.items():
            c = out.setdefault((op, outcome), Counter())
            for value, count in h["buckets"]:
                c[value] += count
    return out


def main(work, shards):
    whole = plan(work, "plan-whole.txt")
    slices = [plan(work, f"plan-{i}.txt") for i in range(shards)]
    problems = []
    users = [set(u for u, _, _ in s) for s in slices]
    for i in range(shards):
        for j in range(i + 1, shards):
            if users[i] & users[j]:
                problems.append(f"shards {i} and {j} share users {sorted(users[i] & users[j])[:5]}")
    if Counter(x for s in slices for x in s) != Counter(whole):
        problems.append("the shards' (user, drop, arrival) lines together are not the scenario's")
    print(f"  plans: {len(whole)} users in the scenario; shards {[len(s) for s in slices]}; disjoint and complete: "
          f"{'yes' if not problems else 'NO'}")

    dirs = sorted(glob.glob(os.path.join(work, "shards", f"*-shard-*-of-{shards}")))
    for d in dirs:
        index = load(os.path.join(d, "shard.json"))["shard"]["index"]
        seen = set(r["user"] for r in load(os.path.join(d, "history.json"))["records"])
        if not seen <= users[index]:
            problems.append(f"shard {index}'s history has users outside its plan: {sorted(seen - users[index])[:5]}")

    summed = {}
    for d in dirs:
        for key, c in buckets(os.path.join(d, "histograms.json")).items():
            summed.setdefault(key, Counter()).update(c)
    merged_path = glob.glob(os.path.join(work, "merged", "*", "histograms.json"))
    merged = buckets(merged_path[0]) if merged_path else {}
    if merged != summed:
        problems.append("the merged histograms are not the exact sum of the shards'")
    # Every request but a shed one is in its operation's "all" histogram as well as its outcome's.
    total = sum(sum(c.values()) for (op, outcome), c in merged.items() if outcome == "all")
    print(f"  histograms: merged = sum of the {len(dirs)} shards' bucket by bucket: {'yes' if merged == summed else 'NO'} "
          f"({total} requests)")
    report = load(glob.glob(os.path.join(work, "merged", "*", "report.json"))[0])
    planned = report["strategies"][0]["users"]["planned"]
    if planned != len(whole):
        problems.append(f"the merged report plans {planned} users, the scenario {len(whole)}")
    for p in problems:
        print(f"shards-e2e: FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
