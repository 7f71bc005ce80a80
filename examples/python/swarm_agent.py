#!/usr/bin/env python3
"""An example swarm-context agent in Python (3.10 or later), with nothing but the standard library.

It talks to the server over plain HTTP (POST /graphql, JSON) and Server-Sent Events
(the same POST with `accept: text/event-stream`) and shows, as small functions to copy:

  gql()             one request: opId reused on every retry, backoff with jitter, failover
  read_slice()      read just the paths you need, with the version they belong to
  cas_update()      compare-and-set: read, compute, write with expectedVersion, loop on conflict
  allocate() ...    take a budget, report usage, release it in `finally`
  acquire_lock() .. a fenced lock: wait for it, write with its token, renew, release in `finally`
  watch()           follow the change feed from a cursor, resuming after any disconnect

Settings come from the environment: SWARM_URLS (comma-separated endpoints, tried in turn) or
SWARM_URL (default http://127.0.0.1:4000/graphql), SWARM_KEY (an API key; none in open mode),
SWARM_ID (the swarm's context id), SWARM_AGENT (this agent's holder name), SWARM_STEPS (default 3).

    python3 swarm_agent.py run                          # the agent loop, SWARM_STEPS steps
    python3 swarm_agent.py watch [--after SEQ] [--count N]
    python3 swarm_agent.py patch '[{"op": "add", "path": "/blackboard/x", "value": 1}]'

Every action is printed as one JSON line on stdout: {"event": "...", ...}.
"""

import argparse
import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
import uuid

URLS = [u.strip() for u in os.environ.get("SWARM_URLS", os.environ.get("SWARM_URL", "http://127.0.0.1:4000/graphql")).split(",") if u.strip()]
KEY = os.environ.get("SWARM_KEY")
MAX_ATTEMPTS = 6  # per request, across all endpoints
RETRYABLE_CODES = {"UNAVAILABLE", "RATE_LIMITED"}
# What a lost connection looks like: refused, reset, cut mid-reply, timed out.
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)

_endpoint = 0  # index into URLS of the endpoint in use; moves on after a failure


class SwarmError(Exception):
    """A refusal from the server: `code` is its extensions.code (VERSION_CONFLICT, LOCK_HELD, ...)."""

    def __init__(self, code, message, extensions=None):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.extensions = code, message, extensions or {}


def emit(event, **fields):
    """Prints one event as a JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


def backoff(attempt, base=0.1, cap=2.0):
    """Seconds to wait before retry number `attempt` (1, 2, ...): exponential, capped, full jitter."""
    return random.uniform(0, min(cap, base * 2**attempt))


def new_op_id():
    """A fresh idempotency key: one per logical write, reused on every retry of that write."""
    return str(uuid.uuid4())


def _post(body, accept="application/json", timeout=30):
    """POSTs `body` to the current endpoint; returns the open response (a file-like object)."""
    headers = {"content-type": "application/json", "accept": accept}
    if KEY:
        headers["authorization"] = f"Bearer {KEY}"
    request = urllib.request.Request(URLS[_endpoint % len(URLS)], json.dumps(body).encode(), headers, method="POST")
    return urllib.request.urlopen(request, timeout=timeout)


def _failed_over(attempt, problem, op_id=None, at_least=0.0):
    """After a retryable failure: moves to the next endpoint and waits (at least `at_least` s) before the next attempt."""
    global _endpoint
    _endpoint += 1
    emit("retry", attempt=attempt, problem=problem, opId=op_id, next=URLS[_endpoint % len(URLS)])
    time.sleep(max(at_least, backoff(attempt)))


def gql(query, variables=None, op_id=None):
    """Runs a query or mutation and returns its `data`.

    For a mutation, pass `op_id` (and declare `$opId: String` in the query): it is sent as the
    variable opId on every attempt, so a retry of a write whose reply was lost returns the first
    outcome instead of applying the write twice. Network errors, HTTP 5xx, UNAVAILABLE and
    RATE_LIMITED (after its retryAfterMs) are retried, at most MAX_ATTEMPTS times, moving
    through URLS; any other refusal raises SwarmError at once.
    """
    variables = dict(variables or {})
    if op_id is not None:
        variables["opId"] = op_id
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait = 0.0
        try:
            with _post({"query": query, "variables": variables}) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as err:  # 4xx/5xx: the body may still be a GraphQL answer
            if err.code >= 500:
                reply, problem = None, f"HTTP {err.code}"
            else:
                try:
                    reply = json.load(err)
                except ValueError:
                    raise SwarmError(f"HTTP_{err.code}", str(err)) from None
        except NETWORK_ERRORS + (ValueError,) as err:  # ValueError: a reply cut short is not JSON
            reply, problem = None, repr(err)
        if reply is not None:
            errors = reply.get("errors")
            if not errors:
                return reply["data"]
            extensions = errors[0].get("extensions") or {}
            problem = extensions.get("code", "UNKNOWN")
            if problem not in RETRYABLE_CODES:
                raise SwarmError(problem, errors[0].get("message", ""), extensions)
            wait = extensions.get("retryAfterMs", 0) / 1000
        if attempt == MAX_ATTEMPTS:
            raise SwarmError("UNAVAILABLE", f"gave up after {attempt} attempts: {problem}")
        _failed_over(attempt, problem, op_id, wait)


def read_slice(context_id, paths):
    """Returns (version, {path: value}) for just `paths`; a path that does not resolve reads as None."""
    data = gql("query($id: ID!, $paths: [String!]!) { context(id: $id) { version slice(paths: $paths) } }", {"id": context_id, "paths": paths})
    if data["context"] is None:
        raise SwarmError("NOT_FOUND", f"no context {context_id}")
    return data["context"]["version"], data["context"]["slice"]


PATCH = """mutation($id: ID!, $patch: [JSONPatchOperation!]!, $expectedVersion: Int, $fence: FenceInput, $opId: String) {
  patchContext(id: $id, patch: $patch, expectedVersion: $expectedVersion, fence: $fence, opId: $opId) { version seq } }"""


def patch(context_id, operations, expected_version=None, fence=None, op_id=None):
    """Applies a JSON Patch (RFC 6902) once, whatever the retries; returns {version, seq}."""
    variables = {"id": context_id, "patch": operations, "expectedVersion": expected_version, "fence": fence}
    return gql(PATCH, variables, op_id=op_id or new_op_id())["patchContext"]


def cas_update(context_id, path, compute, max_attempts=20):
    """Sets the value at `path` to compute(current value) with compare-and-set.

    Reads the value and the version, writes with expectedVersion, and on VERSION_CONFLICT (another
    writer got in between) reads and computes again. Each attempt is a new logical write, so it
    gets a new opId. Returns (new value, attempts); writes nothing if the value would not change.
    """
    for attempt in range(1, max_attempts + 1):
        version, values = read_slice(context_id, [path])
        value = compute(values[path])
        if value == values[path]:
            return value, attempt
        try:
            patch(context_id, [{"op": "add", "path": path, "value": value}], expected_version=version)
            return value, attempt
        except SwarmError as err:
            if err.code != "VERSION_CONFLICT":
                raise
            time.sleep(backoff(attempt, base=0.01, cap=0.2))
    raise SwarmError("VERSION_CONFLICT", f"{path}: still conflicting after {max_attempts} attempts")


def allocate(context_id, request, holder, lease_ms=60_000):
    """Takes all of `request` ({kind: amount}) from the swarm's budget, or raises INSUFFICIENT_RESOURCES; returns the allocation id."""
    query = """mutation($c: ID!, $r: [ResourceAmountInput!], $l: Int, $h: String, $opId: String) {
      allocate(contextId: $c, request: $r, mode: EXACT, leaseMs: $l, holder: $h, opId: $opId) { id } }"""
    amounts = [{"kind": kind, "amount": amount} for kind, amount in request.items()]
    return gql(query, {"c": context_id, "r": amounts, "l": lease_ms, "h": holder}, op_id=new_op_id())["allocate"]["id"]


def report_usage(allocation_id, usage):
    """Records what was spent ({kind: amount}); refused (USAGE_EXCEEDED) beyond what is left."""
    query = "mutation($a: ID!, $u: [ResourceAmountInput!]!, $opId: String) { reportUsage(allocationId: $a, usage: $u, opId: $opId) { id } }"
    gql(query, {"a": allocation_id, "u": [{"kind": k, "amount": n} for k, n in usage.items()]}, op_id=new_op_id())


def release(allocation_id):
    """Ends the allocation: what it consumed is charged, the rest returns to the budget. An already ended one is left as it is."""
    try:
        gql("mutation($a: ID!, $opId: String) { release(allocationId: $a, opId: $opId) { id } }", {"a": allocation_id}, op_id=new_op_id())
    except SwarmError as err:
        if err.code != "ALLOCATION_ENDED":
            raise


LOCK_FIELDS = "{ name holder token expiresAt }"


def acquire_lock(context_id, name, holder, lease_ms=10_000, max_attempts=60):
    """Takes the lock, waiting with backoff while another holder has it (LOCK_HELD); returns {name, token, ...}."""
    query = f"mutation($c: ID!, $n: String!, $h: String!, $l: Int!, $opId: String) {{ acquireLock(contextId: $c, name: $n, holder: $h, leaseMs: $l, opId: $opId) {LOCK_FIELDS} }}"
    for attempt in range(1, max_attempts + 1):
        try:
            return gql(query, {"c": context_id, "n": name, "h": holder, "l": lease_ms}, op_id=new_op_id())["acquireLock"]
        except SwarmError as err:
            if err.code != "LOCK_HELD":
                raise
            time.sleep(backoff(attempt, base=0.02, cap=0.5))
    raise SwarmError("LOCK_HELD", f"lock {name}: still held after {max_attempts} attempts")


def renew_lock(context_id, lock, lease_ms=10_000):
    """Extends the lease; refused (STALE_FENCE) if it ran out and the lock moved on."""
    query = f"mutation($c: ID!, $n: String!, $t: Int!, $l: Int!, $opId: String) {{ renewLock(contextId: $c, name: $n, token: $t, leaseMs: $l, opId: $opId) {LOCK_FIELDS} }}"
    return gql(query, {"c": context_id, "n": lock["name"], "t": lock["token"], "l": lease_ms}, op_id=new_op_id())["renewLock"]


def release_lock(context_id, lock):
    """Lets the lock go; if its lease ran out and another holder took it (STALE_FENCE), there is nothing to release."""
    query = "mutation($c: ID!, $n: String!, $t: Int!, $opId: String) { releaseLock(contextId: $c, name: $n, token: $t, opId: $opId) { token } }"
    try:
        gql(query, {"c": context_id, "n": lock["name"], "t": lock["token"]}, op_id=new_op_id())
    except SwarmError as err:
        if err.code != "STALE_FENCE":
            raise


def run_step(context_id, holder, step, lease_ms=10_000):
    """One step of the agent: read, take a budget, take the lock, write fenced, report, let go."""
    _, values = read_slice(context_id, ["/policy", "/blackboard/steps"])
    credits = (values["/policy"] or {}).get("stepCredits", 10)
    allocation = allocate(context_id, {"credits": credits}, holder)
    try:
        lock = acquire_lock(context_id, "blackboard", holder, lease_ms)
        acquired = time.monotonic()
        try:
            # The "work": here, a record of the step and what this agent had seen of the log.
            record = {"agent": holder, "step": step, "token": lock["token"], "seen": len(values["/blackboard/steps"] or [])}
            used = 3
            if time.monotonic() - acquired > lease_ms / 1000 / 3:  # long work: keep the lease
                lock = renew_lock(context_id, lock, lease_ms)
            # The fence: refused with STALE_FENCE if our lease ran out and someone else took the lock.
            written = patch(context_id, [{"op": "add", "path": "/blackboard/steps/-", "value": record}], fence={"lock": "blackboard", "token": lock["token"]})
            report_usage(allocation, {"credits": used})
        finally:
            release_lock(context_id, lock)
    finally:
        release(allocation)
    emit("step", agent=holder, step=step, allocation=allocation, token=lock["token"], version=written["version"], credits=credits, used=used)


def watch(context_id, after, on_change, on_resync, timeout=30):
    """Follows the context's change feed over SSE from the cursor `after` (a seq) until on_change returns True.

    Every change after `after` is passed to on_change once, in seq order: on any disconnect it
    subscribes again with the last seq seen. A `resync` entry (changes that will not be delivered:
    the cursor was too old or past the end) calls on_resync(entry), which should re-read the
    context; the cursor moves to entry["seq"]. RESYNC_REQUIRED and UNAVAILABLE errors end the
    stream with the cursors to resume from in extensions.after. `timeout` (s) must exceed the
    server's 12 s keep-alive. Returns the last seq seen.
    """
    query = """subscription($ids: [ID!], $after: [CursorInput!]) {
      contextChanges(contextIds: $ids, after: $after) {
        changes { contextId seq version kind paths patch actor }
        resync { contextId seq version } } }"""
    failures = 0
    while True:
        variables = {"ids": [context_id], "after": [{"contextId": context_id, "seq": after}]}
        try:
            with _post({"query": query, "variables": variables}, accept="text/event-stream", timeout=timeout) as stream:
                for event, data in _sse_events(stream):
                    if event == "complete":
                        break  # the server ended the stream: resume below
                    if event != "next":
                        continue
                    failures = 0
                    result = json.loads(data)
                    if result.get("errors"):
                        extensions = result["errors"][0].get("extensions") or {}
                        if extensions.get("code") not in ("RESYNC_REQUIRED", "UNAVAILABLE"):
                            raise SwarmError(extensions.get("code", "UNKNOWN"), result["errors"][0].get("message", ""), extensions)
                        for cursor in extensions.get("after") or []:
                            if cursor["contextId"] == context_id:
                                after = cursor["seq"]
                        break
                    batch = result["data"]["contextChanges"]
                    for entry in batch["resync"]:
                        on_resync(entry)
                        after = entry["seq"]
                    for change in batch["changes"]:
                        after = change["seq"]
                        if on_change(change):
                            return after
        except urllib.error.HTTPError as err:  # 429 (rate limited) and 5xx are worth another try
            if err.code < 500 and err.code != 429:
                raise SwarmError(f"HTTP_{err.code}", str(err)) from None
        except NETWORK_ERRORS + (ValueError,):  # ValueError: an event cut short is not JSON
            pass
        failures += 1
        if failures > MAX_ATTEMPTS:
            raise SwarmError("UNAVAILABLE", f"feed: gave up after {failures} attempts")
        emit("reconnect", after=after, attempt=failures)
        _failed_over(failures, "feed disconnected")


def _sse_events(stream):
    """Yields (event name, data) for each event of an SSE response; comment lines (keep-alives) are skipped."""
    event, data = None, []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if event is not None or data:
                yield event or "message", "\n".join(data)
            event, data = None, []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def main(argv):
    parser = argparse.ArgumentParser(description="An example swarm-context agent (standard library only).")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run SWARM_STEPS steps as SWARM_AGENT")
    watch_args = commands.add_parser("watch", help="print the context's changes as JSON lines")
    watch_args.add_argument("--after", type=int, help="the last seq already seen (default: the context's seq now)")
    watch_args.add_argument("--count", type=int, default=int(os.environ.get("SWARM_WATCH", "0")), help="stop after this many changes (0: never)")
    patch_args = commands.add_parser("patch", help="apply one JSON Patch, idempotently")
    patch_args.add_argument("operations", help="a JSON Patch (RFC 6902) as JSON")
    patch_args.add_argument("--expected-version", type=int)
    args = parser.parse_args(argv)
    context_id = os.environ.get("SWARM_ID", "swarm-1")

    if args.command == "run":
        holder = os.environ.get("SWARM_AGENT", f"agent-{uuid.uuid4().hex[:8]}")
        steps, attempts = int(os.environ.get("SWARM_STEPS", "3")), 0
        # The log's first writer creates it; concurrent agents race here, and compare-and-set settles it.
        cas_update(context_id, "/blackboard/steps", lambda steps: [] if steps is None else steps)
        for step in range(1, steps + 1):
            run_step(context_id, holder, step)
            # A tally kept without the lock: compare-and-set keeps concurrent increments.
            _, tries = cas_update(context_id, "/blackboard/done", lambda n: (n or 0) + 1)
            attempts += tries
        emit("done", agent=holder, steps=steps, casAttempts=attempts)
    elif args.command == "watch":
        if args.after is None:  # start from now: read the cursor first, so that nothing falls between
            args.after = gql("query($id: ID!) { context(id: $id) { seq } }", {"id": context_id})["context"]["seq"]
        seen = [0]

        def on_change(change):
            emit("change", **change)
            seen[0] += 1
            return seen[0] == args.count

        def on_resync(entry):
            version, _ = read_slice(context_id, [])  # re-read what you keep of the context here
            emit("resync", contextId=entry["contextId"], seq=entry["seq"], version=entry["version"], current=version)

        watch(context_id, args.after, on_change, on_resync)
    else:
        op_id = new_op_id()
        written = patch(context_id, json.loads(args.operations), expected_version=args.expected_version, op_id=op_id)
        emit("patched", opId=op_id, **written)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SwarmError as err:
        emit("error", code=err.code, message=err.message, extensions=err.extensions)
        sys.exit(1)
