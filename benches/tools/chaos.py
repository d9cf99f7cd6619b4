#!/usr/bin/env python3
"""The chaos soak for benches/run.sh (Python 3 standard library only).

  chaos.py SUPERVISOR_PID BASE_URL WEIR_BIN CONF MARK SECONDS OUT

Steady load (CHAOS_CLIENTS keep-alive clients, CHAOS_RATE requests/s in all, alternating a
static file and a CGI script; one request in eight a script that sleeps 1 s) against a running weir for SECONDS, while, every
CHAOS_KILL_EVERY seconds (uniformly 0.5x..1.5x), a random edge, pool master or worker gets
SIGKILL, and every CHAOS_RELOAD_EVERY seconds `weir reload` runs. Writes OUT (JSON):

- requests: answered, failed; each failure classified as in flight on a kill (a kill of the
  tree happened while it was under way) or not (expected: 0). A request on a kept-alive
  connection that fails before any byte of the answer is retried once on a new connection, as
  HTTP clients do for idempotent requests (RFC 9110, 9.2.2); those retries are counted.
- kills by role, and for each the recovery time: until a new connection gets a 200 for both
  the static file and the CGI script.
- reloads: how many, their exit codes, how long `weir reload` took.
- leaked slots after the load (server-status slots naming no live worker; expected 0) and
  orphans (processes of the run outside the tree while it runs, and any left after the stop is
  checked by run.sh with `chaos.py orphans`; expected 0).

MARK is a string in the environment of every process of this weir (run.sh sets it when it
starts weir; CGI scripts carry the bench directory in SCRIPT_FILENAME), so that only this run's
processes are counted. Loopback addresses only.
"""

import http.client
import json
import os
import random
import signal
import ssl
import statistics
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


CTX = context()


def proc(pid):
    """(ppid, pgid, title) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[2]), title


def marked(pid, mark):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return mark.encode() in f.read()
    except OSError:
        return False


def run_procs(mark):
    """{pid: (ppid, pgid, title)} of every live process of this run."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and marked(int(entry), mark):
            info = proc(int(entry))
            if info:
                found[int(entry)] = info
    return found


def strays(supervisor, mark):
    """Processes of the run outside the tree: under the supervisor but neither an edge nor a
    pool master, or with a parent that is not of the run."""
    procs = run_procs(mark)
    out = []
    for pid, (ppid, _, title) in procs.items():
        if pid == supervisor:
            continue
        if ppid == supervisor:
            if title not in ("weir: edge", "weir: pool master"):
                out.append((pid, ppid, title))
        elif ppid not in procs:
            out.append((pid, ppid, title))
    return out


def victims(supervisor):
    """Current edges, pool masters and workers by role."""
    roles = {"edge": [], "pool master": [], "worker": []}
    kids = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc(int(entry))
            if info:
                kids.setdefault(info[0], []).append((int(entry), info[2]))
    for pid, title in kids.get(supervisor, []):
        if title == "weir: edge":
            roles["edge"].append(pid)
        elif title == "weir: pool master":
            roles["pool master"].append(pid)
            roles["worker"] += [w for w, t in kids.get(pid, []) if t == "weir: worker"]
    return roles


class Load:
    """Keep-alive clients at a fixed total rate; every request's start, end and outcome."""

    def __init__(self, base, clients, rate):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.clients, self.interval = clients, clients / rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.retried = 0
        self.failures = []  # (start, end, path, error)
        self.threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=70)

    def connect(self):
        return http.client.HTTPSConnection(self.host, self.port, timeout=60, context=CTX)

    def client(self, index):
        # One request in eight is a script that sleeps 1 s, so that kills find requests in flight.
        paths = ["/1k.bin", "/cgi-bin/hello"] * 3 + ["/1k.bin", "/cgi-bin/sleep"]
        conn, used = None, False
        n = index
        next_at = time.monotonic() + random.random() * self.interval
        while not self.stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at += self.interval
            path = paths[n % len(paths)]
            n += 1
            started = time.monotonic()
            for attempt in (0, 1):
                if conn is None:
                    conn, used = self.connect(), False
                got_bytes = False
                try:
                    conn.request("GET", path)
                    resp = conn.getresponse()
                    got_bytes = True
                    resp.read()
                    used = True
                    if resp.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conn = None
                    if resp.status == 200:
                        with self.lock:
                            self.ok += 1
                    else:
                        with self.lock:
                            self.failures.append((started, time.monotonic(), path, f"status {resp.status}"))
                    break
                except Exception as error:  # resets, timeouts, refused
                    stale = used and not got_bytes
                    conn.close()
                    conn = None
                    if attempt == 0 and stale:
                        with self.lock:
                            self.retried += 1
                        continue
                    with self.lock:
                        self.failures.append((started, time.monotonic(), path, type(error).__name__))
                    break


def answers(base, path, timeout=3):
    parts = urlsplit(base)
    try:
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=CTX)
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status == 200
    except Exception:
        return False


def recovery(base, bound=30.0):
    """Seconds until a new connection gets 200 for the static file and the CGI script."""
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if answers(base, "/1k.bin") and answers(base, "/cgi-bin/hello"):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def stale_slots(base, supervisor):
    """server-status slots that name a pid which is no live worker (or a script it runs)."""
    parts = urlsplit(base)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=10, context=CTX)
    conn.request("GET", "/server-status?json", headers={"Connection": "close"})
    body = conn.getresponse().read()
    conn.close()
    stale = []
    for slot in json.loads(body).get("workers", []):
        pid = slot.get("pid") or 0
        if pid > 0:
            info = proc(pid)
            if info is None or info[2] != "weir: worker":
                stale.append(pid)
    return stale


def summary(values):
    if not values:
        return {"n": 0}
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3),
        "p95_s": round(p95, 3),
        "max_s": round(values[-1], 3),
    }


def soak(args):
    supervisor, base, weir_bin, conf, mark, seconds, out = (
        int(args[0]),
        args[1],
        args[2],
        args[3],
        args[4],
        float(args[5]),
        args[6],
    )
    env = os.environ.get
    clients, rate = int(env("CHAOS_CLIENTS", "8")), float(env("CHAOS_RATE", "80"))
    kill_every, reload_every = float(env("CHAOS_KILL_EVERY", "4")), float(env("CHAOS_RELOAD_EVERY", "5"))
    rng = random.Random(int(env("CHAOS_SEED", "15")))
    load = Load(base, clients, rate)
    kills, reloads = [], []
    first_stray, orphaned = {}, {}
    reload_threads = []

    def reload_once():
        t0 = time.monotonic()
        done = subprocess.run([weir_bin, "reload", "-f", conf], capture_output=True, text=True)
        reloads.append(
            {"at": t0, "seconds": time.monotonic() - t0, "exit": done.returncode, "said": (done.stdout + done.stderr).strip()[-200:]}
        )

    load.start()
    t_start = time.monotonic()
    next_kill = t_start + kill_every * rng.uniform(0.5, 1.5)
    next_reload = t_start + reload_every * rng.uniform(0.5, 1.5)
    while time.monotonic() - t_start < seconds:
        now = time.monotonic()
        if now >= next_reload:
            # In a thread: `weir reload` waits for the verdict, and kills go on meanwhile.
            t = threading.Thread(target=reload_once, daemon=True)
            t.start()
            reload_threads.append(t)
            next_reload = now + reload_every * rng.uniform(0.5, 1.5)
        if now >= next_kill:
            roles = victims(supervisor)
            role = rng.choice([r for r in ("edge", "pool master", "worker") if roles[r]] or ["none"])
            if role != "none":
                pid = rng.choice(roles[role])
                try:
                    os.kill(pid, signal.SIGKILL)
                    at = time.monotonic()
                    took = recovery(base)
                    kills.append({"at": at, "role": role, "pid": pid, "recovery_s": took})
                except ProcessLookupError:
                    pass
            # A worker of a killed pool master is re-parented to the supervisor while it finishes
            # its request: an orphan only if it is still out of the tree 5 s later.
            now = time.monotonic()
            current = {pid: (pid, ppid, title) for pid, ppid, title in strays(supervisor, mark)}
            for pid in list(first_stray):
                if pid not in current:
                    del first_stray[pid]
            for pid, info in current.items():
                first_stray.setdefault(pid, now)
                if now - first_stray[pid] >= 5 and pid not in orphaned:
                    orphaned[pid] = info
            next_kill = time.monotonic() + kill_every * rng.uniform(0.5, 1.5)
        time.sleep(0.05)
    load.finish()
    for t in reload_threads:
        t.join(timeout=90)
    # Settle: the last kill's restart, the last reload's drain.
    time.sleep(1)
    settled = recovery(base) is not None
    stale, deadline = [], time.monotonic() + 20
    while True:
        stale = stale_slots(base, supervisor)
        if not stale or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    left, deadline = [], time.monotonic() + 20
    while True:
        left = strays(supervisor, mark)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    kill_times = [k["at"] for k in kills]
    in_flight, other = [], []
    for started, ended, path, error in load.failures:
        # In flight on a killed process: a kill of the tree fell while it was under way.
        if any(started - 0.05 <= k <= ended + 0.05 for k in kill_times):
            in_flight.append((started, path, error))
        else:
            other.append((started, path, error))
    by_role = {}
    for k in kills:
        by_role.setdefault(k["role"], []).append(k["recovery_s"])
    result = {
        "seconds": round(time.monotonic() - t_start, 1),
        "clients": clients,
        "rate": rate,
        "kill_every_s": kill_every,
        "reload_every_s": reload_every,
        "requests": load.ok + len(load.failures),
        "answered": load.ok,
        "failed": len(load.failures),
        "failed_in_flight_on_a_kill": len(in_flight),
        "failed_otherwise": len(other),
        "failed_otherwise_examples": [
            {"t": round(s - t_start, 2), "path": p, "error": e} for s, p, e in other[:10]
        ],
        "failure_kinds": sorted({e for _, _, _, e in load.failures}),
        "retried_stale_keepalive": load.retried,
        "kills": {role: len(v) for role, v in by_role.items()},
        "recovery": {role: summary([x for x in v if x is not None]) for role, v in by_role.items()},
        "recovery_all": summary([k["recovery_s"] for k in kills if k["recovery_s"] is not None]),
        "not_recovered": sum(1 for k in kills if k["recovery_s"] is None),
        "reloads": len(reloads),
        "reloads_ok": sum(1 for r in reloads if r["exit"] == 0),
        "reloads_failed_examples": [r["said"] for r in reloads if r["exit"] != 0][:5],
        "reload_seconds": summary([r["seconds"] for r in reloads]),
        "settled": settled,
        "leaked_slots": len(stale),
        "leaked_slot_pids": stale,
        "orphans_during": len(orphaned),
        "orphans_at_end": len(left),
        "orphan_examples": [list(x) for x in (list(orphaned.values()) + left)[:10]],
    }
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result, indent=1))


def orphans(args):
    """After the stop: processes of the run still alive anywhere (JSON count and examples)."""
    mark, out = args[0], args[1]
    deadline = time.monotonic() + 15
    while True:
        left = run_procs(mark)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    with open(out, "w") as f:
        json.dump({"orphans_after_stop": len(left), "examples": [[p, *v] for p, v in list(left.items())[:10]]}, f)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == "orphans":
        orphans(sys.argv[2:])
    else:
        soak(sys.argv[1:])


if __name__ == "__main__":
    main()
