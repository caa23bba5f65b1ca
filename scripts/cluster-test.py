#!/usr/bin/env python3
"""Real-process tests of scale-out: several `stockdrop serve` instances on one PostgreSQL and
one Redis, behind HAProxy, started by `scripts/cluster.sh start N` (N >= 2; 3 is the
reference). It reads the cluster's env file and runs:

  a. two instances, no balancer: stock 1, a hold on A refuses B's buyer, freed on A, sold on B
  b. a hold made on one instance is bought, and another cancelled, through the other one
  c. SIGKILL of a drop's owner under load through the balancer: the takeover time, then no
     oversell and every acknowledged hold in the database; the instance is restarted after
  d. SIGSTOP of a drop's owner past its lease: another instance takes the drop over, and the
     claims the stopped owner finds in its socket when it wakes are answered correctly (its
     stale batch fenced)

Each check prints one PASS or FAIL line with its figures; the exit status is 1 if any
failed (2 for a usage or environment problem).

    scripts/cluster.sh start 3 && python3 scripts/cluster-test.py; status=$?; scripts/cluster.sh stop

Options: --env PATH (default $CLUSTER_DIR/env, else .stockdrop/cluster/env), --only a,b,c,d.
Standard library only; psql (from the postgresql package) reads the database.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HTTP_TIMEOUT_S = 5.0
# 503 codes that promise nothing was applied (the claim may be retried as new) and the one
# that says it may have been (a retry finds it).
NOTHING_APPLIED_503 = {"unavailable", "overloaded", "shutting_down", "owner_changing"}
RETRYABLE_503 = NOTHING_APPLIED_503 | {"outcome_unknown"}


class SetupError(Exception):
    """The cluster or the environment is not usable; not a verdict on the product."""


# ----------------------------------------------------------------------------- reporting

class Results:
    def __init__(self):
        self.failures = []
        self.passes = 0

    def check(self, test, name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'} {test}: {name}{': ' + detail if detail else ''}", flush=True)
        if ok:
            self.passes += 1
        else:
            self.failures.append(f"{test}: {name}")
        return ok

    def note(self, test, text):
        print(f"     {test}: {text}", flush=True)


# ----------------------------------------------------------------------------- the cluster

def read_env(path):
    """The `export NAME='value'` lines scripts/cluster.sh writes."""
    env = {}
    with open(path) as file:
        for line in file:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            if words and words[0] == "export":
                words = words[1:]
            for word in words:
                name, _, value = word.partition("=")
                env[name] = value
    return env


class Cluster:
    def __init__(self, env_path):
        self.env_path = env_path
        self.reload()

    def reload(self):
        """Again after a restart: the restarted instance has a new pid."""
        if not os.path.exists(self.env_path):
            raise SetupError(f"no {self.env_path}: start the cluster first (scripts/cluster.sh start 3)")
        env = read_env(self.env_path)
        self.env = env
        self.balancer = env["BALANCER_URL"]
        self.urls = env["INSTANCE_URLS"].split()
        self.ids = env["INSTANCE_IDS"].split()
        self.pids = [int(pid) for pid in env["INSTANCE_PIDS"].split()]
        self.database_url = env["DATABASE_URL"]
        self.secret = env["STOCKDROP_JWT_SECRET"]
        self.bin = env.get("STOCKDROP_BIN") or os.path.join(ROOT, ".build/debug/stockdrop")
        self.lease_ms = int(env.get("LEASE_MS") or 3000)
        self.dir = env.get("CLUSTER_DIR") or os.path.dirname(self.env_path)

    def index_of(self, owner):
        # A lease owner is the instance's name and its process's incarnation: s1~k3j9...
        name = (owner or "").split("~", 1)[0]
        return self.ids.index(name) if name in self.ids else None

    def restart(self, k):
        """scripts/cluster.sh restart K (1-based), then the new pid."""
        environment = dict(os.environ, CLUSTER_DIR=self.dir)
        done = subprocess.run([os.path.join(ROOT, "scripts/cluster.sh"), "restart", str(k)], env=environment,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
        self.reload()
        return done.returncode, (done.stdout + done.stderr).strip()


# ----------------------------------------------------------------------------- tokens

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Tokens:
    """HS256 tokens shaped like `stockdrop token`'s (sub, name, role, exp, iat), minted here
    because a process per buyer would cost more than the test. If the servers refuse them,
    `stockdrop token` mints them instead."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.cache = {}
        self.use_binary = False

    def _mint_here(self, user, role):
        now = int(time.time())
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {"sub": str(user), "name": f"cluster-test {user}", "role": role, "exp": now + 3600, "iat": now}
        signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
            b64url(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self.cluster.secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + b64url(signature)

    def _mint_binary(self, user, role):
        done = subprocess.run([self.cluster.bin, "token", "--user", str(user), "--role", role],
                              env=dict(os.environ, STOCKDROP_JWT_SECRET=self.cluster.secret),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise SetupError(f"stockdrop token failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()[-1]

    def get(self, user, role="user"):
        key = (user, role)
        if key not in self.cache:
            self.cache[key] = self._mint_binary(user, role) if self.use_binary else self._mint_here(user, role)
        return self.cache[key]

    def verify(self, url):
        """One authenticated read; falls back to `stockdrop token` on a 401."""
        answer = http("GET", f"{url}/v1/reservations/me", self.get(1))
        if answer.status == 401:
            self.use_binary, self.cache = True, {}
            answer = http("GET", f"{url}/v1/reservations/me", self.get(1))
        if answer.status != 200:
            raise SetupError(f"an authenticated read on {url} answered {answer.describe()}")


# ----------------------------------------------------------------------------- HTTP

class Answer:
    def __init__(self, status, body=None, error=None, sent=0.0, answered=0.0):
        self.status = status      # 0: no HTTP answer (timeout, refused, reset)
        self.body = body
        self.error = error
        self.sent = sent          # time.monotonic() at the send
        self.answered = answered  # time.monotonic() at the answer

    @property
    def code(self):
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None

    def field(self, name):
        return self.body.get(name) if isinstance(self.body, dict) else None

    def describe(self):
        if self.status == 0:
            return f"no answer ({self.error})"
        return f"{self.status} {self.code}" if self.code else str(self.status)

    def detail(self):
        """describe() plus the error's message, for one answer's PASS/FAIL line."""
        if self.code and self.status >= 400:
            message = str(self.body["error"].get("message", ""))[:160]
            return f"{self.describe()} ({message})" if message else self.describe()
        return self.describe()


def http(method, url, token=None, body=None, headers=None, timeout=HTTP_TIMEOUT_S):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    sent = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except Exception as error:  # timeout, refused, reset: no answer
        return Answer(0, error=f"{type(error).__name__}: {error}", sent=sent, answered=time.monotonic())
    answered = time.monotonic()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Answer(status, parsed, sent=sent, answered=answered)


def metric(url, name):
    """The sum of every series of metric NAME on URL/metrics; None if absent or unreadable."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=HTTP_TIMEOUT_S) as response:
            text = response.read().decode()
    except Exception:
        return None
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


# ----------------------------------------------------------------------------- database

def psql(cluster, sql):
    done = subprocess.run(["psql", cluster.database_url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SetupError(f"psql failed ({sql}): {done.stderr.strip()}")
    return done.stdout.strip()


def drop_row(cluster, drop):
    total, sold, reserved = psql(cluster, f"select total_stock, sold, reserved from drops where id = {int(drop)}").split("|")
    return int(total), int(sold), int(reserved)


def row_counts(cluster, drop):
    """(ACTIVE rows, PURCHASED rows, users with more than one ACTIVE row) of the drop."""
    active, purchased = psql(cluster, f"""select count(*) filter (where status = 'ACTIVE'),
        count(*) filter (where status = 'PURCHASED') from reservations where drop_id = {int(drop)}""").split("|")
    doubled = psql(cluster, f"""select count(*) from (select user_id from reservations
        where drop_id = {int(drop)} and status = 'ACTIVE' group by user_id having count(*) > 1) d""")
    return int(active), int(purchased), int(doubled)


def has_lease_columns(cluster):
    return psql(cluster, """select count(*) from information_schema.columns
        where table_name = 'drops' and column_name in ('lease_owner', 'lease_epoch', 'lease_expires_at')""") == "3"


def lease_owner(cluster, drop, wait_s=3.0):
    """The drop's lease owner once one is recorded (polled: it may be written just after the
    first claim is answered)."""
    deadline = time.monotonic() + wait_s
    while True:
        owner = psql(cluster, f"select coalesce(lease_owner, '') from drops where id = {int(drop)}")
        if owner or time.monotonic() > deadline:
            return owner or None
        time.sleep(0.1)


def stock_checks(results, test, cluster, drop):
    """What must hold in the database whatever happened: sold + reserved <= stock, the
    counters equal the rows, one live hold per user, and the project's checker agrees."""
    total, sold, reserved = drop_row(cluster, drop)
    active, purchased, doubled = row_counts(cluster, drop)
    results.check(test, "no oversell", sold + reserved <= total and active + purchased <= total,
                  f"drop {drop}: stock {total}, sold {sold} + reserved {reserved} = {sold + reserved}; "
                  f"rows ACTIVE {active} + PURCHASED {purchased} = {active + purchased}")
    results.check(test, "counters match rows", sold == purchased and reserved == active,
                  f"sold {sold} vs {purchased} PURCHASED rows, reserved {reserved} vs {active} ACTIVE rows")
    results.check(test, "one live hold per user", doubled == 0, f"{doubled} users with two ACTIVE holds")
    done = subprocess.run([cluster.bin, "check", "--url", cluster.database_url, "--drops", str(drop)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if "BROKEN" in line or line.startswith("     e.g.")]
    results.check(test, "stockdrop check (invariants 1-4 over the drop's timeline)", done.returncode == 0,
                  f"exit {done.returncode}" + ("; " + " | ".join(lines[:6]) if lines else "")
                  + ("; " + done.stderr.strip()[-300:] if done.returncode not in (0, 1) else ""))


# ----------------------------------------------------------------------------- helpers

class Context:
    def __init__(self, cluster, results):
        self.cluster = cluster
        self.results = results
        self.tokens = Tokens(cluster)
        self.admin = 900_000_001
        # Users of this run: fresh ids each run, so a rerun on the same database never finds
        # another run's holds (limits are per drop, but keep the histories apart anyway).
        self.next_user = (int(time.time()) % 100_000) * 10_000 + 1
        self.lock = threading.Lock()

    def new_user(self):
        with self.lock:
            user = self.next_user
            self.next_user += 1
        return user

    def create_drop(self, url, name, stock, ttl_ms=60_000, limit=1):
        body = {"name": name, "priceCents": 1500, "totalStock": stock, "perUserLimit": limit,
                "reserveTTLMilliseconds": ttl_ms}
        answer = http("POST", f"{url}/v1/drops", self.tokens.get(self.admin, "admin"), body)
        if answer.status != 201 or not isinstance(answer.field("id"), int):
            raise SetupError(f"creating a drop on {url} answered {answer.describe()}: {answer.body}")
        return answer.field("id")

    def reserve(self, url, drop, user, timeout=HTTP_TIMEOUT_S):
        return http("POST", f"{url}/v1/drops/{drop}/reserve", self.tokens.get(user), timeout=timeout)

    def purchase(self, url, drop, user, key):
        return http("POST", f"{url}/v1/drops/{drop}/purchase", self.tokens.get(user), headers={"Idempotency-Key": key})

    def cancel(self, url, drop, user):
        return http("DELETE", f"{url}/v1/drops/{drop}/reservation", self.tokens.get(user))

    def drop_view(self, url, drop):
        return http("GET", f"{url}/v1/drops/{drop}")


def histogram(answers):
    counts = {}
    for answer in answers:
        key = answer.describe() if answer.status else "no answer"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{key} x{count}" for key, count in sorted(counts.items(), key=lambda item: -item[1])) or "none"


def rows_of(cluster, ids):
    """{reservation id: (drop, user, status)} for these ids."""
    if not ids:
        return {}
    rows = {}
    for line in psql(cluster, f"select id, drop_id, user_id, status from reservations where id in ({','.join(str(int(i)) for i in ids)})").splitlines():
        rid, drop, user, status = line.split("|")
        rows[int(rid)] = (int(drop), int(user), status)
    return rows


def users_with_rows(cluster, drop, users):
    if not users:
        return set()
    text = psql(cluster, f"select distinct user_id from reservations where drop_id = {int(drop)} and user_id in ({','.join(str(int(u)) for u in users)})")
    return {int(line) for line in text.splitlines() if line}


def acknowledged_checks(results, test, cluster, drop, records):
    """records: (user, Answer) of reserves. Every 201 has its row (this drop, this user); every
    refusal that promises nothing was applied left no row for its user (each user is used
    once). Other failures (no answer, outcome_unknown, HAProxy's 502) may go either way."""
    ok = [(user, answer) for user, answer in records if answer.status == 201]
    rows = rows_of(cluster, [answer.field("id") for _, answer in ok if isinstance(answer.field("id"), int)])
    missing = [(user, answer.field("id")) for user, answer in ok
               if rows.get(answer.field("id"), (None, None, None))[:2] != (drop, user)]
    results.check(test, "every 201 has its reservation row", not missing,
                  f"{len(ok) - len(missing)} of {len(ok)} acknowledged holds found"
                  + (f"; missing (user, reservation): {missing[:5]}" if missing else ""))
    refused = [user for user, answer in records
               if (answer.status == 409 and answer.code == "sold_out")
               or (answer.status == 503 and answer.code in NOTHING_APPLIED_503)]
    applied = users_with_rows(cluster, drop, refused)
    results.check(test, "refusals that apply nothing left no row", not applied,
                  f"{len(refused)} such refusals, {len(applied)} with a row" + (f": users {sorted(applied)[:5]}" if applied else ""))


def valid_reserve_answer(answer):
    """An answer a reserve may get while an owner dies: acknowledged, refused, or a failure
    that says to retry (HAProxy's 502 and 504 carry outcome_unknown; no answer is a timeout)."""
    if answer.status == 201:
        return True
    if answer.status == 409:
        return answer.code == "sold_out"
    if answer.status in (502, 503, 504):
        return answer.code in RETRYABLE_503
    return answer.status == 0


# ----------------------------------------------------------------------------- the tests

def test_a(ctx):
    """Two instances, no balancer: stock 1 through A and B."""
    t, r, c = "a", ctx.results, ctx.cluster
    a, b = c.urls[0], c.urls[1]
    drop = ctx.create_drop(a, "cluster-test a", stock=1)
    x, y = ctx.new_user(), ctx.new_user()
    r.note(t, f"drop {drop} (stock 1) created through A={a}; B={b}; users x={x}, y={y}")

    first = ctx.reserve(a, drop, x)
    r.check(t, "x reserves through A", first.status == 201, first.detail())
    refused = ctx.reserve(b, drop, y)
    r.check(t, "y reserves through B while x holds the unit: 409 sold_out",
            refused.status == 409 and refused.code == "sold_out", refused.detail())
    cancelled = ctx.cancel(a, drop, x)
    r.check(t, "x cancels through A", cancelled.status == 200 and cancelled.field("status") == "CANCELLED",
            f"{cancelled.detail()}, status {cancelled.field('status')}")
    second = ctx.reserve(b, drop, y)
    r.check(t, "y reserves through B after the cancel", second.status == 201, second.detail())
    for name, url in (("A", a), ("B", b)):
        view = ctx.drop_view(url, drop)
        r.check(t, f"GET the drop through {name}: availableStock 0, reservedStock 1",
                view.status == 200 and view.field("availableStock") == 0 and view.field("reservedStock") == 1,
                f"{view.detail()}, availableStock {view.field('availableStock')}, reservedStock {view.field('reservedStock')}")
    holders = psql(c, f"select user_id from reservations where drop_id = {drop} and status = 'ACTIVE'").split()
    r.check(t, "the database: y holds the unit", holders == [str(y)], f"ACTIVE holders {holders}")
    stock_checks(r, t, c, drop)


def test_b(ctx):
    """A hold made on one instance, bought (and another cancelled) through the other."""
    t, r, c = "b", ctx.results, ctx.cluster
    a, b = c.urls[0], c.urls[1]
    drop = ctx.create_drop(a, "cluster-test b", stock=10)
    buyer, canceller = ctx.new_user(), ctx.new_user()
    r.note(t, f"drop {drop} (stock 10); A={a}, B={b}")

    hold = ctx.reserve(a, drop, buyer)
    r.check(t, "reserve through A", hold.status == 201, hold.detail())
    key = f"cluster-test-{uuid.uuid4()}"
    bought = ctx.purchase(b, drop, buyer, key)
    r.check(t, "purchase of that hold through B", bought.status == 201 and bought.field("reservationId") == hold.field("id"),
            f"{bought.detail()}, reservationId {bought.field('reservationId')} (hold {hold.field('id')})")
    replay = ctx.purchase(a, drop, buyer, key)
    r.check(t, "the same Idempotency-Key through A replays it", replay.status == 200 and replay.field("id") == bought.field("id"),
            f"{replay.detail()}, purchase {replay.field('id')} (first {bought.field('id')})")

    hold2 = ctx.reserve(b, drop, canceller)
    r.check(t, "reserve through B", hold2.status == 201, hold2.detail())
    cancelled = ctx.cancel(a, drop, canceller)
    r.check(t, "cancel of that hold through A",
            cancelled.status == 200 and cancelled.field("id") == hold2.field("id") and cancelled.field("status") == "CANCELLED",
            f"{cancelled.detail()}, reservation {cancelled.field('id')} (hold {hold2.field('id')}), status {cancelled.field('status')}")

    rows = rows_of(c, [i for i in (hold.field("id"), hold2.field("id")) if isinstance(i, int)])
    statuses = [rows.get(hold.field("id"), (0, 0, None))[2], rows.get(hold2.field("id"), (0, 0, None))[2]]
    r.check(t, "the database: PURCHASED and CANCELLED", statuses == ["PURCHASED", "CANCELLED"], f"rows {statuses}")
    total, sold, reserved = drop_row(c, drop)
    r.check(t, "the database: sold 1, reserved 0", (sold, reserved) == (1, 0), f"sold {sold}, reserved {reserved}")
    stock_checks(r, t, c, drop)


def test_c(ctx):
    """SIGKILL of the owner while buyers reserve through the balancer."""
    killed = []
    try:
        kill_owner_under_load(ctx, killed)
    finally:
        # Whatever happened after the kill, the next test gets the whole cluster back.
        for k in killed:
            status, output = ctx.cluster.restart(k + 1)
            ctx.results.check("c", f"scripts/cluster.sh restart {k + 1}", status == 0,
                              output.splitlines()[-1] if output else f"exit {status}")


def kill_owner_under_load(ctx, killed):
    t, r, c = "c", ctx.results, ctx.cluster
    if not has_lease_columns(c):
        r.check(t, "drops has lease columns", False, "no lease_owner/lease_epoch/lease_expires_at: this binary predates leases")
        return
    rate_per_s, threads, ttl_ms = 50, 4, 2_000
    drop = ctx.create_drop(c.balancer, "cluster-test c", stock=200, ttl_ms=ttl_ms)
    first_user = ctx.new_user()
    first = ctx.reserve(c.balancer, drop, first_user)
    if not r.check(t, "first reserve through the balancer", first.status == 201, first.detail()):
        return
    owner = lease_owner(c, drop)
    k = c.index_of(owner)
    if not r.check(t, "the drop has an owner among the instances", k is not None, f"lease_owner {owner!r}, instances {c.ids}"):
        return
    pid = c.pids[k]
    r.note(t, f"drop {drop} (stock 200, TTL {ttl_ms} ms) owned by {owner} (pid {pid}); {rate_per_s} reserves/s through {c.balancer}")

    # Buyers at a steady rate, each a new user: the stock (200) outlasts what the rate can hold
    # within a TTL (100), so after the kill a 201 means the drop is served again, not that
    # stock came back.
    records = [(first_user, first)]
    lock, stop = threading.Lock(), threading.Event()
    period = threads / rate_per_s

    def buyer():
        # Each thread at most one send per period, never catching up after slow answers: a
        # burst of the sends owed for the outage would hold the whole stock (sold_out) and
        # blur what the takeover time measures.
        while not stop.is_set():
            user = ctx.new_user()
            answer = ctx.reserve(c.balancer, drop, user)
            with lock:
                records.append((user, answer))
            stop.wait(max(0.0, period - (answer.answered - answer.sent)))

    workers = [threading.Thread(target=buyer, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    killed_at = takeover_at = None
    try:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        killed.append(k)
        # Until a reserve sent after the kill is acknowledged, then 5 s more; 30 s at most.
        while time.monotonic() < killed_at + 30:
            with lock:
                after = [a for _, a in records if a.sent >= killed_at and a.status == 201]
            if after and takeover_at is None:
                takeover_at = min(a.answered for a in after)
            if takeover_at is not None and time.monotonic() >= takeover_at + 5:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=HTTP_TIMEOUT_S + 1)

    answers = [a for _, a in records]
    before = [a for a in answers if a.sent < killed_at]
    during = [a for a in answers if a.sent >= killed_at and (takeover_at is None or a.sent < takeover_at)]
    after = [a for a in answers if takeover_at is not None and a.sent >= takeover_at]
    r.note(t, f"before the kill ({len(before)}): {histogram(before)}")
    r.note(t, f"kill to takeover ({len(during)}): {histogram(during)}")
    r.note(t, f"5 s after the takeover ({len(after)}): {histogram(after)}")
    r.check(t, "reserves succeed before the kill", any(a.status == 201 for a in before), f"{sum(a.status == 201 for a in before)} of {len(before)}")
    r.check(t, "a reserve sent after the kill is acknowledged (takeover)", takeover_at is not None,
            f"takeover {1000 * (takeover_at - killed_at):.0f} ms after the SIGKILL (lease {c.lease_ms} ms)" if takeover_at
            else f"no 201 within 30 s of the SIGKILL")
    if takeover_at is not None:
        # sold_out is a served answer too (the stock is sized so that it should not happen).
        served = sum(a.status == 201 or (a.status == 409 and a.code == "sold_out") for a in after)
        r.check(t, "the drop stays served for 5 s after the takeover (>= 90% of answers 201 or sold_out)",
                bool(after) and served >= 0.9 * len(after),
                f"{served} of {len(after)} ({sum(a.status == 201 for a in after)} of them 201)")
    wrong = [a for a in answers if not valid_reserve_answer(a)]
    r.check(t, "every answer is a hold, sold_out, or a retryable failure", not wrong,
            f"{len(answers)} answers" + (f"; wrong: {histogram(wrong)}" if wrong else ""))

    acknowledged_checks(r, t, c, drop, records)
    # The checker judges every instant, and wants the holds expired: wait out the TTL and a sweep.
    time.sleep(ttl_ms / 1000 + 1.5)
    stock_checks(r, t, c, drop)


def test_d(ctx):
    """SIGSTOP of the owner past its lease; what it answers when it wakes."""
    t, r, c = "d", ctx.results, ctx.cluster
    if not has_lease_columns(c):
        r.check(t, "drops has lease columns", False, "no lease_owner/lease_epoch/lease_expires_at: this binary predates leases")
        return
    drop = ctx.create_drop(c.urls[0], "cluster-test d", stock=5)
    first_user = ctx.new_user()
    first = ctx.reserve(c.urls[0], drop, first_user)
    if not r.check(t, "first reserve", first.status == 201, first.detail()):
        return
    owner = lease_owner(c, drop)
    k = c.index_of(owner)
    if not r.check(t, "the drop has an owner among the instances", k is not None, f"lease_owner {owner!r}, instances {c.ids}"):
        return
    a_url, a_pid = c.urls[k], c.pids[k]
    kb = next(i for i in range(len(c.urls)) if i != k)
    b_url = c.urls[kb]
    epoch_before = psql(c, f"select lease_epoch from drops where id = {drop}")
    r.note(t, f"drop {drop} (stock 5) owned by {owner} (A={a_url}, pid {a_pid}, epoch {epoch_before}); B={c.ids[kb]} {b_url}")

    records = [(first_user, first)]
    late, threads = [], []
    os.kill(a_pid, signal.SIGSTOP)
    try:
        time.sleep(c.lease_ms / 1000 + 1)
        # B must take the drop over: 201 after at most a few retries (same user: a retry finds
        # a hold an unanswered attempt made).
        user_b = ctx.new_user()
        began, attempts, taken = time.monotonic(), [], None
        for _ in range(8):
            answer = ctx.reserve(b_url, drop, user_b)
            attempts.append(answer)
            if answer.status == 201 or (answer.status == 409 and answer.code == "already_holding"):
                taken = answer
                break
            if not (answer.status == 0 or (answer.status == 503 and answer.code in RETRYABLE_503)):
                break
            time.sleep(0.3)
        records.append((user_b, attempts[-1]))
        # already_holding is B's answer too when an earlier attempt went unanswered but applied.
        unanswered = any(a.status == 0 or a.code == "outcome_unknown" for a in attempts[:-1])
        r.check(t, "B takes the drop over while A is stopped (201 within 4 attempts)",
                taken is not None and (taken.status == 201 or unanswered) and len(attempts) <= 4,
                f"{len(attempts)} attempts in {1000 * (time.monotonic() - began):.0f} ms: {', '.join(a.detail() for a in attempts)}")
        owner_now = psql(c, f"select coalesce(lease_owner, '') || ' epoch ' || coalesce(lease_epoch::text, '') from drops where id = {drop}")
        r.note(t, f"lease now: {owner_now}")

        # Two claims that wait in the stopped A's socket and are read when it wakes: a reserve,
        # which A may shed at once (its loops woke seconds late, past its latency target), and a
        # cancel, which is never shed: A no longer trusts its memory, asks the store in a batch
        # under its stale epoch, and that batch is fenced.
        def stale(user, kind):
            late.append((user, ctx.reserve(a_url, drop, user) if kind == "reserve" else ctx.cancel(a_url, drop, user)))
        users_late = [ctx.new_user(), ctx.new_user()]
        threads = [threading.Thread(target=stale, args=(user, kind), daemon=True)
                   for user, kind in zip(users_late, ["reserve", "cancel"])]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        r.check(t, "A answers nothing while stopped", not late, f"{len(late)} answers before SIGCONT")
    finally:
        os.kill(a_pid, signal.SIGCONT)
    for thread in threads:
        thread.join(timeout=HTTP_TIMEOUT_S + 1)
    records += late

    total, sold, reserved = drop_row(c, drop)
    late_rows = rows_of(c, [a.field("id") for _, a in late if a.status == 201 and isinstance(a.field("id"), int)])
    with_rows = users_with_rows(c, drop, [user for user, _ in late])
    for user, answer in late:
        if answer.status == 201:
            ok = late_rows.get(answer.field("id"), (None, None, None))[:2] == (drop, user)
            why = f"201, reservation {answer.field('id')} {'in' if ok else 'NOT in'} the database"
        elif answer.status == 409 and answer.code == "no_active_reservation":
            # The cancel of a user who never held: the new owner's answer.
            ok = user not in with_rows
            why = f"409 {answer.code}, {'a' if user in with_rows else 'no'} row for the user"
        elif answer.status == 409:
            # Only sold_out could be right for a new user, and only with no unit free.
            ok = answer.code == "sold_out" and sold + reserved >= total
            why = f"409 {answer.code} with sold {sold} + reserved {reserved} of {total}"
        elif answer.status == 503 and answer.code in RETRYABLE_503:
            ok = answer.code == "outcome_unknown" or user not in with_rows
            why = f"{answer.detail()}, {'a' if user in with_rows else 'no'} row for the user"
        else:
            ok, why = False, answer.detail()
        r.check(t, f"the stale claim of user {user} on A after SIGCONT", ok, why)
    for user, answer in late:
        if answer.status == 0:
            r.note(t, f"user {user}: {answer.error}")

    fenced = metric(a_url, "stockdrop_fenced_batches_total")
    r.check(t, "A fenced its stale batch (stockdrop_fenced_batches_total on A >= 1)", fenced is not None and fenced >= 1,
            f"stockdrop_fenced_batches_total {fenced if fenced is not None else 'absent'}")
    r.note(t, "A: owned_drops {}, forwarded_claims_total {}; B: owned_drops {}, lease_takeovers_total {}".format(
        metric(a_url, "stockdrop_owned_drops"), metric(a_url, "stockdrop_forwarded_claims_total"),
        metric(b_url, "stockdrop_owned_drops"), metric(b_url, "stockdrop_lease_takeovers_total")))
    ready = http("GET", f"{a_url}/ready")
    r.check(t, "A is ready again after SIGCONT", ready.status == 200, ready.detail())
    acknowledged_checks(r, t, c, drop, records)
    stock_checks(r, t, c, drop)


def test_e(ctx):
    """Claims that keep reaching the owner forwarded from one instance: the owner hands the drop over."""
    t, r, c = "e", ctx.results, ctx.cluster
    drop = ctx.create_drop(c.urls[0], "cluster-test e", stock=1000)
    first = ctx.reserve(c.urls[0], drop, ctx.new_user())
    r.check(t, "first reserve", first.status == 201, first.detail())
    owner = lease_owner(c, drop)
    k = c.index_of(owner)
    if not r.check(t, "the drop has an owner among the instances", k is not None, f"lease_owner {owner!r}"):
        return
    kb = (k + 1) % len(c.urls)
    r.note(t, f"drop {drop} owned by {owner}; every claim now goes to {c.ids[kb]} ({c.urls[kb]}), which forwards it")
    # The first reserve reached the owner directly; the policy hands a drop over once every
    # claim it answered came forwarded from one instance for 5 s (64 claims at least, no
    # pause over 2 s). Reserves through that instance, paced, until the lease moves (at most 12 s).
    time.sleep(2.1)
    answers, began = [], time.monotonic()
    while time.monotonic() - began < 12:
        answers.append(ctx.reserve(c.urls[kb], drop, ctx.new_user()))
        time.sleep(0.02)
        if len(answers) % 20 == 0 and c.index_of(lease_owner(c, drop)) == kb:
            break
    took = time.monotonic() - began
    r.note(t, f"{len(answers)} reserves through {c.ids[kb]} in {took:.1f} s: {histogram(answers)}")
    r.check(t, "the owner held on for the sustained time first (5 s)", took >= 5, f"{took:.1f} s")
    r.check(t, "every reserve is a hold or a retryable refusal while the drop changes hands",
            all(a.status == 201 or a.code in RETRYABLE_503 for a in answers), histogram(answers))
    now_owner = lease_owner(c, drop)
    r.check(t, f"the owner handed the drop to {c.ids[kb]}, where its claims come from",
            c.index_of(now_owner) == kb, f"lease_owner {now_owner!r}")
    handed = metric(c.urls[k], "stockdrop_drops_handed_back_total")
    r.check(t, "the old owner counts the hand-back (stockdrop_drops_handed_back_total >= 1)", (handed or 0) >= 1,
            f"stockdrop_drops_handed_back_total {handed}")
    later = [ctx.reserve(c.urls[kb], drop, ctx.new_user()) for _ in range(20)]
    forwarded_before = metric(c.urls[kb], "stockdrop_forwarded_claims_total") or 0
    more = [ctx.reserve(c.urls[kb], drop, ctx.new_user()) for _ in range(20)]
    forwarded_after = metric(c.urls[kb], "stockdrop_forwarded_claims_total") or 0
    r.check(t, "afterwards its claims are answered where they arrive (no forwards)",
            all(a.status == 201 for a in later + more) and forwarded_after == forwarded_before,
            f"{histogram(later + more)}; forwards {forwarded_before} -> {forwarded_after}")
    stock_checks(r, t, c, drop)


TESTS = {"a": test_a, "b": test_b, "c": test_c, "d": test_d, "e": test_e}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_env = os.path.join(os.environ.get("CLUSTER_DIR") or os.path.join(ROOT, ".stockdrop/cluster"), "env")
    parser.add_argument("--env", default=default_env, help=f"the cluster's env file (default {default_env})")
    parser.add_argument("--only", default="a,b,c,d,e", help="comma-separated tests to run (default a,b,c,d,e)")
    options = parser.parse_args()
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TESTS]
    if unknown:
        parser.error(f"unknown tests {unknown}; choose from {sorted(TESTS)}")

    results = Results()
    try:
        cluster = Cluster(options.env)
        if len(cluster.urls) < 2:
            raise SetupError(f"the tests need at least 2 instances, the cluster has {len(cluster.urls)}")
        ctx = Context(cluster, results)
        ctx.tokens.verify(cluster.balancer)
    except (SetupError, KeyError, OSError, subprocess.SubprocessError) as error:
        print(f"cluster-test: {error}", file=sys.stderr)
        return 2
    print(f"cluster-test: {len(cluster.urls)} instances {cluster.ids}, balancer {cluster.balancer}, lease {cluster.lease_ms} ms", flush=True)

    for name in chosen:
        print(f"--- {name}: {TESTS[name].__doc__}", flush=True)
        began = time.monotonic()
        try:
            TESTS[name](ctx)
        except (SetupError, subprocess.SubprocessError, ValueError) as error:
            results.check(name, "ran to the end", False, f"{type(error).__name__}: {error}")
        print(f"     {name}: {time.monotonic() - began:.1f} s", flush=True)

    print(f"cluster-test: {results.passes} passed, {len(results.failures)} failed", flush=True)
    for failure in results.failures:
        print(f"  FAILED {failure}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
