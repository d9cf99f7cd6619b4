#!/usr/bin/env python3
"""Helpers for benches/run.sh (Python 3 standard library only).

Subcommands:
  freeport                      print a free TCP port on 127.0.0.1
  tree PID...                   print PID and every descendant, one per line
  pss [--workers KIND] PID...   JSON: total PSS (KiB) of the process trees, per-process list
  hold HOST PORT N READY        open N idle TLS connections, write READY with the count, hold
  probe URL SECONDS OUT         a legitimate client: one new HTTPS request every 100 ms
                                (PROBE_SOURCE=ADDR: from that source address)
  stall HOST PORT SOURCE SILENT STALLING READY SECONDS
                                from SOURCE, hold SILENT connections that send nothing and
                                STALLING ones that stop inside the ClientHello
  burst URL N OUT [--pids ...]  N concurrent requests at once; records when each completes
  parse-wrk FILE | parse-h2load FILE | parse-ab FILE...   JSON figures from a client's output
  bgcpu OURS PHASEFILE OUT      sample, every 2 s, the CPU that processes not ours use
  record OUT KEY=VALUE...       append one JSON line to the results file
  report RESULTS META OUT       write RESULTS.md from the results and run metadata

Everything talks to loopback addresses (127.0.0.0/8) only.
"""

import asyncio
import http.client
import json
import os
import re
import socket
import ssl
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit


# --------------------------------------------------------------------------------------------
# Processes and memory


def proc_stats():
    """Every process as (pid, comm, fields after comm) from /proc/PID/stat."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The comm field may hold spaces and parentheses: split after the last ')'.
        yield int(entry), stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def children_map():
    kids = {}
    for pid, _, rest in proc_stats():
        kids.setdefault(int(rest[1]), []).append(pid)
    return kids


def tree(roots):
    kids = children_map()
    seen, stack = [], list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.append(pid)
        stack.extend(kids.get(pid, []))
    return sorted(seen)


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def is_worker(pid, kind, roots):
    """Whether pid is one of the stack's request workers (the pool's processes)."""
    if kind == "weir":
        return cmdline(pid).startswith("weir: worker")
    if kind == "apache":
        # Apache's children: apache2 processes whose parent is the root apache2.
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except OSError:
            return False
        return comm(pid) == "apache2" and ppid in roots
    if kind == "nginx":
        return cmdline(pid).startswith("nginx: worker")
    return False


def cmd_pss(args):
    kind = None
    if args and args[0] == "--workers":
        kind, args = args[1], args[2:]
    roots = [int(a) for a in args]
    procs = []
    for pid in tree(roots):
        pss = pss_kib(pid)
        if pss is None:
            continue
        procs.append({"pid": pid, "cmd": cmdline(pid)[:60], "pss_kib": pss, "worker": bool(kind and is_worker(pid, kind, roots))})
    workers = [p["pss_kib"] for p in procs if p["worker"]]
    out = {
        "total_kib": sum(p["pss_kib"] for p in procs),
        "processes": len(procs),
        "workers": len(workers),
        "worker_avg_kib": (sum(workers) / len(workers)) if workers else None,
        # Requests need not spread evenly (the edge reuses the worker that answered last), so the
        # largest worker is the honest figure for "a worker after use".
        "worker_max_kib": max(workers) if workers else None,
        "list": procs,
    }
    print(json.dumps(out))


def count_workers(kind, roots):
    return sum(1 for pid in tree(roots) if is_worker(pid, kind, roots))


# --------------------------------------------------------------------------------------------
# Clients


_CONTEXT = None


def client_context():
    """One shared client context (building one loads the CA store: ~20 ms). No session reuse:
    every connection is a full handshake, as from a new client."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        _CONTEXT = ctx
    return _CONTEXT


def cmd_hold(args):
    """Opens N TLS connections (handshake done, no request sent) and holds them."""
    host, port, n, ready = args[0], int(args[1]), int(args[2]), args[3]
    hold_seconds = float(args[4]) if len(args) > 4 else 120.0
    ctx = client_context()
    # No session resumption across our own connections: each is a full handshake, as from
    # separate devices.
    writers = []
    failures = 0

    async def one(sem, i):
        nonlocal failures
        async with sem:
            try:
                # Spread over 200 loopback source addresses, as devices are: no single source
                # then holds more than a device-sized share (weir caps one source's share).
                source = (f"127.0.1.{i % 200 + 1}", 0)
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost", local_addr=source),
                    30,
                )
                writers.append(writer)
            except Exception:
                failures += 1

    async def main():
        sem = asyncio.Semaphore(64)
        started = time.monotonic()
        await asyncio.gather(*(one(sem, i) for i in range(n)))
        took = time.monotonic() - started
        with open(ready + ".tmp", "w") as f:
            json.dump({"held": len(writers), "failed": failures, "open_seconds": round(took, 2)}, f)
        os.rename(ready + ".tmp", ready)
        await asyncio.sleep(hold_seconds)
        for w in writers:
            w.close()

    asyncio.run(main())


# A TLS record header announcing a 512-byte handshake message, then the first bytes of a
# ClientHello: the server must wait for the rest, which never comes.
CLIENT_HELLO_START = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def cmd_stall(args):
    """From one source address, holds SILENT connections that send nothing and STALLING ones that
    send the start of a ClientHello and then nothing; one the server closes is opened again after
    a second, as an attacker keeping up the pressure would. Writes READY (JSON) once all have been
    opened once, then holds them until SECONDS have passed."""
    host, port, source = args[0], int(args[1]), args[2]
    silent, stalling, ready, seconds = int(args[3]), int(args[4]), args[5], float(args[6])
    counts = {"opened": 0, "closed_by_server": 0, "connect_failed": 0}
    open_now = {"silent": 0, "stalling": 0}
    deadline = time.monotonic() + seconds

    async def keep(kind, first, sem):
        loop = asyncio.get_running_loop()
        while time.monotonic() < deadline:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                # Let connect() pick the port: thousands of sockets bound to one address.
                sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
                sock.bind((source, 0))
                async with sem:
                    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), 10)
                if first:
                    await loop.sock_sendall(sock, first)
            except (OSError, asyncio.TimeoutError):
                counts["connect_failed"] += 1
                sock.close()
                await asyncio.sleep(1)
                continue
            counts["opened"] += 1
            open_now[kind] += 1
            try:
                # Nothing more is sent; a read returns when the server gives up on us.
                await asyncio.wait_for(loop.sock_recv(sock, 1024), max(0.1, deadline - time.monotonic()))
                counts["closed_by_server"] += 1
            except asyncio.TimeoutError:
                pass
            except OSError:
                counts["closed_by_server"] += 1
            open_now[kind] -= 1
            sock.close()
            await asyncio.sleep(1)

    async def main():
        sem = asyncio.Semaphore(256)
        started = time.monotonic()
        tasks = [asyncio.create_task(keep("silent", b"", sem)) for _ in range(silent)]
        tasks += [asyncio.create_task(keep("stalling", CLIENT_HELLO_START, sem)) for _ in range(stalling)]
        while counts["opened"] + counts["connect_failed"] < silent + stalling and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        with open(ready + ".tmp", "w") as f:
            json.dump(dict(counts, open_seconds=round(time.monotonic() - started, 2), **open_now), f)
        os.rename(ready + ".tmp", ready)
        await asyncio.gather(*tasks)
        with open(ready + ".end", "w") as f:
            json.dump(dict(counts, **open_now), f)

    asyncio.run(main())


def one_request(url, timeout, method="GET", body=None):
    """One request on a new TLS connection; (ok, seconds, status). PROBE_SOURCE binds the client
    to a source address of its own (another loopback address than an attack's)."""
    parts = urlsplit(url)
    started = time.monotonic()
    source = os.environ.get("PROBE_SOURCE")
    try:
        conn = http.client.HTTPSConnection(
            parts.hostname,
            parts.port,
            timeout=timeout,
            context=client_context(),
            source_address=(source, 0) if source else None,
        )
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path, body=body, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.status == 200, time.monotonic() - started, resp.status
    except Exception as error:  # timeouts, resets, refused
        return False, time.monotonic() - started, type(error).__name__


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def cmd_probe(args):
    """Every 100 ms, one new HTTPS request in its own thread; timeout 5 s each."""
    url, seconds, out = args[0], float(args[1]), args[2]
    interval = float(os.environ.get("PROBE_INTERVAL", "0.1"))
    timeout = float(os.environ.get("PROBE_TIMEOUT", "5"))
    results, lock, threads = [], threading.Lock(), []
    started = time.monotonic()

    def run():
        sent_at = time.monotonic() - started
        r = one_request(url, timeout)
        with lock:
            results.append(r + (sent_at,))

    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        t = threading.Thread(target=run, daemon=True)
        t.start()
        threads.append(t)
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    for t in threads:
        t.join(timeout + 1)
    ok = [r for r in results if r[0]]
    lat = [r[1] * 1000 for r in ok]
    errors = {}
    for r in results:
        if not r[0]:
            errors[str(r[2])] = errors.get(str(r[2]), 0) + 1
    summary = {
        "sent": len(threads),
        "done": len(results),
        "ok": len(ok),
        "success_pct": 100.0 * len(ok) / len(threads) if threads else 0.0,
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else None,
        "errors": errors,
        # When each probe left (seconds into the probe) and how long it took (ms; None: failed),
        # to tell a steady tail from a moment when the server was busy with something else.
        "samples": sorted([round(r[-1], 3), round(r[1] * 1000, 2) if r[0] else None] for r in results),
    }
    with open(out, "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


def cmd_burst(args):
    """N requests at once, each on its own new connection; also polls the worker count."""
    url, n, out = args[0], int(args[1]), args[2]
    kind, roots = None, []
    if len(args) > 3 and args[3] == "--pids":
        kind, roots = args[4], [int(a) for a in args[5:]]
    timeout = float(os.environ.get("BURST_TIMEOUT", "60"))
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(n + 1)

    def run():
        barrier.wait()
        r = one_request(url, timeout)
        with lock:
            results.append((r[0], time.monotonic(), r[2]))

    threads = [threading.Thread(target=run, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    before = count_workers(kind, roots) if kind else None
    samples = []
    barrier.wait()
    t0 = time.monotonic()
    while any(t.is_alive() for t in threads) and time.monotonic() - t0 < timeout + 2:
        if kind:
            samples.append((time.monotonic() - t0, count_workers(kind, roots)))
        time.sleep(0.02)
    for t in threads:
        t.join(1)
    done = sorted(r[1] - t0 for r in results)
    ok = sum(1 for r in results if r[0])
    peak = max((c for _, c in samples), default=None)
    # When the pool first had one worker per request of the burst (or its peak, if less).
    target = min(n, peak) if peak else None
    reached = next((s for s, c in samples if target and c >= target), None)
    summary = {
        "n": n,
        "ok": ok,
        "workers_before": before,
        "workers_peak": peak,
        "seconds_to_peak_workers": reached,
        "first_done_s": done[0] if done else None,
        "median_done_s": percentile(done, 50),
        "last_done_s": done[-1] if done else None,
    }
    with open(out, "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


# --------------------------------------------------------------------------------------------
# Client output parsers


def _num(pattern, text, cast=float, default=None):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else default


def _dur_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(text):
    out = {"rps": _num(r"^Requests/sec:\s+([\d.]+)", text)}
    total = _num(r"^\s+(\d+) requests in", text, int, 0)
    non2xx = _num(r"Non-2xx or 3xx responses: (\d+)", text, int, 0)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    sock = sum(int(x) for x in m.groups()) if m else 0
    out["requests"] = total
    out["errors"] = non2xx + sock
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", text, re.M)
        if m:
            out[f"p{p}_ms"] = _dur_ms(m.group(1), m.group(2))
    m = re.search(r"^Transfer/sec:\s+([\d.]+)([KMG]?B)", text, re.M)
    if m:
        out["mib_s"] = float(m.group(1)) * {"B": 1 / 2**20, "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(2)]
    return out


def parse_h2load(text):
    out = {"rps": _num(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    if m:
        total, started, done, ok, failed, errored = (int(x) for x in m.groups())
        out["requests"] = done
        out["errors"] = failed + errored
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        out["errors"] = out.get("errors", 0) + int(m.group(3)) + int(m.group(4))
    if out["rps"] is None or not out.get("requests"):
        out["rps"] = None
    out["protocol"] = _num(r"Application protocol: (\S+)", text, str)
    return out


def parse_ab(texts):
    """Sums the figures of several ab processes run side by side."""
    rps, total, failed, non2xx = 0.0, 0, 0, 0
    for text in texts:
        r = _num(r"^Requests per second:\s+([\d.]+)", text)
        if r is None:
            return {"rps": None, "errors": 1}
        rps += r
        total += _num(r"^Complete requests:\s+(\d+)", text, int, 0)
        failed += _num(r"^Failed requests:\s+(\d+)", text, int, 0)
        non2xx += _num(r"^Non-2xx responses:\s+(\d+)", text, int, 0)
    return {"rps": rps, "requests": total, "errors": failed + non2xx}


# --------------------------------------------------------------------------------------------
# Background load: this machine may be shared (builds, other tests). The figures only mean
# something relative to each other if others left the CPU alone, so the run records how much
# CPU processes outside the benchmark used, per phase.


def cpu_ticks():
    ticks = {}
    for pid, name, rest in proc_stats():
        # utime + stime. Not cutime/cstime: a daemon of ours reaped by init would count as
        # init's. So processes that start and end between two samples are missed: a lower bound.
        ticks[pid] = (name, int(rest[11]) + int(rest[12]))
    return ticks


def cmd_bgcpu(args):
    ours_file, phase_file, out = args
    hz = os.sysconf("SC_CLK_TCK")
    interval = 2.0
    before, t_before = cpu_ticks(), time.monotonic()
    while True:
        time.sleep(interval)
        now, t_now = cpu_ticks(), time.monotonic()
        try:
            roots = [int(x) for x in open(ours_file).read().split()]
        except (OSError, ValueError):
            roots = []
        ours = set(tree(roots + [os.getpid()]))
        used, per_name = 0, {}
        for pid, (name, ticks) in now.items():
            if pid in ours:
                continue
            old = before.get(pid)
            delta = ticks - old[1] if old and old[0] == name else ticks if pid not in before else 0
            if delta > 0:
                used += delta
                per_name[name] = per_name.get(name, 0) + delta
        seconds = t_now - t_before
        try:
            phase = open(phase_file).read().strip()
        except OSError:
            phase = ""
        top = sorted(per_name.items(), key=lambda kv: -kv[1])[:3]
        row = {
            "phase": phase,
            "others_pct": round(100.0 * used / hz / seconds, 1),
            "top": [[n, round(100.0 * t / hz / seconds, 1)] for n, t in top],
        }
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
        before, t_before = now, t_now


# --------------------------------------------------------------------------------------------
# Results


def cmd_record(args):
    out, pairs = args[0], args[1:]
    row = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if value.startswith("@"):
            with open(value[1:]) as f:
                value = json.load(f)
        else:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        row[key] = value
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "freeport":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    elif cmd == "tree":
        print("\n".join(str(p) for p in tree([int(a) for a in args])))
    elif cmd == "pss":
        cmd_pss(args)
    elif cmd == "hold":
        cmd_hold(args)
    elif cmd == "probe":
        cmd_probe(args)
    elif cmd == "stall":
        cmd_stall(args)
    elif cmd == "burst":
        cmd_burst(args)
    elif cmd == "parse-wrk":
        print(json.dumps(parse_wrk(open(args[0]).read())))
    elif cmd == "parse-h2load":
        print(json.dumps(parse_h2load(open(args[0]).read())))
    elif cmd == "parse-ab":
        print(json.dumps(parse_ab([open(a).read() for a in args])))
    elif cmd == "bgcpu":
        cmd_bgcpu(args)
    elif cmd == "record":
        cmd_record(args)
    elif cmd == "report":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        sys.dont_write_bytecode = True  # no __pycache__ in the source tree
        import report

        report.main(args)
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
