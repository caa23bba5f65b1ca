#!/usr/bin/env python3
"""What scripts/http-bench.sh writes and reads in Python: the load generator's scenario for
part 1, and the figures it prints from a run's report.json (the first strategy's: the bench
runs one at a time).

    scenario WRK_RATE SECONDS        the generator's scenario (YAML) on stdout
    generator REPORT WRK_CPU         the generator's requests/s and CPU, and its ratio to wrk's
    summary REPORT LABEL             one line of a flash-sale run's figures
    answers REPORT                   its answers per second
    operations REPORT                purchase and cancel: sent, shed, ok, p99
    rounds SLICES                    part 2's interleaved rounds ("ROUND KEY RATE" lines): each
                                     measure's median requests/s and each ratio's median within
                                     a round, with its range over the rounds
    pairs PAIRS TOP BOTTOM LABEL T   part 3's pairs: the median of TOP ÷ BOTTOM within each
                                     pair, against the target T
"""
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def scenario(wrk_rate, seconds):
    # The generator at more than the server can answer, so that like wrk it always has every
    # connection busy: buyers arrive at twice wrk's rate and wait for a free connection.
    arrivals = int(float(wrk_rate) * 2)
    seconds = int(seconds)
    print(f"""name: generator-cost
description: every buyer after the first is answered sold_out from memory, as wrk's requests are
seed: 1
target: inprocess
strategy: actor
drops:
  - {{name: one unit, priceCents: 100, stock: 1, reserveTTL: 100ms}}
users:
  - count: {arrivals * seconds}
    drop: one unit
    arrival: {{rate: {{perSecond: {arrivals}, for: {seconds}s}}}}
    thinkTime: {{uniform: [1ms, 2ms]}}
    afterReserve: {{purchase: 0, cancel: 0, abandon: 1}}
    onRejected: {{retries: 0, backoff: 1ms}}
limits: {{maxDuration: {seconds + 2}s}}""")


def generator(path, wrk_cpu):
    # Its CPU is the harness's own over the load only, as the report gives it.
    s = load(path)["strategies"][0]
    rate = round(s["throughput"]["requestsPerSecond"])
    cpu = round(s["timing"]["harnessCPUMicrosecondsPerRequest"], 2)
    print(f"  {'stockdrop run (the generator), same request':<52} {rate:>10} req/s  its CPU {cpu:>6} µs/request")
    wrk_cpu = float(wrk_cpu)
    print(f"  generator CPU per request ÷ wrk's: {cpu / wrk_cpu if wrk_cpu > 0 else 0:.2f} (target ≤ 3, goal 2)")


def summary(path, label):
    """Answers/s; reserve p99 from the intended send, from the send, and the server's own; shed;
    purchases refused expired though sent in time; whether the run was harness-limited; its
    verdict (the run's exit code)."""
    report = load(path)
    s = report["strategies"][0]
    reserve = s["operations"]["reserve"]
    timing = s.get("timing") or {}
    op = (timing.get("operations") or {}).get("reserve") or {}
    server = op.get("server") or {}
    expired = s.get("expiredPurchases") or {}
    shed = sum(o.get("shed", 0) for o in s["operations"].values())
    print(f"  {label:<34} answers/s {s['throughput']['answersPerSecond']:>8.0f}  reserve p99 {reserve['latencyMilliseconds']['p99']:>8.1f} ms"
          f" (from send {op.get('fromSendMilliseconds', {}).get('p99', 0):.1f}, server's own {server.get('p99Milliseconds', 0):.1f})"
          f"  shed {shed}  expired in time {expired.get('sentInTime', 0)}"
          f"  {'HARNESS-LIMITED ' if timing.get('harnessLimited') else ''}exit {report['exitCode']}")


def answers(path):
    print(load(path)["strategies"][0]["throughput"]["answersPerSecond"])


def operations(path):
    s = load(path)["strategies"][0]
    line = []
    for name in ("purchase", "cancel"):
        o = s["operations"].get(name, {})
        line.append(f"{name} {o.get('count', 0)} sent, {o.get('shed', 0)} shed, {o.get('ok', 0)} ok,"
                    f" p99 {o.get('latencyMilliseconds', {}).get('p99', 0):.1f} ms")
    print("    " + "; ".join(line))


def read_rounds(path):
    """{round: {key: rate}} from "ROUND KEY RATE" lines."""
    rates = {}
    with open(path) as f:
        for line in f:
            round_, key, rate = line.split()
            rates.setdefault(int(round_), {})[key] = float(rate)
    return rates


def ratios_within(rates, top, bottom):
    """TOP ÷ BOTTOM within each round that measured both."""
    return [r[top] / r[bottom] for r in rates.values() if r.get(bottom, 0) > 0 and top in r]


def pairs(path, top, bottom, label, target):
    ratios = ratios_within(read_rounds(path), top, bottom)
    print(f"  {label}: {statistics.median(ratios):.2f} (pairs: {', '.join(f'{x:.2f}' for x in ratios)})"
          f" (target ≥ {float(target):.2f})")


def rounds(path):
    rates = read_rounds(path)
    labels = {"bare": "bare Hummingbird: GET /health", "warning": "stockdrop serve --log-level warning: GET /health",
              "reserve": "stockdrop serve: POST reserve answered sold_out",
              "info": "stockdrop serve, default log level: GET /health"}
    for key, label in labels.items():
        values = [r[key] for r in rates.values() if key in r]
        print(f"  {label:<52} {statistics.median(values):>10.0f} req/s  (rounds: {min(values):.0f}–{max(values):.0f})")
    ratios = [("GET /health ÷ bare Hummingbird", "warning", "bare", 0.80),
              ("reserve from memory ÷ bare Hummingbird's /health", "reserve", "bare", 0.50),
              ("GET /health at the default log level ÷ at warning", "info", "warning", 0.90)]
    for label, top, bottom, target in ratios:
        values = ratios_within(rates, top, bottom)
        print(f"  {label}: {statistics.median(values):.2f} (rounds: {min(values):.2f}–{max(values):.2f})"
              f" (target ≥ {target:.2f})")


if __name__ == "__main__":
    # Plain argv, not argparse: a label such as "--latency-target-ms 0" is an argument.
    commands = {"scenario": scenario, "generator": generator, "summary": summary, "answers": answers,
                "operations": operations, "rounds": rounds, "pairs": pairs}
    commands[sys.argv[1]](*sys.argv[2:])
