#!/usr/bin/env python3
"""The README's "A sale by hand", run as a newcomer pastes it: the ```sh block under that
heading, read from README.md itself, runs in bash in a fresh directory (its embedded PostgreSQL
and its drop 1 are its own) with two substitutions only: `make` runs in the repository and `$PWD`
names it, and a free port stands for 8080. Its answers, everything it prints after the line that
waits for /ready, must be the ones the README shows in the block after it: the same status lines
and JSON documents in the same order, field for field, times excepted (those must still be RFC
3339 instants). Then the server must stop cleanly on SIGTERM. Exit 0 when all holds, 1 naming
the first difference. The environment is a newcomer's: none of stockdrop's own variables.

    make release && python3 scripts/readme-e2e.py
"""
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = "## A sale by hand"
TIME_FIELDS = {"createdAt", "expiresAt"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
STATUS = re.compile(r"HTTP/1\.1 \d{3}[^\r\n]*")
MARK = "readme-e2e: the server is ready"
# What `stockdrop` reads from the environment; a newcomer's shell has none of it.
OWN_VARIABLES = ("DATABASE_URL", "REDIS_URL", "PORT")


def blocks_after(text, heading):
    """The first two fenced blocks after `heading`: the commands and the answers."""
    lines = text[text.index(heading):].splitlines()
    blocks, current = [], None
    for line in lines[1:]:
        if line.startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
                if len(blocks) == 2:
                    return blocks
        elif current is not None:
            current.append(line)
    raise SystemExit(f"readme-e2e: README.md has no commands and answers blocks under {heading!r}")


def answers(text):
    """Status lines and JSON documents in order of appearance; everything else (headers, logs,
    build output) is skipped. Answers without a trailing newline may be glued to what follows."""
    found, position, decoder = [], 0, json.JSONDecoder()
    while True:
        status = STATUS.search(text, position)
        brace = text.find("{", position)
        if status is None and brace < 0:
            return found
        if status is not None and (brace < 0 or status.start() < brace):
            found.append(status.group(0).strip())
            position = status.end()
            continue
        try:
            document, end = decoder.raw_decode(text, brace)
        except json.JSONDecodeError:
            position = brace + 1
            continue
        if isinstance(document, dict):
            found.append(document)
        position = end


def difference(expected, actual, path="answer"):
    """None when `actual` is `expected` up to the instants in time fields, else what differs."""
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return f"{path}: {len(actual)} items, the README shows {len(expected)}"
        for index, (e, a) in enumerate(zip(expected, actual)):
            found = difference(e, a, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return f"{path}: fields {sorted(actual)}, the README shows {sorted(expected)}"
        for key in expected:
            if key in TIME_FIELDS:
                if not (isinstance(actual[key], str) and RFC3339.match(actual[key])):
                    return f"{path}.{key}: {actual[key]!r} is not an RFC 3339 instant"
                continue
            found = difference(expected[key], actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if expected != actual:
        return f"{path}: {json.dumps(actual)}, the README shows {json.dumps(expected)}"
    return None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
        commands, shown = blocks_after(readme.read(), HEADING)
    port = free_port()
    lines = []
    for line in commands.splitlines():
        lines.append(line)
        # Everything before the server answers /ready is set-up (build, database, logs): the
        # answers are what comes after.
        if "/ready" in line:
            lines.append(f"echo {shlex.quote(MARK)}")
    if not any(MARK in line for line in lines):
        print("readme-e2e: FAIL: the sale by hand no longer waits for /ready before its first call", file=sys.stderr)
        return 1
    script = (
        "\n".join(lines).replace("make ", f"make -C {shlex.quote(ROOT)} ", 1)
        .replace("$PWD", shlex.quote(ROOT))
        .replace("8080", str(port))
    )
    # After the walkthrough: the server it started in the background must stop cleanly.
    script += "\nkill -TERM $! && wait $!\n"
    work = tempfile.mkdtemp(prefix="readme-e2e-")
    os.chmod(work, 0o755)  # the embedded cluster runs as the postgres user
    environment = {
        k: v for k, v in os.environ.items() if k not in OWN_VARIABLES and not k.startswith("STOCKDROP_")}
    binary = os.path.join(ROOT, ".build", "release", "stockdrop")
    try:
        run = subprocess.run(
            ["bash", "-c", script], cwd=work, env=environment, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as timeout:
        def text(output):
            return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")
        print(
            f"readme-e2e: FAIL: the walkthrough did not finish in 900 s\n--- stdout\n{text(timeout.stdout)}"
            f"\n--- stderr\n{text(timeout.stderr)[-4000:]}", file=sys.stderr)
        return 1
    finally:
        subprocess.run([binary, "db", "stop"], cwd=work, capture_output=True)
        subprocess.run(["pkill", "-f", f"stockdrop serve --port {port}"], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    printed = run.stdout.split(MARK, 1)[1] if MARK in run.stdout else ""
    expected, actual = answers(shown), answers(printed)
    problem = None
    if run.returncode != 0:
        problem = f"the walkthrough exited {run.returncode} (its last command stops the server with SIGTERM)"
    elif len(actual) != len(expected):
        problem = f"{len(actual)} answers, the README shows {len(expected)}:\n  " + "\n  ".join(map(str, actual))
    else:
        problem = next(
            (d for i, (e, a) in enumerate(zip(expected, actual)) if (d := difference(e, a, f"answer {i + 1}"))), None)
    if problem:
        print(f"readme-e2e: FAIL: {problem}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr[-4000:]}", file=sys.stderr)
        return 1
    print(f"readme-e2e: PASS: the README's sale by hand gave the {len(expected)} answers it shows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
