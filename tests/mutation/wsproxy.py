#!/usr/bin/env python3
"""wsproxy.py: a WebSocket proxy between a client and a clawpair gateway that applies one mutant of
mutants.py, a single violation of spec/pairing.md, to the traffic (standard library only).

Usage: wsproxy.py --upstream HOST:PORT --token T [--mutant NAME] [--listen HOST:PORT]
Prints "listening on ws://HOST:PORT" once ready and serves until SIGTERM.

The proxy completes no handshake itself: it relays the client's HTTP upgrade (without
Sec-WebSocket-Extensions, so frames stay uncompressed and readable) and the gateway's answer, then
reads whole messages on both sides and hands each to the mutant, which may pass it on, change it,
drop it, add frames, answer a request on the gateway's behalf, or change a close. Events that the
mutant drops or adds shift the seq of later events on that connection, so a mutant that does not
mean to break [EVT-3] does not. Without a mutant every byte of every message is relayed as is.
"""
import argparse
import asyncio
import json
import os
import signal
import struct
import sys
import time
import uuid

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def now_ms():
    return int(time.time() * 1000)


def mask(data, key):
    """data XOR the repeated 4-byte key, as whole integers (fast for large frames)."""
    n = len(data)
    if not n:
        return data
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, 'big') ^ int.from_bytes(k, 'big')).to_bytes(n, 'big')


def frame_bytes(op, data, masked):
    b0 = 0x80 | op
    n = len(data)
    mbit = 0x80 if masked else 0
    if n < 126:
        hdr = struct.pack('!BB', b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack('!BBH', b0, mbit | 126, n)
    else:
        hdr = struct.pack('!BBQ', b0, mbit | 127, n)
    if masked:
        key = os.urandom(4)
        return hdr + key + mask(data, key)
    return hdr + data


class Msg:
    """One whole message. obj is the parsed JSON object (None when the message is not one)."""

    def __init__(self, op, data, injected=False):
        self.op = op
        self.data = data
        self.injected = injected
        self._obj = False

    @classmethod
    def of(cls, obj, injected=True):
        m = cls(OP_TEXT, json.dumps(obj, separators=(',', ':'), ensure_ascii=False).encode(),
                injected)
        m._obj = obj
        return m

    @property
    def obj(self):
        if self._obj is False:
            self._obj = None
            if self.op == OP_TEXT:
                try:
                    o = json.loads(self.data.decode('utf-8'))
                    self._obj = o if isinstance(o, dict) else None
                except (ValueError, UnicodeDecodeError, RecursionError):
                    pass
        return self._obj

    def set(self, obj):
        """Replaces the content with obj (re-serialized)."""
        self._obj = obj
        self.data = json.dumps(obj, separators=(',', ':'), ensure_ascii=False).encode()
        return self

    # shorthands for the frame kinds
    def is_res(self, rid=None):
        o = self.obj
        return bool(o) and o.get('type') == 'res' and (rid is None or o.get('id') == rid)

    def is_event(self, name=None):
        o = self.obj
        return bool(o) and o.get('type') == 'event' and (name is None or o.get('event') == name)

    def is_req(self, method=None):
        o = self.obj
        return bool(o) and o.get('type') == 'req' and (method is None or o.get('method') == method)

    def err_code(self):
        o = self.obj or {}
        if o.get('type') != 'res' or o.get('ok') is not False:
            return None
        d = (o.get('error') or {}).get('details') or {}
        return d.get('code')


class Side:
    """One TCP side of a proxied WebSocket: reads whole messages, writes frames."""

    def __init__(self, reader, writer, mask_out):
        self.reader, self.writer, self.mask_out = reader, writer, mask_out
        self.closed = False
        self._buf, self._op = None, None

    async def read_frame(self):
        h = await self.reader.readexactly(2)
        fin, op = bool(h[0] & 0x80), h[0] & 0x0F
        masked, n = h[1] & 0x80, h[1] & 0x7F
        if n == 126:
            n = struct.unpack('!H', await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack('!Q', await self.reader.readexactly(8))[0]
        key = await self.reader.readexactly(4) if masked else None
        data = await self.reader.readexactly(n)
        return fin, op, mask(data, key) if key else data

    async def read_msg(self):
        """(op, data) of the next whole message; control frames come as they arrive."""
        while True:
            fin, op, data = await self.read_frame()
            if op >= 8:
                return op, data
            if op == OP_CONT:
                self._buf = (self._buf or b'') + data
            else:
                self._op, self._buf = op, data
            if fin:
                buf, self._buf = self._buf, None
                return self._op, buf

    def send(self, op, data):
        if self.closed:
            return
        try:
            self.writer.write(frame_bytes(op, data, self.mask_out))
        except (ConnectionError, RuntimeError):
            self.closed = True

    def send_close(self, code, reason=''):
        payload = b'' if code is None else struct.pack('!H', code) + reason.encode('utf-8', 'surrogateescape')
        self.send(OP_CLOSE, payload)

    def shut(self):
        if not self.closed:
            self.closed = True
        try:
            self.writer.close()
        except (ConnectionError, RuntimeError):
            pass


def parse_close(data):
    if len(data) < 2:
        return None, ''
    return struct.unpack('!H', data[:2])[0], data[2:].decode('utf-8', 'surrogateescape')


class Conn:
    """One proxied client connection, with what the proxy learnt about it for the mutant."""

    def __init__(self, proxy, n):
        self.proxy, self.n = proxy, n
        self.client = self.gw = None
        self.headers = []  # request header lines, as relayed
        self.opened_ms = now_ms()
        self.reqs = {}  # request id -> (method, params) of the client's requests
        self.connect = None  # params of the first connect
        self.connect_id = None
        self.authed = False
        self.hello = None  # the hello-ok payload
        self.held = False
        self.rid = None  # requestId of connect.pending
        self.refused = None  # details.code of the answer to connect
        self.seq_shift = 0
        self.last_seq_out = 0
        self.keep_client = False  # the gateway's close is not relayed: the client stays open
        self.closing = False
        self.state = {}  # free for the mutant

    # --- what the connect said
    @property
    def role(self):
        return ((self.connect or {}).get('role')) or 'operator'

    @property
    def device(self):
        d = (self.connect or {}).get('device')
        return d if isinstance(d, dict) else None

    @property
    def device_id(self):
        return (self.device or {}).get('id')

    @property
    def token(self):
        a = (self.connect or {}).get('auth') or {}
        return a.get('token') if 'token' in a else a.get('deviceToken')

    @property
    def scopes(self):
        s = (self.connect or {}).get('scopes')
        if not s and self.role == 'operator':
            return ['operator.admin']
        return s or []

    def has_scope(self, *names):
        return any(s in self.scopes for s in names)

    @property
    def remote(self):
        return any(h.split(':', 1)[0].strip().lower() in
                   ('x-forwarded-for', 'x-real-ip', 'origin', 'forwarded', 'x-forwarded-host')
                   for h in self.headers)

    # --- sending
    def to_client(self, obj_or_msg):
        m = obj_or_msg if isinstance(obj_or_msg, Msg) else Msg.of(obj_or_msg)
        self._send_client(m)

    def to_gateway(self, obj_or_msg):
        m = obj_or_msg if isinstance(obj_or_msg, Msg) else Msg.of(obj_or_msg)
        if self.gw and not self.gw.closed:
            self.gw.send(m.op, m.data)

    def event(self, name, payload, seq=True):
        o = {'type': 'event', 'event': name, 'payload': payload}
        if seq:
            o['seq'] = 0  # numbered when sent
        self.to_client(o)

    def _send_client(self, m):
        o = m.obj if m.op == OP_TEXT else None
        if o and o.get('type') == 'event' and 'seq' in o and isinstance(o['seq'], int):
            if getattr(m, 'seq_override', None) is not None:
                o['seq'] = m.seq_override
                m.set(o)
            elif m.injected:
                self.seq_shift += 1
                o['seq'] = self.last_seq_out + 1
                m.set(o)
            elif self.seq_shift:
                o['seq'] += self.seq_shift
                m.set(o)
            self.last_seq_out = o['seq']
        self.client.send(m.op, m.data)

    def close_client(self, code, reason=''):
        """Closes the client with code (and the gateway side with 1000)."""
        if self.closing:
            return
        self.closing = True
        self.client.send_close(code, reason)
        if self.gw and not self.gw.closed:
            self.gw.send_close(1000, '')
        asyncio.get_event_loop().call_later(2.0, self.shut)

    def shut(self):
        for s in (self.client, self.gw):
            if s:
                s.shut()

    # --- answers on the gateway's behalf
    def error(self, rid, wire, dcode, message, **details):
        d = {'code': dcode}
        d.update(details)
        return {'type': 'res', 'id': rid, 'ok': False,
                'error': {'code': wire, 'message': message, 'details': d}}

    def ok(self, rid, payload):
        return {'type': 'res', 'id': rid, 'ok': True, 'payload': payload}

    def fake_hello(self):
        p = {'type': 'hello-ok', 'protocol': 4,
             'server': {'version': '0.1.0', 'host': 'proxy', 'connId': str(uuid.uuid4())},
             'features': {'methods': list(METHODS), 'events': list(EVENTS)},
             'snapshot': {'presence': [], 'health': {}, 'stateVersion': {'presence': 0, 'health': 0},
                          'uptimeMs': 1},
             'policy': {'maxPayload': 524288, 'maxBufferedBytes': 1572864, 'tickIntervalMs': 30000}}
        if self.device:
            p['auth'] = {'deviceToken': os.urandom(16).hex(), 'role': self.role,
                         'scopes': self.scopes, 'issuedAtMs': now_ms()}
        return p

    def fake_pending_payload(self):
        did = self.device_id or '0' * 64
        return {'requestId': str(uuid.uuid4()), 'deviceId': did,
                'fingerprint': ':'.join(did[i:i + 4] for i in range(0, 16, 4)),
                'expiresAtMs': now_ms() + 300000, 'isRepair': False}

    def accept_instead(self):
        """A refused connect taken as accepted: a device is held open (connect.pending), a
        device-less client gets hello-ok; the gateway's close does not reach the client."""
        self.keep_client = True
        if self.device:
            self.held = True
            return [Msg.of({'type': 'event', 'event': 'connect.pending',
                            'payload': self.fake_pending_payload()})]
        self.authed = True
        return [Msg.of(self.ok(self.connect_id, self.fake_hello()))]

    def refused_with(self, m, *codes):
        return (m.is_res(self.connect_id) and self.connect_id is not None
                and m.err_code() in codes)

    def answers(self, m, method):
        """m is the gateway's answer to a request of the client naming method."""
        o = m.obj
        return bool(o) and o.get('type') == 'res' and self.reqs.get(o.get('id'), (None,))[0] == method


METHODS = ('device.pair.list', 'device.pair.approve', 'device.pair.reject', 'device.pair.remove',
           'node.pair.list', 'node.pair.approve', 'node.pair.reject', 'node.list',
           'device.token.rotate', 'device.token.revoke', 'node.invoke.result', 'node.event')
EVENTS = ('connect.challenge', 'connect.pending', 'tick', 'device.pair.requested',
          'device.pair.resolved', 'node.pair.requested', 'node.pair.resolved')


class Operator:
    """The proxy's own operator connection to the gateway (device-less, local, shared token: every
    scope), for mutants that act on the gateway's state."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.side = None
        self.waiting = {}
        self.n = 0

    async def start(self):
        host, port = self.proxy.upstream
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        key = 'dGhlIHNhbXBsZSBub25jZQ=='
        writer.write(('GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                      'Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n'
                      % (host, port, key)).encode())
        head = await reader.readuntil(b'\r\n\r\n')
        if b' 101 ' not in head.split(b'\r\n', 1)[0]:
            raise ConnectionError('operator upgrade refused')
        self.side = Side(reader, writer, True)
        await self.side.read_msg()  # connect.challenge
        asyncio.ensure_future(self.pump())
        res = await self.call('connect', {
            'minProtocol': 3, 'maxProtocol': 4,
            'client': {'id': 'cli', 'version': '1', 'platform': 'linux', 'mode': 'cli'},
            'role': 'operator', 'auth': {'token': self.proxy.token}})
        if not res.get('ok'):
            raise ConnectionError('operator connect refused: %r' % res)

    async def pump(self):
        try:
            while True:
                op, data = await self.side.read_msg()
                if op == OP_CLOSE:
                    break
                m = Msg(op, data)
                if m.is_res() and m.obj.get('id') in self.waiting:
                    self.waiting.pop(m.obj['id']).set_result(m.obj)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        self.side.shut()
        for f in self.waiting.values():
            if not f.done():
                f.set_result({'ok': False, 'error': {'details': {'code': 'CLOSED'}}})
        if self.proxy.operator is self:
            self.proxy.operator = None

    async def call(self, method, params):
        self.n += 1
        rid = 'mut-%d' % self.n
        fut = asyncio.get_event_loop().create_future()
        self.waiting[rid] = fut
        self.side.send(OP_TEXT, json.dumps({'type': 'req', 'id': rid, 'method': method,
                                            'params': params}).encode())
        return await asyncio.wait_for(fut, 10)


class Proxy:
    def __init__(self, upstream, token, mutant):
        self.upstream = upstream
        self.token = token
        self.mutant = mutant
        self.conns = []
        self.n = 0
        self.operator = None
        self.tokens = {}  # (deviceId, role) -> device token seen in hello-ok or rotate
        self.state = {}  # free for the mutant

    async def op(self):
        """The proxy's operator connection, opened on first use (and again after a restart)."""
        if self.operator is None:
            o = Operator(self)
            self.operator = o
            try:
                await o.start()
            except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                self.operator = None
                raise
        return self.operator

    def live(self):
        return [c for c in self.conns if not c.closing and c.client and not c.client.closed]

    async def handle(self, reader, writer):
        self.n += 1
        c = Conn(self, self.n)
        try:
            await self.serve(c, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.LimitOverrunError):
            pass
        finally:
            c.shut()
            if c in self.conns:
                self.conns.remove(c)

    async def serve(self, c, reader, writer):
        head = await reader.readuntil(b'\r\n\r\n')
        lines = head.decode('latin-1').split('\r\n')[:-2]
        reqline, hdrs = lines[0], lines[1:]
        hdrs = [h for h in hdrs if h.split(':', 1)[0].strip().lower() != 'sec-websocket-extensions']
        hdrs = await call(self.mutant.headers, c, hdrs)
        c.headers = hdrs
        host, port = self.upstream
        up_r, up_w = await asyncio.open_connection(host, port, limit=1 << 24)
        up_w.write(('\r\n'.join([reqline] + hdrs) + '\r\n\r\n').encode('latin-1'))
        resp = await up_r.readuntil(b'\r\n\r\n')
        writer.write(resp)
        if b' 101 ' not in resp.split(b'\r\n', 1)[0]:
            # no WebSocket: relay what follows (a body) until either side ends
            await asyncio.gather(relay_raw(up_r, writer), relay_raw(reader, up_w),
                                 return_exceptions=True)
            up_w.close()
            return
        c.client = Side(reader, writer, False)
        c.gw = Side(up_r, up_w, True)
        self.conns.append(c)
        await call(self.mutant.opened, c)
        await asyncio.gather(self.from_client(c), self.from_gateway(c), return_exceptions=True)

    async def from_client(self, c):
        try:
            while True:
                op, data = await c.client.read_msg()
                if op == OP_CLOSE:
                    if c.gw and not c.gw.closed:
                        c.gw.send(OP_CLOSE, data)
                    else:
                        code, _ = parse_close(data)
                        c.client.send_close(code if code else 1000, '')
                    c.closing = True
                    await asyncio.sleep(0.5)
                    break
                if op in (OP_PING, OP_PONG):
                    c.to_gateway(Msg(op, data))
                    continue
                m = Msg(op, data)
                if m.is_req() and isinstance(m.obj.get('id'), str):
                    c.reqs[m.obj['id']] = (m.obj.get('method'), m.obj.get('params'))
                    if m.obj.get('method') == 'connect' and c.connect_id is None:
                        c.connect_id = m.obj['id']
                        p = m.obj.get('params')
                        c.connect = p if isinstance(p, dict) else {}
                out = await call(self.mutant.client_msg, c, m)
                for x in (out if out is not None else [m]):
                    c.to_gateway(x)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        c.shut()

    async def from_gateway(self, c):
        try:
            while True:
                op, data = await c.gw.read_msg()
                if op == OP_CLOSE:
                    code, reason = parse_close(data)
                    res = await call(self.mutant.gateway_close, c, code, reason)
                    if c.keep_client or res is False:
                        # the client does not learn of it and stays open
                        c.gw.send_close(1000, '')
                        c.gw.closed = True
                        return
                    if res is not None:
                        code, reason = res
                    if not c.closing:
                        c.closing = True
                        c.client.send_close(code, reason)
                        asyncio.get_event_loop().call_later(2.0, c.shut)
                    continue
                if op in (OP_PING, OP_PONG):
                    c.client.send(op, data)
                    continue
                m = Msg(op, data)
                self.learn(c, m)
                out = await call(self.mutant.gateway_msg, c, m)
                if out is None:
                    out = [m]
                if m.is_event() and isinstance(m.obj.get('seq'), int) and m not in out:
                    c.seq_shift -= 1
                for x in out:
                    c._send_client(x)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        if not c.keep_client:
            c.shut()

    def learn(self, c, m):
        o = m.obj
        if not o:
            return
        if o.get('type') == 'res' and o.get('id') == c.connect_id:
            if o.get('ok') and isinstance(o.get('payload'), dict) and o['payload'].get('type') == 'hello-ok':
                c.authed, c.held, c.hello = True, False, o['payload']
                auth = o['payload'].get('auth') or {}
                if auth.get('deviceToken') and c.device_id:
                    self.tokens[(c.device_id, auth.get('role'))] = auth['deviceToken']
            elif o.get('ok') is False:
                c.refused = m.err_code()
        elif o.get('type') == 'event' and o.get('event') == 'connect.pending':
            c.held = True
            c.rid = (o.get('payload') or {}).get('requestId')
        elif o.get('type') == 'res' and o.get('ok') and c.reqs.get(o.get('id'), (None,))[0] == 'device.token.rotate':
            p = o.get('payload') or {}
            if p.get('token'):
                self.tokens[(p.get('deviceId'), p.get('role'))] = p['token']


async def relay_raw(r, w):
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
    finally:
        try:
            w.close()
        except (ConnectionError, RuntimeError):
            pass


async def call(fn, *args):
    r = fn(*args)
    if asyncio.iscoroutine(r):
        r = await r
    return r


def hostport(s):
    host, _, port = s.rpartition(':')
    return host.strip('[]') or '127.0.0.1', int(port)


async def main_async(args):
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.modules.setdefault('wsproxy', sys.modules[__name__])  # one Msg class for both modules
    import mutants
    mutant = mutants.get(args.mutant) if args.mutant else mutants.Mutant()
    proxy = Proxy(hostport(args.upstream), args.token, mutant)
    mutant.proxy = proxy
    host, port = hostport(args.listen)
    server = await asyncio.start_server(proxy.handle, host, port, limit=1 << 24)
    sock = server.sockets[0].getsockname()
    print('listening on ws://%s:%d' % (sock[0], sock[1]), flush=True)
    stop = asyncio.get_event_loop().create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_event_loop().add_signal_handler(s, stop.set_result, None)
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True)
    ap.add_argument('--token', required=True)
    ap.add_argument('--mutant', default='')
    ap.add_argument('--listen', default='127.0.0.1:0')
    asyncio.run(main_async(ap.parse_args()))


if __name__ == '__main__':
    main()
