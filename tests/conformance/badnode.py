#!/usr/bin/env python3
"""badnode.py: a small pairing node (stdlib and the cryptography package) that the client
mode's self-test grades: well-behaved by default (its reconnect waits have jitter), and with
--break NAME it breaks one client requirement of spec/pairing.md section 10, so that each
client case is shown able to fail.

Usage: badnode.py --url ws://HOST:PORT --token-file F --state-dir D [--break NAME]...
Breaks: nonce, signature, device-id, new-key, close-pending (gives up a held connect after
0.3 s, then waits 1.5 s, 3 s, ...), reconnect-on-hello, no-token, exit-on-close, fast-retry,
no-jitter, reconnect-always, tick-impatient, crash-on-garbage, leak-token.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
import uuid
from urllib.parse import urlparse

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

BREAKS = ("nonce", "signature", "device-id", "new-key", "close-pending", "reconnect-on-hello",
          "no-token", "exit-on-close", "fast-retry", "no-jitter", "reconnect-always",
          "tick-impatient", "crash-on-garbage", "leak-token")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("%d %s" % (code, reason))
        self.code, self.reason = code, reason


class WS:
    """A WebSocket client: text frames out (masked), whole messages in."""

    def __init__(self, url):
        u = urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (u.hostname, u.port, key)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed(1006, "no upgrade")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise Closed(1006, "upgrade refused")
        self.sock.setblocking(False)

    def send_frame(self, op, data):
        hdr = bytes([0x80 | op])
        n = len(data)
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.sock.setblocking(True)
        self.sock.sendall(hdr + mask + body)
        self.sock.setblocking(False)

    def send(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def close(self, code, reason=""):
        try:
            self.send_frame(8, struct.pack("!H", code) + reason.encode())
        except OSError:
            pass
        self.sock.close()

    def _frame(self):
        if len(self.buf) < 2:
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7F, 2
        if n == 126:
            if len(self.buf) < 4:
                return None
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            if len(self.buf) < 10:
                return None
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        if len(self.buf) < off + n:
            return None
        data, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return b0 & 0x0F, b0 & 0x80, data

    def recv(self, timeout):
        """One whole message (str), or None after timeout; Closed on a close."""
        end = time.monotonic() + timeout
        parts = []
        while True:
            f = self._frame()
            if f:
                op, fin, data = f
                if op == 8:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    try:
                        self.send_frame(8, data[:2])
                    except OSError:
                        pass
                    self.sock.close()
                    raise Closed(code, data[2:].decode("utf-8", "replace"))
                if op == 9:
                    self.send_frame(10, data)
                    continue
                if op in (0, 1, 2):
                    parts.append(data)
                    if fin:
                        return b"".join(parts).decode("utf-8", "replace")
                continue
            left = end - time.monotonic()
            if left <= 0 and not parts:
                return None
            r, _, _ = select.select([self.sock], [], [], max(left, 0.01))
            if r:
                try:
                    chunk = self.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise Closed(1006, "")
                self.buf += chunk


class Node:
    def __init__(self, a):
        self.a, self.br = a, set(a.breaks)
        self.token = open(a.token_file).readline().strip()
        os.makedirs(a.state_dir, exist_ok=True)
        self.key_path = os.path.join(a.state_dir, "seed")
        self.tok_path = os.path.join(a.state_dir, "device-token")
        self.load_key()
        self.backoff = 1.0

    def load_key(self):
        if "new-key" not in self.br and os.path.exists(self.key_path):
            seed = bytes.fromhex(open(self.key_path).read().strip())
        else:
            seed = os.urandom(32)
            if "new-key" not in self.br:
                with open(self.key_path, "w") as f:
                    f.write(seed.hex())
        self.sk = Ed25519PrivateKey.from_private_bytes(seed)
        self.pk = self.sk.public_key().public_bytes(serialization.Encoding.Raw,
                                                     serialization.PublicFormat.Raw)

    def device_token(self):
        if "no-token" in self.br or not os.path.exists(self.tok_path):
            return None
        return open(self.tok_path).read().strip() or None

    def connect_frame(self, nonce):
        if "new-key" in self.br:
            self.load_key()
        dev_id = hashlib.sha256(self.pk).hexdigest()
        if "device-id" in self.br:
            dev_id = hashlib.sha256(self.pk + b"x").hexdigest()
        signed_at = int(time.time() * 1000)
        dtok = self.device_token()
        auth = {"token": self.token}
        if dtok:
            auth["deviceToken"] = dtok
        if "nonce" in self.br:
            nonce = str(uuid.uuid4())
        payload = "|".join(["v2", dev_id, "openclaw-android", "node", "node", "",
                            str(signed_at + (1 if "signature" in self.br else 0)),
                            self.token, nonce])
        sig = self.sk.sign(payload.encode())
        return {"type": "req", "id": "c1", "method": "connect", "params": {
            "minProtocol": 3, "maxProtocol": 4,
            "client": {"id": "openclaw-android", "version": "0.0.1", "platform": "android",
                       "deviceFamily": "Android", "mode": "node"},
            "role": "node", "scopes": [], "caps": [], "commands": [], "auth": auth,
            "device": {"id": dev_id, "publicKey": b64url(self.pk), "signature": b64url(sig),
                       "signedAt": signed_at, "nonce": nonce}}}

    def attempt(self):
        """One connection. Returns (close code, got hello-ok, gave up a held connect)."""
        try:
            ws = WS(self.a.url)
        except (OSError, Closed):
            return 1006, False, False
        hello, pending_at, tick_ms, last_rx = False, None, 30000, time.monotonic()
        try:
            while True:
                msg = ws.recv(0.05)
                now = time.monotonic()
                if msg is None:
                    if pending_at and "close-pending" in self.br and now - pending_at > 0.3:
                        ws.close(4000, "connect timeout")
                        return 4000, False, True
                    silent = now - last_rx
                    limit = (1.0 if "tick-impatient" in self.br else 2.5) * tick_ms / 1000
                    if hello and silent > limit:
                        ws.close(4000, "tick timeout")
                        return 4000, True, False
                    continue
                last_rx = now
                try:
                    f = json.loads(msg)
                except ValueError:
                    if "crash-on-garbage" in self.br:
                        os.kill(os.getpid(), signal.SIGSEGV)
                    continue
                if not isinstance(f, dict):
                    continue
                if f.get("event") == "connect.challenge":
                    ws.send(self.connect_frame(f["payload"]["nonce"]))
                elif f.get("event") == "connect.pending":
                    pending_at = now
                elif f.get("type") == "res" and f.get("id") == "c1" and f.get("ok"):
                    hello = True
                    p = f.get("payload", {})
                    tick_ms = p.get("policy", {}).get("tickIntervalMs", 30000)
                    tok = (p.get("auth") or {}).get("deviceToken")
                    if tok and "no-token" not in self.br:
                        with open(self.tok_path, "w") as fh:
                            fh.write(tok)
                    print("paired: hello-ok", flush=True)
                    if "reconnect-on-hello" in self.br and pending_at:
                        ws.close(1000, "again")
                        return 1000, True, False
                elif f.get("type") == "event" and f.get("event") not in ("tick",):
                    if "leak-token" in self.br:
                        ws.send({"type": "req", "id": "e1", "method": "node.event",
                                 "params": {"event": f.get("event"), "token": self.token}})
        except Closed as c:
            print("closed %d %s" % (c.code, c.reason), flush=True)
            return c.code, hello, False

    def wait_for(self, code, hello, gave_up):
        """Seconds to wait before the next attempt, or None to exit."""
        if "exit-on-close" in self.br:
            return None
        if code in (4403, 4409) and "reconnect-always" not in self.br:
            return None
        if hello:
            self.backoff = 1.0
        if "fast-retry" in self.br:
            return 0.05
        if gave_up and "close-pending" not in self.br:
            return 0.2
        w = self.backoff
        self.backoff = min(self.backoff * 2, 30.0)
        if "no-jitter" in self.br:
            return w
        return w * random.uniform(0.75, 1.25)

    def run(self):
        while True:
            code, hello, gave_up = self.attempt()
            w = self.wait_for(code, hello, gave_up)
            if w is None:
                return 1
            time.sleep(w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--break", dest="breaks", action="append", default=[], choices=BREAKS)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    return Node(a).run()


if __name__ == "__main__":
    sys.exit(main())
