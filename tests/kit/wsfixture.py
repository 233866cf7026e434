#!/usr/bin/env python3
"""wsfixture.py: a tiny WebSocket server (stdlib only) for testing the fake node's client
library and the CLI's handling of broken gateways.

Modes (--mode):
  echo       complete the upgrade, echo every message; the text commands
             "close:CODE:REASON", "frag:N:TEXT", "big:N", "headers", "binary:TEXT", "drop"
             make it send a close frame, a message in N fragments, an N-byte text message,
             the request headers as JSON, a binary message, or drop the TCP connection
  garbage    answer the HTTP upgrade request with bytes that are not HTTP
  refuse     answer the upgrade with HTTP 403
  silent     accept TCP and never answer anything
  silent-ws  complete the upgrade and then never send anything
  junk-ws    complete the upgrade, then send a text frame that is not JSON
  oversize   complete the upgrade, then send one text message of --size bytes (default 40 MiB)
Prints "listening on ws://127.0.0.1:PORT" once ready and serves until killed.
"""
import argparse
import base64
import hashlib
import json
import os
import socket
import socketserver
import struct
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_request(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > 65536:
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def accept_upgrade(sock, headers):
    key = headers.get("sec-websocket-key", "")
    acc = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % acc).encode())


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("eof")
        buf += chunk
    return buf


def read_frame(sock):
    b0, b1 = recv_exact(sock, 2)
    fin, op = b0 & 0x80, b0 & 0x0F
    masked, ln = b1 & 0x80, b1 & 0x7F
    if ln == 126:
        ln = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif ln == 127:
        ln = struct.unpack("!Q", recv_exact(sock, 8))[0]
    mask = recv_exact(sock, 4) if masked else b"\0\0\0\0"
    data = bytearray(recv_exact(sock, ln))
    for i in range(len(data)):
        data[i] ^= mask[i % 4]
    return bool(fin), op, bytes(data)


def frame(op, data, fin=True):
    b0 = (0x80 if fin else 0) | op
    n = len(data)
    if n < 126:
        hdr = struct.pack("!BB", b0, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 127, n)
    return hdr + data


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        mode = self.server.mode
        try:
            if mode == "silent":
                while sock.recv(4096):
                    pass
                return
            req = read_request(sock)
            if req is None:
                return
            _, headers = req
            if mode == "garbage":
                sock.sendall(b"\x00\xffTHIS IS NOT HTTP\r\n\x01\x02garbage garbage\r\n\r\n")
                return
            if mode == "refuse":
                sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            accept_upgrade(sock, headers)
            if mode == "junk-ws":
                sock.sendall(frame(1, b"this is not json {"))
            elif mode == "oversize":
                sock.sendall(frame(1, b"x" * self.server.size))
            if mode != "echo":
                while True:
                    _, op, _ = read_frame(sock)
                    if op == 8:
                        sock.sendall(frame(8, struct.pack("!H", 1000)))
                        return
            self.echo(sock, headers)
        except (ConnectionError, OSError):
            return

    def echo(self, sock, headers):
        msg, msg_op = b"", 1
        while True:
            fin, op, data = read_frame(sock)
            if op == 8:
                sock.sendall(frame(8, data))
                return
            if op == 9:
                sock.sendall(frame(10, data))
                continue
            if op in (1, 2):
                msg, msg_op = data, op
            elif op == 0:
                msg += data
            if not fin:
                continue
            if msg_op == 1 and msg.startswith(b"close:"):
                _, code, reason = msg.decode().split(":", 2)
                sock.sendall(frame(8, struct.pack("!H", int(code)) + reason.encode()))
                continue
            if msg_op == 1 and msg.startswith(b"frag:"):
                _, n, text = msg.decode().split(":", 2)
                n = max(1, int(n))
                raw = text.encode()
                step = max(1, (len(raw) + n - 1) // n)
                parts = [raw[i:i + step] for i in range(0, len(raw), step)] or [b""]
                for i, p in enumerate(parts):
                    sock.sendall(frame(1 if i == 0 else 0, p, fin=(i == len(parts) - 1)))
                continue
            if msg_op == 1 and msg.startswith(b"big:"):
                sock.sendall(frame(1, b"y" * int(msg[4:])))
                continue
            if msg_op == 1 and msg == b"headers":
                sock.sendall(frame(1, json.dumps(headers).encode()))
                continue
            if msg_op == 1 and msg.startswith(b"binary:"):
                sock.sendall(frame(2, msg[7:]))
                continue
            if msg_op == 1 and msg == b"drop":
                sock.shutdown(socket.SHUT_RDWR)
                return
            sock.sendall(frame(msg_op, msg))


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    request_queue_size = 1024
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="echo")
    ap.add_argument("--size", type=int, default=40 * 1024 * 1024)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    srv.mode = args.mode
    srv.size = args.size
    print("listening on ws://127.0.0.1:%d" % srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    parent = os.getppid()
    try:
        # a test that dies without stopping us must not leave us holding its pipes
        while os.getppid() == parent:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
