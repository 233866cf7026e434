#!/usr/bin/env python3
"""report.py: turns the JSON lines of bench/run.sh into the README's table (Markdown) and
results/latest.json: every figure per N, its growth (the figure at the largest N over the same at
the smallest) and, where the figure has a goal, whether this run met it."""

import argparse
import json
import time


def fmt(v, spec):
    if v is None:
        return "-"
    try:
        return format(v, spec)
    except (TypeError, ValueError):
        return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("out")
    ap.add_argument("--meta", nargs="*", default=[])
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.results) if line.strip()]
    meta = dict(m.split("=", 1) for m in a.meta)

    def get(kind, target, n=None):
        for r in rows:
            if r["kind"] == kind and r["target"] == target and (n is None or r["n"] == n):
                return r
        return {}

    sizes = sorted({r["n"] for r in rows if r["kind"] in ("handshake", "hold", "storm")})
    verify = get("verify", "ceiling")
    us_verify = verify.get("us_per_verify")
    suite = get("suite", "ref")
    small, large = (sizes[0], sizes[-1]) if sizes else (None, None)
    ocv = meta.get("openclaw_version", "")

    def num(v):
        return v if isinstance(v, (int, float)) and v >= 0 else None

    def field(kind, target, key, scale=1.0):
        def f(n):
            v = num(get(kind, target, n).get(key))
            return v * scale if v is not None else None
        return f

    def ratio(n):
        r, o = field("handshake", "ref", "per_s")(n), field("handshake", "openclaw", "per_s")(n)
        return r / o if r and o else None

    def in_verifies(n):
        c = field("handshake", "ref", "gateway_cpu_us")(n)
        return c / us_verify if c and us_verify else None

    # Goals: (kind, bound, where) with kind "min"/"max" on the figure ("growth" on its growth),
    # where None: every N measured, else that N.
    table = []

    def line(label, fn, spec, goal=None, growth=True):
        vals = {n: fn(n) for n in sizes}
        g = None
        if growth and small != large and all(isinstance(vals.get(k), (int, float))
                                             for k in (small, large)) and vals[small]:
            g = vals[large] / vals[small]
        verdict = ""
        if goal:
            what, bound, where, text = goal
            if what == "growth":
                v = [g]
            elif where is None:
                v = [x for x in vals.values() if x is not None]
            else:
                v = [vals.get(where)]
            if v and any(isinstance(x, str) for x in v):
                verdict = text + ": not met"  # e.g. not every node came back
            elif not v or any(not isinstance(x, (int, float)) for x in v):
                verdict = text + ": not measured"
            else:
                ok = all(x >= bound for x in v) if what in ("min", "growth") else \
                    all(x <= bound for x in v)
                verdict = text + (": met" if ok else ": not met")
        table.append((label, [fmt(vals[n], spec) for n in sizes],
                      fmt(g, ".2f") if g is not None else "", verdict))

    big = f"{large:,}" if large else "?"
    line("handshakes/s, clawpair-gateway", field("handshake", "ref", "per_s"), ",.0f",
         ("growth", 0.95, None, f"at {big} >= 95 % of at {small:,}" if small else ""))
    line("handshakes/s, OpenClaw " + ocv, field("handshake", "openclaw", "per_s"), ",.0f")
    line("clawpair / OpenClaw", ratio, ".1f", ("min", 10, None, ">= 10x"), growth=False)
    line("gateway CPU per handshake, us", field("handshake", "ref", "gateway_cpu_us"), ".0f")
    line("the same, in Ed25519 verifies", in_verifies, ".2f", ("max", 2.0, None, "<= 2"))
    line("OpenClaw CPU per handshake, us", field("handshake", "openclaw", "gateway_cpu_us"),
         ",.0f")
    line("handshake p99, ms", field("handshake", "ref", "p99_ms"), ".2f")
    line("pairing N via device.pair.approve, s", field("pair", "ref", "seconds"), ".2f",
         ("max", 5.0, large, f"<= 5 s at {big}"))
    line("pairing N, OpenClaw (auto-approve), s", field("pair", "openclaw", "seconds"), ".2f")
    line("holding N nodes pending (ramp-up), s", field("hold", "ref", "ramp_s"), ".2f",
         ("max", 2.0, large, f"<= 2 s at {big}"))
    line("RSS per held-open connection, KiB", field("hold", "ref", "rss_per_conn_bytes", 1 / 1024),
         ".2f", ("max", 10.0, None, "<= 10 KiB"))
    line("CPU with every node held and idle, %", field("hold", "ref", "idle_cpu_pct"), ".2f",
         ("max", 2.0, None, "< 2 %"), growth=False)
    line("approve to hello-ok p50, ms", field("hold", "ref", "approve_hello_p50_ms"), ".2f")
    line("approve to hello-ok p99, ms", field("hold", "ref", "approve_hello_p99_ms"), ".2f",
         ("max", 5.0, large, f"<= 5 ms at {big}"))
    def storm(target, key):
        def f(n):
            r = get("storm", target, n)
            if r and r.get("back", 0) < r.get("nodes", 0):
                return "%d of %d back" % (r["back"], r["nodes"])
            return num(r.get(key))
        return f

    line("reconnect storm: all back (hello-ok), s", storm("ref", "storm_s"), ".2f",
         ("max", 3.0, large, f"<= 3 s at {big}"))
    line("storm: gateway stop (every socket closed), s", field("storm", "ref", "restart_stop_s"),
         ".2f")
    line("storm: gateway start (listening again), s", field("storm", "ref", "restart_start_s"),
         ".2f")
    line("storm: listening to all back, s", field("storm", "ref", "from_listening_s"), ".2f")
    line("reconnect storm, OpenClaw " + ocv + ", s", storm("openclaw", "storm_s"), ".2f")
    line("storm, OpenClaw: listening to all back, s", field("storm", "openclaw", "from_listening_s"),
         ".2f")

    out_lines = []
    p = out_lines.append
    p("clawpair bench, %s CPUs (%s), %s handshakes in flight, %s" %
      (meta.get("cpus", "?"), meta.get("cpu", "?"), meta.get("parallel", "?"),
       time.strftime("%Y-%m-%d", time.gmtime())))
    if us_verify:
        p("one Ed25519 verify in this run: %.1f us (%s verifies/s on one core)" %
          (us_verify, fmt(verify.get("verify_per_s"), ",.0f")))
    p("")
    p("| N = | " + " | ".join(f"{n:,}" for n in sizes) + " | growth | goal |")
    p("|---|" + "---:|" * len(sizes) + "---:|---|")
    for label, vals, g, verdict in table:
        p("| %s | %s | %s | %s |" % (label.strip(), " | ".join(vals), g, verdict))
    p("")
    if suite:
        p("conformance suite vs reference: %s s (exit %s) %s" %
          (fmt(suite.get("seconds"), ".2f"), suite.get("exit"), suite.get("summary", "")))
    else:
        p("conformance suite: not run")
    for r in rows:
        if r.get("error") or r.get("failed") or r.get("failed_attempts"):
            p("note: %s/%s N=%s: %s" % (r["kind"], r["target"], r["n"], r.get("error") or
                                         ("%s failed" % r.get("failed") if r.get("failed")
                                          else "%s reconnects failed" % r.get("failed_attempts"))))
    print("\n".join(out_lines))

    out = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "meta": meta,
           "sizes": sizes, "results": rows,
           "table": [{"figure": t[0].strip(), "values": dict(zip(map(str, sizes), t[1])),
                      "growth": t[2], "goal": t[3]} for t in table],
           "markdown": "\n".join(out_lines)}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    print("\nwritten: %s" % a.out)


if __name__ == "__main__":
    main()
