#!/usr/bin/env python3
"""make-corpus.py: builds the seed corpora of the libFuzzer targets in tests/fuzz/corpus/.

Usage: make-corpus.py TRANSCRIPT_DIR [--vectors FILE] [--scenarios DIR ...] [--out DIR]

  fuzz_frame     every frame (req/res/event) in the captured transcripts, one compact JSON
                 object per file, plus connect frames signed with the device-auth test vectors
                 (so the fuzzer starts past signature verification).
  fuzz_store     state directories built from the pending and paired lists the captured
                 gateways returned, as NUL-separated chunks whose first byte says where the rest
                 goes (see fuzz_store.c): "p<record>" a file of pending/, "d<record>" one of
                 paired/, "P<object>" / "D<object>" the previous layout's pending.json /
                 paired.json. One seed per list in each layout, one with both mixed.
  fuzz_scenario  every scenario file found under the --scenarios directories.

Files are named by the SHA-1 of their content (libFuzzer's convention), so reruns are
idempotent and duplicates collapse.
"""

import argparse
import hashlib
import json
import os
import re
import sys

FRAME_TYPES = ("req", "res", "event")
EXCERPT_LINE = re.compile(r"^\s*\d+\s+(?:in|out)\s+(\{.*\})\s*$")


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def walk(obj):
    yield obj
    if isinstance(obj, dict):
        for v in obj.values():
            yield from walk(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v)


def is_frame(obj):
    return isinstance(obj, dict) and obj.get("type") in FRAME_TYPES


def frames_from_json(doc):
    for node in walk(doc):
        if isinstance(node, dict) and is_frame(node.get("frame")):
            yield node["frame"]


def frames_from_excerpts(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = EXCERPT_LINE.match(line)
            if not m:
                continue
            try:
                obj = json.loads(m.group(1))
            except json.JSONDecodeError:
                continue
            if is_frame(obj):
                yield obj


def store_pairs(doc):
    """(pending, paired) lists from every device.pair.list / node.pair.list style payload."""
    for node in walk(doc):
        if (isinstance(node, dict) and isinstance(node.get("pending"), list)
                and isinstance(node.get("paired"), list)):
            yield node["pending"], node["paired"]


def store_seeds(pending, paired):
    """The new layout (one chunk per record), the previous one (one object per table), and
    a state dir holding both (the import meets records already there)."""
    pend = [r for r in pending if isinstance(r, dict)]
    pair = [r for r in paired if isinstance(r, dict)]
    per_record = [b"p" + compact(r) for r in pend] + [b"d" + compact(r) for r in pair]
    old = [b"P" + compact(keyed(pending, "requestId")), b"D" + compact(keyed(paired, "deviceId"))]
    yield b"\0".join(per_record)
    yield b"\0".join(old)
    yield b"\0".join(per_record[:1] + old)


def keyed(records, key):
    out = {}
    for i, r in enumerate(records):
        if isinstance(r, dict):
            out[str(r.get(key, "k%d" % i))] = r
    return out


def signed_connects(vectors_path):
    with open(vectors_path, encoding="utf-8") as f:
        vec = json.load(f)
    for n, v in enumerate(vec.get("payloads", [])):
        p = v["params"]
        for ver in ("v2", "v3"):
            sig = v["payloads"][ver]["signatureBase64Url"]
            params = {
                "minProtocol": 3,
                "maxProtocol": 4,
                "client": {
                    "id": p["clientId"],
                    "version": "1.0.0",
                    "platform": p.get("platform", ""),
                    "deviceFamily": p.get("deviceFamily", ""),
                    "mode": p["clientMode"],
                },
                "role": p["role"],
                "scopes": p["scopes"],
                "auth": {"token": p["token"]},
                "device": {
                    "id": v["deviceId"],
                    "publicKey": v["publicKeyRawBase64Url"],
                    "signature": sig,
                    "signedAt": p["signedAtMs"],
                    "nonce": p["nonce"],
                },
            }
            yield {"type": "req", "id": "c%d%s" % (n, ver), "method": "connect", "params": params}


def write(outdir, data, counts, target):
    d = os.path.join(outdir, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    path = os.path.join(d, name)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        counts[target] = counts.get(target, 0) + 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("transcripts")
    ap.add_argument("--vectors")
    ap.add_argument("--scenarios", action="append", default=[])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    args = ap.parse_args()

    counts = {}
    for root, _, files in os.walk(args.transcripts):
        for fn in sorted(files):
            path = os.path.join(root, fn)
            if fn.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    doc = json.load(f)
                for fr in frames_from_json(doc):
                    write(args.out, compact(fr), counts, "fuzz_frame")
                for pending, paired in store_pairs(doc):
                    for data in store_seeds(pending, paired):
                        if data:
                            write(args.out, data, counts, "fuzz_store")
            elif fn.endswith(".txt"):
                for fr in frames_from_excerpts(path):
                    write(args.out, compact(fr), counts, "fuzz_frame")

    if args.vectors:
        for fr in signed_connects(args.vectors):
            write(args.out, compact(fr), counts, "fuzz_frame")

    # Edge seeds the captures do not contain: empty stores, a record under another name, a
    # compat node request, a stale request of a paired device, a leftover temp file.
    rec = compact({"requestId": "r1", "deviceId": "d1", "publicKey": "k", "role": "node",
                   "roles": ["node"], "scopes": [], "ts": 1})
    dev = compact({"deviceId": "d1", "publicKey": "k", "roles": ["node"], "scopes": [],
                   "createdAtMs": 1})
    for seed in (b"P{}\0D{}\0N{}", b"P{}", b"\0", b"", b"p" + rec, b"q" + rec,
                 b"n" + rec, b"p" + rec + b"\0d" + dev,
                 b"p" + compact({"requestId": ".r1.json.Ab12Cd"})):
        write(args.out, seed, counts, "fuzz_store")

    for sdir in args.scenarios:
        for root, _, files in os.walk(sdir):
            for fn in sorted(files):
                if fn.endswith(".json"):
                    with open(os.path.join(root, fn), "rb") as f:
                        write(args.out, f.read(), counts, "fuzz_scenario")

    for t in sorted(counts):
        print("%s: %d new seed(s)" % (t, counts[t]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
