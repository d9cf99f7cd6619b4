#!/usr/bin/env python3
"""Peak memory of weir's edge and workers while a very large body passes through them.

usage: bigbody.py ROOT BASE_URL BODY_FILE SIZE RATE OUT.json

ROOT is the weir supervisor's pid; BASE_URL its https://127.0.0.1:PORT. Two transfers, one after
the other, each with curl:
  post: BODY_FILE (SIZE bytes) POSTed to BASE_URL/cgi-bin/count, a script that counts its stdin;
  get:  BASE_URL/cgi-bin/big (SIZE bytes of output) read at RATE (curl --limit-rate).
For each, the growth of VmHWM (peak resident set, from /proc/PID/status) over its value just
before the transfer: of the edge, and of each worker (workers first seen during the transfer
count from their first sample), sampled every 0.2 s. The largest growth among the workers bounds
the one that served the request; VmHWM only grows, so sampling misses nothing of the peak.
"""

import json
import os
import subprocess
import sys
import threading
import time


def title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task") if os.path.isdir(f"/proc/{pid}/task") else []:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def tree(root):
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def roles(root):
    procs = tree(root)
    edge = [p for p in procs if title(p) == "weir: edge"]
    workers = [p for p in procs if title(p) == "weir: worker"]
    return (edge[0] if edge else None), workers


class Sampler(threading.Thread):
    """Records each process's first and latest VmHWM while a transfer runs."""

    def __init__(self, root):
        super().__init__(daemon=True)
        self.root = root
        self.first = {}
        self.last = {}
        self.running = True
        self.sample()

    def sample(self):
        edge, workers = roles(self.root)
        for pid in ([edge] if edge else []) + workers:
            value = hwm_kib(pid)
            if value is None:
                continue
            self.first.setdefault(pid, value)
            self.last[pid] = value

    def run(self):
        while self.running:
            self.sample()
            time.sleep(0.2)

    def stop(self):
        self.running = False
        self.join()
        self.sample()

    def growth(self, pid):
        return self.last.get(pid, 0) - self.first.get(pid, 0)


def measure(root, command):
    edge, _ = roles(root)
    sampler = Sampler(root)
    sampler.start()
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - started
    sampler.stop()
    workers = {pid: sampler.growth(pid) for pid in sampler.first if pid != edge}
    served = max(workers, key=workers.get) if workers else None
    return {
        "seconds": round(seconds, 1),
        "curl": " ".join(done.stdout.split()),
        "curl_exit": done.returncode,
        "edge_idle_kib": sampler.first.get(edge),
        "edge_growth_kib": sampler.growth(edge),
        "worker_pid": served,
        "worker_idle_kib": sampler.first.get(served),
        "worker_growth_kib": workers.get(served),
        "workers_seen": len(workers),
    }


def main(args):
    root, base, body, size, rate, out = int(args[0]), args[1], args[2], int(args[3]), args[4], args[5]
    fmt = "%{http_code} %{size_upload} %{size_download} %{speed_download}"
    post = measure(root, ["curl", "-sk", "-o", "-", "-w", " " + fmt, "-X", "POST", "-T", body,
                          "-H", "Content-Type: application/octet-stream", f"{base}/cgi-bin/count"])
    get = measure(root, ["curl", "-sk", "-o", "/dev/null", "-w", fmt, "--limit-rate", rate,
                         f"{base}/cgi-bin/big"])
    result = {"size": size, "rate": rate, "post": post, "get": get}
    with open(out, "w") as f:
        json.dump(result, f)
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) != 7:
        print(__doc__)
        sys.exit(2)
    main(sys.argv[1:])
