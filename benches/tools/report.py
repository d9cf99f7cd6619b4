"""Writes benches/RESULTS.md from the JSON lines benches/run.sh recorded (stdlib only).

Usage: bench.py report RESULTS.jsonl META.txt OUT.md [BGCPU.jsonl] [PERF.txt]
"""

import json
import os
import statistics

STACKS = [("apache", "Apache prefork + mod_ssl"), ("nginx", "nginx → Apache prefork"), ("weir", "weir")]
NAMES = dict(STACKS)

SCENARIOS = [
    ("static_h1", "keep-alive HTTPS/1.1, 1 KiB file (wrk)", "req/s"),
    ("static_h2", "keep-alive h2, 1 KiB file (h2load)", "req/s"),
    ("handler_h1", "keep-alive HTTPS/1.1, minimal Handler in a worker (wrk)", "req/s"),
    ("handler_h2", "keep-alive h2, minimal Handler in a worker (h2load)", "req/s"),
    ("newtls", "new TLS connection per request, 1 KiB file (parallel ab)", "req/s"),
    ("cgi", "CGI script, keep-alive HTTPS/1.1 (wrk)", "req/s"),
    ("post_1m", "1 MiB POST to a CGI script (wrk)", "req/s"),
]

ATTACKS = [("H", "Slowloris (slowhttptest -H)"), ("B", "slow body (slowhttptest -B)"), ("X", "slow read (slowhttptest -X)")]


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def meta_of(path):
    meta = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    return meta


def fmt(value, digits=0):
    if value is None:
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_kib(kib):
    if kib is None:
        return "—"
    if abs(kib) >= 10240:
        return f"{kib / 1024:,.1f} MiB"
    return f"{kib:,.0f} KiB"


class Figures:
    def __init__(self, rows):
        self.rows = rows
        self.load = {}  # (scenario, stack) -> list of results
        for r in rows:
            if r.get("phase") == "load":
                stack = "weir" if r["stack"] == "testapp" else r["stack"]
                self.load.setdefault((r["scenario"], stack), []).append(r["result"])

    def runs(self, scenario, stack):
        return self.load.get((scenario, stack), [])

    def rps(self, scenario, stack):
        """(median, min, max, n, errors) of the runs' req/s; runs with errors still count."""
        values = [r["rps"] for r in self.runs(scenario, stack) if r.get("rps")]
        errors = sum(r.get("errors") or 0 for r in self.runs(scenario, stack))
        if not values:
            return None
        return statistics.median(values), min(values), max(values), len(values), errors

    def cell(self, scenario, stack):
        fig = self.rps(scenario, stack)
        if fig is None:
            if scenario == "static_h2" and stack == "apache":
                return "n/a¹"
            if scenario.startswith("handler") and stack != "weir":
                return "n/a²"
            return "—"
        med, lo, hi, n, errors = fig
        text = fmt(med) if n == 1 else f"{fmt(med)} ({fmt(lo)}–{fmt(hi)})"
        if errors:
            text += f" ⚠ {errors:,} errors"
        return text

    def median(self, scenario, stack):
        fig = self.rps(scenario, stack)
        return fig[0] if fig else None

    def one(self, phase, stack, key, **match):
        for r in self.rows:
            if r.get("phase") == phase and r.get("stack") == stack and key in r:
                if all(r.get(k) == v for k, v in match.items()):
                    return r[key]
        return None


def ratio_text(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def verdict_ratio(value, reference, factor):
    """A 'value ≥ factor × reference' target: (ratio text, verdict text)."""
    if value is None or reference is None or reference == 0:
        return "—", "not measured"
    ratio = value / reference
    if ratio >= factor:
        return f"{ratio:.2f}×", f"**met** ({ratio / factor:.0%} of the target)"
    need = factor * reference / value - 1
    return f"{ratio:.2f}×", f"**missed** by {1 - ratio / factor:.0%} (weir needs +{need:.0%})"


def verdict_max(value, limit, unit):
    if value is None:
        return "not measured"
    if value <= limit:
        return f"**met** ({value / limit:.0%} of the limit)"
    return f"**missed**: {value / limit:.1f}× the limit ({value - limit:,.1f} {unit} over)"


def main(args):
    results, meta_path, out = args[0], args[1], args[2]
    bg_path = args[3] if len(args) > 3 else None
    perf_path = args[4] if len(args) > 4 else None
    rows = load(results)
    meta = meta_of(meta_path)
    fig = Figures(rows)
    md = []
    w = md.append

    quick = meta.get("quick") == "1"
    w("# weir benchmark results")
    w("")
    w(
        f"Written by `{'QUICK=1 ' if quick else ''}benches/run.sh` on {meta.get('date')} "
        f"({'QUICK mode: one short run per scenario, indicative only' if quick else 'full run'}): "
        f"{int(meta.get('run_seconds', 0)) // 60} min {int(meta.get('run_seconds', 0)) % 60} s of measuring"
        + (f" after a {meta.get('build_seconds')} s build" if meta.get("build_seconds", "0") != "0" else "")
        + ". See [README.md](README.md) for what each scenario does and how to rerun it."
    )
    w("")
    w(
        f"Throughput cells: median of {meta.get('repeat')} run(s) of {meta.get('duration')} s, "
        "(min–max) when there were several; the three stacks' runs are interleaved. All servers and "
        "clients share the same 2 cores, so the absolute figures are those of this machine; the "
        "ratios between stacks are what the targets are about."
    )
    w("")

    # ---- Targets -------------------------------------------------------------------------------
    w("## Targets")
    w("")
    w("| target | weir | reference | ratio | verdict |")
    w("|---|---|---|---|---|")
    weir_static = fig.median("static_h1", "weir")
    apache_static = fig.median("static_h1", "apache")
    nginx_static = fig.median("static_h1", "nginx")
    r, v = verdict_ratio(weir_static, apache_static, 1.0)
    w(f"| keep-alive static req/s ≥ Apache prefork's | {fmt(weir_static)} | Apache {fmt(apache_static)} | {r} | {v} |")
    r, v = verdict_ratio(weir_static, nginx_static, 2.0)
    w(f"| keep-alive static req/s ≥ 2 × nginx → Apache | {fmt(weir_static)} | nginx {fmt(nginx_static)} | {r} | {v} |")
    weir_handler = fig.median("handler_h1", "weir")
    r, v = verdict_ratio(weir_handler, apache_static, 0.7)
    w(f"| minimal Handler in a worker ≥ 0.7 × Apache's static req/s | {fmt(weir_handler)} | Apache static {fmt(apache_static)} | {r} | {v} |")
    weir_new, nginx_new = fig.median("newtls", "weir"), fig.median("newtls", "nginx")
    r, v = verdict_ratio(weir_new, nginx_new, 1.3)
    w(f"| new TLS connections/s ≥ 1.3 × nginx's | {fmt(weir_new)} | nginx {fmt(nginx_new)} | {r} | {v} |")
    attack_conns = meta.get("attack_conns")
    workers = meta.get("attack_workers")
    for mode, name in ATTACKS:
        weir_probe = fig.one("attack", "weir", "probe", mode=mode)
        nginx_probe = fig.one("attack", "nginx", "probe", mode=mode)
        if not weir_probe:
            w(f"| {name}, {attack_conns} conns, {workers} workers: probe 100 %, p99 ≤ nginx's | — | — | — | not measured |")
            continue
        success = weir_probe["success_pct"]
        p99, np99 = weir_probe.get("p99_ms"), (nginx_probe or {}).get("p99_ms")
        problems = []
        if success < 100.0:
            problems.append(f"success {success:.1f} % (short by {100 - success:.1f} points)")
        if p99 is None or (np99 is not None and p99 > np99):
            if p99 is not None:
                problems.append(f"p99 {p99 / np99:.2f}× nginx's (+{p99 - np99:.2f} ms)")
            else:
                problems.append("no successful probe")
        verdict = "**met**" if not problems else "**missed**: " + "; ".join(problems)
        if np99 is None and not problems:
            verdict = (
                "**met** (nginx → Apache answered no probe, so it has no p99)"
                if nginx_probe and nginx_probe.get("ok") == 0
                else "**met** (success); nginx's p99 not measured"
            )
        w(
            f"| {name}, {attack_conns} conns, {workers} workers: probe 100 %, p99 ≤ nginx's | "
            f"{success:.1f} %, p99 {fmt(p99, 1)} ms | nginx {fmt((nginx_probe or {}).get('success_pct'), 1)} %, "
            f"p99 {fmt(np99, 1)} ms | {ratio_text(p99, np99)} | {verdict} |"
        )
    handshake_target(fig, meta, w)
    per_conn = per_connection(fig, "weir")
    w(
        f"| PSS per held idle TLS connection ≤ 10 KiB | {fmt(per_conn, 1)} KiB | nginx {fmt(per_connection(fig, 'nginx'), 1)} KiB, "
        f"Apache {fmt(per_connection(fig, 'apache'), 1)} KiB | — | {verdict_max(per_conn, 10.0, 'KiB')} |"
    )
    rest = fig.one("memory", "weir", "rest") or {}
    warm_figures = fig.one("memory", "weir", "warm") or {}
    # The largest worker after use: requests need not spread evenly over the pool.
    warm = warm_figures.get("worker_max_kib", warm_figures.get("worker_avg_kib"))
    worker = rest.get("worker_avg_kib")
    apache_worker = (fig.one("memory", "apache", "rest") or {}).get("worker_avg_kib")
    w(
        f"| idle worker PSS ≤ 300 KiB (fresh, average; the largest after 20 requests in brackets) | {fmt(worker)} KiB ({fmt(warm)} KiB) | "
        f"Apache child {fmt(apache_worker)} KiB | — | {verdict_max(worker, 300.0, 'KiB')}"
        + (f"; after 20 requests {verdict_max(warm, 300.0, 'KiB')}" if warm is not None else "") + " |"
    )
    w("")

    # ---- Throughput ------------------------------------------------------------------------------
    w("## Throughput (requests per second)")
    w("")
    w("| scenario | " + " | ".join(name for _, name in STACKS) + " | weir / Apache | weir / nginx |")
    w("|---|---|---|---|---|---|")
    for key, title, _ in SCENARIOS:
        cells = [fig.cell(key, s) for s, _ in STACKS]
        weir = fig.median(key, "weir")
        ref_apache = fig.median("static_h1" if key.startswith("handler") else key, "apache")
        ref_nginx = fig.median(key, "nginx")
        w(f"| {title} | " + " | ".join(cells) + f" | {ratio_text(weir, ref_apache)}"
          + ("³" if key.startswith("handler") else "") + f" | {ratio_text(weir, ref_nginx)} |")
    w("")
    w("¹ mod_http2 does not negotiate h2 under mpm_prefork (AH10034), so Apache prefork has no h2 figure.  ")
    w("² Apache and nginx have no in-process Handler; the target compares weir's Handler with Apache's static file.  ")
    w("³ against Apache's keep-alive HTTPS/1.1 static figure.")
    w("")
    latency_rows = []
    for key, title, _ in SCENARIOS:
        for s, name in STACKS:
            runs = [r for r in fig.runs(key, s) if r.get("p50_ms") is not None]
            if runs:
                p50 = statistics.median(r["p50_ms"] for r in runs)
                p99 = statistics.median(r["p99_ms"] for r in runs if r.get("p99_ms") is not None)
                latency_rows.append(f"| {title} | {name} | {p50:.2f} | {p99:.2f} |")
    if latency_rows:
        w("Latency seen by wrk (medians over the runs):")
        w("")
        w("| scenario | stack | p50 ms | p99 ms |")
        w("|---|---|---|---|")
        md.extend(latency_rows)
        w("")
    tls = [r for r in rows if r.get("phase") == "tls"]
    if tls:
        w("TLS negotiated with an OpenSSL 3 client (`openssl s_client -brief`): " + "; ".join(
            f"{r['stack']}: {r['negotiated']}" for r in sorted(tls, key=lambda r: r["stack"])) + ".")
        w("")

    # ---- Attacks ---------------------------------------------------------------------------------
    w(f"## Slow-client attacks ({attack_conns} connections, MaxRequestWorkers {workers})")
    w("")
    w(
        "A legitimate client sends a new HTTPS request (`GET /cgi-bin/hello`, which needs a worker in "
        f"every stack) every 100 ms for {meta.get('attack_probe_seconds')} s once the attack's "
        f"connections are open. The attack comes from {meta.get('attack_procs')} slowhttptest processes "
        "sharing the connections. *held* counts the attack's established connections on the server "
        "port when the probe starts (the probe waits for 95 % of them, or until their number stops "
        "growing) → when it ends; mod_reqtimeout-style limits (Apache's and weir's header=20-40) "
        "start cutting Slowloris connections 20 s after they opened, so for weir and Apache part "
        "of the probe runs while the cut connections are closed. With 10 probes a second, p99 is "
        "about the fourth-slowest of 300: between runs of the same build it moved by 5 ms or more, "
        "so a few ms between stacks is within run-to-run noise."
    )
    w("")
    w("| attack | stack | held | probe success | p50 ms | p99 ms | max ms | failures |")
    w("|---|---|---|---|---|---|---|---|")
    for mode, name in ATTACKS:
        for s, sname in STACKS:
            for r in rows:
                if r.get("phase") == "attack" and r.get("mode") == mode and r.get("stack") == s:
                    p = r["probe"]
                    errors = ", ".join(f"{k} ×{v}" for k, v in sorted(p.get("errors", {}).items())) or "—"
                    waited = f" (after {r['ramp_seconds']} s)" if "ramp_seconds" in r else ""
                    w(
                        f"| {name} | {sname} | {r.get('held_start')}{waited} → {r.get('held_end')} | "
                        f"{p['success_pct']:.1f} % ({p['ok']}/{p['sent']}) | {fmt(p.get('p50_ms'), 1)} | "
                        f"{fmt(p.get('p99_ms'), 1)} | {fmt(p.get('max_ms'), 0)} | {errors} |"
                    )
    w("")

    handshake_section(rows, meta, w)

    # ---- Memory ----------------------------------------------------------------------------------
    w("## Memory (PSS, from /proc/PID/smaps_rollup, summed over each stack's processes)")
    w("")
    w("| stack | total at rest | processes | workers | idle worker (avg) | idle worker after 20 requests (avg, largest) | held TLS conns | total holding them | per connection | per 10,000 | total after the load phase |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for s, name in STACKS:
        rest = fig.one("memory", s, "rest")
        warm = fig.one("memory", s, "warm") or {}
        held = fig.one("memory", s, "loaded")
        after = fig.one("memory", s, "after_load")
        n = fig.one("memory", s, "held_conns")
        pc = per_connection(fig, s)
        if not rest:
            continue
        w(
            f"| {name} | {fmt_kib(rest['total_kib'])} | {rest['processes']} | {rest['workers']} | "
            f"{fmt(rest.get('worker_avg_kib'))} KiB | {fmt(warm.get('worker_avg_kib'))} KiB, {fmt(warm.get('worker_max_kib'))} KiB | {fmt(n)} | {fmt_kib(held['total_kib'] if held else None)} | "
            f"{fmt(pc, 1)} KiB | {fmt_kib(pc * 10000 if pc is not None else None)} | "
            f"{fmt_kib(after['total_kib'] if after else None)} |"
        )
    front = fig.one("memory", "nginx-front", "rest")
    if front:
        w("")
        w(
            f"nginx's own processes at rest (without the Apache behind it): {fmt_kib(front['total_kib'])}, "
            f"worker average {fmt(front.get('worker_avg_kib'))} KiB (worker_connections 16384 preallocates "
            f"its connection table). The nginx → Apache row's workers are the Apache children behind it. "
            f"Apache holds idle connections with one "
            f"child each, so it gets only {meta.get('mem_conns_apache')} (below MaxRequestWorkers); the others "
            f"get {meta.get('mem_conns')}."
        )
    w("")

    # ---- Pool growth -----------------------------------------------------------------------------
    w(f"## Pool growth for a burst ({meta.get('burst')} concurrent requests to a CGI script that sleeps 1 s, pool of 5 at rest)")
    w("")
    w("| stack | workers before | peak workers | s until the peak | first answer s | last answer s | ok |")
    w("|---|---|---|---|---|---|---|")
    for s, name in STACKS:
        b = fig.one("burst", s, "burst")
        if b:
            w(
                f"| {name} | {b.get('workers_before')} | {b.get('workers_peak')} | {fmt(b.get('seconds_to_peak_workers'), 2)} | "
                f"{fmt(b.get('first_done_s'), 2)} | {fmt(b.get('last_done_s'), 2)} | {b.get('ok')}/{b.get('n')} |"
            )
    w("")
    w(
        "With one worker per request from the start, every answer would come after ≈ 1 s; the last answer "
        "minus 1 s is how long the burst waited for the pool to grow (Apache's prefork spawns 1, 2, 4 … 32 "
        "children per second)."
    )
    w("")

    # ---- Bodies far larger than memory --------------------------------------------------------
    for r in rows:
        if r.get("phase") == "bigbody":
            bigbody_section(r["result"], w)

    # ---- Chaos soak ------------------------------------------------------------------------------
    for r in rows:
        if r.get("phase") == "chaos":
            chaos_section(r["result"], r.get("after_stop", {}), w)

    # ---- Criterion -------------------------------------------------------------------------------
    crit = [r for r in rows if r.get("phase") == "criterion"]
    if crit:
        w("## Hot paths (cargo bench, criterion)")
        w("")
        w("| bench | time (low – estimate – high) |")
        w("|---|---|")
        for r in crit:
            w(f"| `{r['bench']}` | {ns(r['low_ns'])} – **{ns(r['ns'])}** – {ns(r['high_ns'])} |")
        w("")

    # ---- Background load -------------------------------------------------------------------------
    if bg_path and os.path.exists(bg_path):
        bg = load(bg_path)
        phases = {}
        for r in bg:
            phases.setdefault(r["phase"] or "setup", []).append(r)
        w("## Other processes on the machine")
        w("")
        w(
            "CPU used by processes that are not part of the benchmark (sampled every 2 s; 100 % = one "
            "core of 2). Anything well above a few % makes the figures of that phase noisy."
        )
        w("")
        w("| phase | mean | max | busiest others |")
        w("|---|---|---|---|")
        for phase, samples in phases.items():
            values = [s["others_pct"] for s in samples]
            names = {}
            for s in samples:
                for name, pct in s["top"]:
                    names[name] = names.get(name, 0) + pct / len(samples)
            busy = ", ".join(f"{n} {p:.0f} %" for n, p in sorted(names.items(), key=lambda kv: -kv[1])[:3] if p >= 1)
            w(f"| {phase} | {statistics.mean(values):.0f} % | {max(values):.0f} % | {busy or '—'} |")
        w("")

    if perf_path and os.path.exists(perf_path):
        w("## Where weir's edge spends its time (perf, keep-alive static file)")
        w("")
        w("```")
        with open(perf_path) as f:
            md.extend(line.rstrip("\n") for line in f)
        w("```")
        w("")

    # ---- Machine and commands --------------------------------------------------------------------
    w("## Machine and versions")
    w("")
    w("| | |")
    w("|---|---|")
    for key in ("cpu", "cores", "memory", "os", "kernel", "commit", "weir", "rustc", "apache", "nginx",
                "openssl", "wrk", "h2load", "ab", "slowhttptest"):
        w(f"| {key} | {meta.get(key, '—')} |")
    w("")
    w("## Commands")
    w("")
    d, c = meta.get("duration"), meta.get("conns")
    clients, conc = meta.get("newtls_clients"), meta.get("newtls_conc")
    procs = int(meta.get("attack_procs") or 1)
    ac = -(-int(meta.get("attack_conns")) // procs)
    ar = -(-int(meta.get("attack_rate")) // procs)
    w("```sh")
    w(f"wrk -t2 -c{c} -d{d}s --latency https://127.0.0.1:PORT/1k.bin                 # static, HTTP/1.1")
    w(f"h2load -t2 -c8 -m{int(c) // 8} -D {d} https://127.0.0.1:PORT/1k.bin                 # static, h2")
    w(f"wrk -t2 -c{c} -d{d}s --latency https://127.0.0.1:PORT/app/x                  # Handler (weir's testapp)")
    w(f"h2load -t2 -c8 -m{int(c) // 8} -D {d} https://127.0.0.1:PORT/app/x")
    w(f"ab -q -c {conc} -t {d} -n 10000000 https://127.0.0.1:PORT/1k.bin   # × {clients} in parallel: new TLS per request")
    w(f"wrk -t2 -c16 -d{d}s --latency https://127.0.0.1:PORT/cgi-bin/hello           # CGI")
    w(f"wrk -t2 -c8 -d{d}s --latency -s post.lua https://127.0.0.1:PORT/cgi-bin/post # 1 MiB POST")
    w(f"slowhttptest -H -c {ac} -r {ar} -i 10 -x 24 -t GET -u https://127.0.0.1:PORT/1k.bin -p 3 -l SECONDS")
    w(f"slowhttptest -B -c {ac} -r {ar} -i 10 -x 10 -s 8192 -t POST -u https://127.0.0.1:PORT/cgi-bin/post -p 3 -l SECONDS")
    w(f"slowhttptest -X -c {ac} -r {ar} -w 512 -y 1024 -n 5 -z 32 -k 3 -u https://127.0.0.1:PORT/128k.bin -p 3 -l SECONDS")
    w(f"# (each slowhttptest command × {procs} processes side by side, at nice -n 10)")
    w("python3 benches/tools/bench.py probe https://127.0.0.1:PORT/cgi-bin/hello SECONDS OUT   # during each attack")
    w(f"python3 benches/tools/bench.py hold 127.0.0.1 PORT {meta.get('mem_conns')} READY          # idle TLS connections")
    w(f"python3 benches/tools/bench.py burst https://127.0.0.1:PORT/cgi-bin/sleep {meta.get('burst')} OUT")
    w("```")
    w("")
    w(
        f"Knobs of this run: BENCH_DURATION={d} BENCH_REPEAT={meta.get('repeat')} BENCH_CONNS={c} "
        f"ATTACK_CONNS={meta.get('attack_conns')} ATTACK_RATE={meta.get('attack_rate')} "
        f"ATTACK_PROCS={procs} ATTACK_WORKERS={meta.get('attack_workers')} "
        f"ATTACK_PROBE_SECONDS={meta.get('attack_probe_seconds')} MEM_CONNS={meta.get('mem_conns')} "
        f"MEM_CONNS_APACHE={meta.get('mem_conns_apache')} BURST={meta.get('burst')} "
        f"NEWTLS_CLIENTS={clients} NEWTLS_CONC={conc}. Raw figures: [results.jsonl](results.jsonl)."
    )
    w("")
    with open(out, "w") as f:
        f.write("\n".join(md))


def handshake_target(fig, meta, w):
    """The target row of the handshake-stage attack: weir's probe 100 %, p99 ≤ nginx's."""
    what = (
        f"{meta.get('handshake_silent')} silent + {meta.get('handshake_stalling')} ClientHello-stalling "
        "conns from one address: probe from another 100 %, p99 ≤ nginx's"
    )
    weir_probe = fig.one("handshake", "weir", "probe")
    nginx_probe = fig.one("handshake", "nginx", "probe") or {}
    if not weir_probe:
        w(f"| {what} | — | — | — | not measured |")
        return
    success, p99, np99 = weir_probe["success_pct"], weir_probe.get("p99_ms"), nginx_probe.get("p99_ms")
    problems = []
    if success < 100.0:
        problems.append(f"success {success:.1f} %")
    if p99 is None:
        problems.append("no successful probe")
    elif np99 is not None and p99 > np99:
        problems.append(f"p99 {p99 / np99:.2f}× nginx's")
    verdict = "**met**" if not problems else "**missed**: " + "; ".join(problems)
    w(
        f"| {what} | {success:.1f} %, p99 {fmt(p99, 1)} ms | nginx {fmt(nginx_probe.get('success_pct'), 1)} %, "
        f"p99 {fmt(np99, 1)} ms | {ratio_text(p99, np99)} | {verdict} |"
    )


def handshake_section(rows, meta, w):
    runs = [r for r in rows if r.get("phase") == "handshake"]
    if not runs:
        return
    w(
        f"## Handshake stage ({meta.get('handshake_silent')} silent + {meta.get('handshake_stalling')} "
        "ClientHello-stalling connections from one address)"
    )
    w("")
    w(
        "127.0.0.2 opens connections that send nothing, and as many that send the first 11 bytes of "
        "a ClientHello and then nothing, reopening any the server closes a second later. Once all "
        "have been opened, a client on 127.0.0.3 sends a full HTTPS request (`GET /1k.bin`, new "
        f"connection and handshake each) every 100 ms for {meta.get('handshake_probe_seconds')} s. "
        "*held* counts the attack's established connections on the server port when the probe starts "
        "→ when it ends; *closed by server* counts the attack's connections the server ended "
        "(weir's stage evicts, nginx's handshake timeout is 60 s)."
    )
    w("")
    w("| stack | held | closed by server | probe success | p50 ms | p99 ms | max ms | failures |")
    w("|---|---|---|---|---|---|---|---|")
    for r in sorted(runs, key=lambda r: r.get("stack")):
        p, a = r["probe"], r.get("attack") or {}
        errors = ", ".join(f"{k} ×{v}" for k, v in sorted(p.get("errors", {}).items())) or "—"
        w(
            f"| {r.get('stack')} | {r.get('held_start')} → {r.get('held_end')} | {a.get('closed_by_server', '—')} "
            f"(by the time all were open) | {p['success_pct']:.1f} % ({p['ok']}/{p['sent']}) | "
            f"{fmt(p.get('p50_ms'), 1)} | {fmt(p.get('p99_ms'), 1)} | {fmt(p.get('max_ms'), 0)} | {errors} |"
        )
    w("")


def bigbody_section(result, w):
    """The bigbody phase: peak-RSS growth of weir's edge and worker for a body of `size` bytes."""
    size = result["size"]
    w(f"## Bodies far larger than memory (weir, {size / 2**30:g} GiB each way)")
    w("")
    w("Growth of VmHWM (peak RSS) over its value just before the transfer; target: each within 32 MiB.")
    w("")
    w("| transfer | took | curl (POST: count; status, up, down, B/s) | edge idle | edge growth | worker idle | largest worker growth |")
    w("|---|---|---|---|---|---|---|")
    for name, label in (("post", "POST through CGI (`wc -c`)"), ("get", f"CGI response read at {result['rate']}/s")):
        t = result[name]
        ok = all(v is not None and v <= 32 * 1024 for v in (t["edge_growth_kib"], t["worker_growth_kib"]))
        w(
            f"| {label} | {t['seconds']} s | `{t['curl']}` | {fmt_kib(t['edge_idle_kib'])} | "
            f"**{fmt_kib(t['edge_growth_kib'])}** | {fmt_kib(t['worker_idle_kib'])} | "
            f"**{fmt_kib(t['worker_growth_kib'])}** {'✓' if ok else '✗'} |"
        )
    w("")


def chaos_section(c, after, w):
    """The chaos phase: steady load while edges, pool masters and workers are killed and the
    configuration is reloaded; what failed, how fast the site came back, what leaked."""
    w(f"## Chaos soak (weir, {c['seconds']:.0f} s)")
    w("")
    w(
        f"{c['clients']} keep-alive clients at up to {c['rate']:g} requests/s in all "
        f"({c['requests'] / max(c['seconds'], 1):.0f}/s achieved) (a 1 KiB static file and a "
        f"CGI script, alternately; one in eight a script that sleeps 1 s); a random edge, pool master or worker SIGKILLed every "
        f"~{c['kill_every_s']:g} s and `weir reload` every ~{c['reload_every_s']:g} s (each 0.5–1.5 × that). "
        "Only requests in flight on a killed process may fail (counted as such when a kill fell while "
        "they were under way). A request on a kept-alive connection that got no byte of an answer is "
        "retried once on a new connection, as clients do for idempotent requests: that includes "
        "connections a killed edge held, with or without a request read."
    )
    w("")
    ok = (
        c["failed_otherwise"] == 0
        and c["leaked_slots"] == 0
        and c["orphans_during"] == 0
        and c["orphans_at_end"] == 0
        and after.get("orphans_after_stop", 0) == 0
        and c["not_recovered"] == 0
    )
    w("| figure | value | target |")
    w("|---|---|---|")
    w(f"| requests (answered 200) | {c['requests']} ({c['answered']}) | |")
    w(f"| failed, in flight on a killed process | {c['failed_in_flight_on_a_kill']} | any |")
    kinds = ", ".join(c.get("failure_kinds", [])) or "—"
    w(f"| failed otherwise | **{c['failed_otherwise']}** | 0 {'✓' if c['failed_otherwise'] == 0 else '✗'} |")
    w(f"| failure kinds | {kinds} | |")
    w(f"| stale keep-alive connections retried | {c['retried_stale_keepalive']} | |")
    w(f"| reloads (exit 0) | {c['reloads']} ({c['reloads_ok']}) | |")
    rs = c["reload_seconds"]
    if rs.get("n"):
        w(f"| `weir reload` took (median / max) | {rs['median_s']} s / {rs['max_s']} s | |")
    w(f"| kills not followed by an answer within 30 s | {c['not_recovered']} | 0 |")
    w(f"| leaked scoreboard slots | **{c['leaked_slots']}** | 0 {'✓' if c['leaked_slots'] == 0 else '✗'} |")
    orphans = c["orphans_during"] + c["orphans_at_end"] + after.get("orphans_after_stop", 0)
    w(
        f"| orphans (during / at the end / after the stop) | **{c['orphans_during']} / {c['orphans_at_end']} / "
        f"{after.get('orphans_after_stop', '?')}** | 0 {'✓' if orphans == 0 else '✗'} |"
    )
    w(f"| verdict | {'✓' if ok else '✗'} | |")
    w("")
    w("| killed | times | recovery median | p95 | max |")
    w("|---|---|---|---|---|")
    for role, n in sorted(c["kills"].items()):
        r = c["recovery"].get(role, {})
        w(f"| {role} | {n} | {r.get('median_s', '—')} s | {r.get('p95_s', '—')} s | {r.get('max_s', '—')} s |")
    w("")
    w(
        "Recovery: from the SIGKILL until a new connection gets a 200 for both the static file and the "
        "CGI script (an edge is restarted after its backoff, 0.5 s doubling while it keeps being killed)."
    )
    if c.get("failed_otherwise_examples"):
        w("")
        w("Failures with no kill under way: " + "; ".join(
            f"{e['t']} s {e['path']} {e['error']}" for e in c["failed_otherwise_examples"]))
    w("")


def ns(value):
    if value >= 1e6:
        return f"{value / 1e6:.2f} ms"
    if value >= 1e3:
        return f"{value / 1e3:.2f} µs"
    return f"{value:.1f} ns"


def per_connection(fig, stack):
    rest = fig.one("memory", stack, "rest")
    held = fig.one("memory", stack, "loaded")
    n = fig.one("memory", stack, "held_conns")
    if not rest or not held or not n:
        return None
    return (held["total_kib"] - rest["total_kib"]) / n
