#!/usr/bin/env python3
"""report.py: turns the JSON lines of bench/run.sh into a table and results/latest.json."""

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

    sizes = sorted({r["n"] for r in rows if r["kind"] in ("handshake", "hold")})
    ceiling = get("verify", "ceiling").get("verify_per_s")
    suite = get("suite", "ref")

    table = []

    def line(label, fn, spec, target=""):
        table.append((label, [fmt(fn(n), spec) for n in sizes], target))

    def hs(target, key):
        return lambda n: get("handshake", target, n).get(key)

    def ratio(n):
        r, o = hs("ref", "per_s")(n), hs("openclaw", "per_s")(n)
        return r / o if r and o else None

    def of_ceiling(n):
        r = hs("ref", "per_s")(n)
        return 100.0 * r / ceiling if r and ceiling else None

    def hold(key, scale=1.0):
        def f(n):
            v = get("hold", "ref", n).get(key)
            return v * scale if isinstance(v, (int, float)) and v >= 0 else None
        return f

    line("handshakes/s, reference", hs("ref", "per_s"), ",.0f")
    line("handshakes/s, OpenClaw " + meta.get("openclaw_version", ""), hs("openclaw", "per_s"), ",.0f")
    line("reference / OpenClaw", ratio, ".1f", ">= 10x")
    line("reference, % of verify ceiling", of_ceiling, ".0f", ">= 50 %")
    line("handshake p99 ms, reference", hs("ref", "p99_ms"), ".2f")
    line("handshake p99 ms, OpenClaw", hs("openclaw", "p99_ms"), ".2f")
    line("pairing N via approve, s (reference)", lambda n: get("pair", "ref", n).get("seconds"), ".2f")
    line("pairing N (auto), s (OpenClaw)", lambda n: get("pair", "openclaw", n).get("seconds"), ".2f")
    line("held open: nodes", hold("held"), ",.0f")
    line("held open: RSS KiB per conn", hold("rss_per_conn_bytes", 1 / 1024), ".2f", "<= 10 KiB")
    line("held open: gateway RSS MiB", hold("rss_held_kib", 1 / 1024), ".1f")
    line("held open: fds per conn", hold("fds_per_conn"), ".2f")
    line("held open: idle CPU %", hold("idle_cpu_pct"), ".2f", "< 2 %")
    line("held open: ramp-up s", hold("ramp_s"), ".2f")
    line("approve->hello-ok p50 ms", hold("approve_hello_p50_ms"), ".3f")
    line("approve->hello-ok p99 ms", hold("approve_hello_p99_ms"), ".3f", "<= 5 ms")
    line("approve->ok (operator) p99 ms", hold("approve_ok_p99_ms"), ".3f")

    w0 = max(len(t[0]) for t in table)
    head = "%-*s" % (w0, "N =") + "".join("%12s" % f"{n:,}" for n in sizes) + "   target"
    print()
    print("clawpair bench, %s CPUs (%s), handshakes with %s in flight" %
          (meta.get("cpus", "?"), meta.get("cpu", "?"), meta.get("parallel", "?")))
    if ceiling:
        v = get("verify", "ceiling")
        print("Ed25519 verify-only ceiling: %s verifies/s on one core (%.1f us each)" %
              (fmt(ceiling, ",.0f"), v.get("us_per_verify", 0)))
    print(head)
    print("-" * len(head))
    for label, vals, target in table:
        print("%-*s" % (w0, label) + "".join("%12s" % v for v in vals) + "   " + target)
    if suite:
        print("conformance suite vs reference: %s s (exit %s) %s   target < 10 s" %
              (fmt(suite.get("seconds"), ".2f"), suite.get("exit"), suite.get("summary", "")))
    else:
        print("conformance suite: not run")
    errors = [r for r in rows if r.get("error") or r.get("failed")]
    for r in errors:
        print("note: %s/%s N=%s: %s" % (r["kind"], r["target"], r["n"],
                                         r.get("error") or "%s failed" % r.get("failed")))

    out = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "meta": meta,
           "sizes": sizes, "results": rows,
           "table": [{"figure": t[0], "values": dict(zip(map(str, sizes), t[1])),
                      "target": t[2]} for t in table]}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    print("\nwritten: %s" % a.out)


if __name__ == "__main__":
    main()
