#!/usr/bin/env python3
"""run-clients.py: measures how long real, unmodified OpenClaw clients take from an operator's
approval to hello-ok against the reference gateway, with each client a LAN node in a network
namespace of its own making (veth pair; never loopback, never the machine's LAN address).

Usage: run-clients.py [--client NAME]... [--offsets A:B:STEP,X,cK+S,...]
                      [--parallel N] [--results DIR] [--lab DIR] [--gateway PATH] [--ctl PATH]
                      [--decision approve|reject|none] [--gateway-arg ARG]...
                      [--deadline S] [--list] [--summary DIR]

Clients (NAME): node-2026.9.6 (`openclaw node run` of 2026.9.6), node-2026.1.30 (the same of
2026.1.30), openclaw-node (the npm client openclaw-node 0.14.0, run by openclaw-node-run.mjs as
role node). Default: all three. They come from the lab of /work/shared/tools/openclaw-gateway.sh
(--lab, default $OPENCLAW_LAB or /tmp/openclaw-lab: v2026.9.6/, v2026.1.30/, node22/, node24/)
and openclaw-node from LAB/openclaw-node (npm install openclaw-node@0.14.0 there).

One trial = one client with a fresh state dir (so a new device identity) started in the
namespace against ws://HOST_END_OF_VETH:PORT with the gateway's token; when its request is first
held open (the gateway's log), clawpair-ctl approves it (from loopback, a local operator) OFFSET
seconds later (or, for an offset cK+S, S seconds after the gateway logged the end of the
device's K-th connection: c1+0.5 lands in the pause after the first one); the trial ends 2 s
after the gateway logs the node's hello-ok. Offsets default, for node-2026.9.6 (which gives up a
held connect after 15 s and backs off 1, 2, 4, 8 s), to 0:45:3 plus three points in each of the
pauses after its first three connections (25 trials), so the approvals land at every point of its
cycle; for the others to 0:22:2 (12 trials).

Figures, all from the gateway's own log clock (ms): approve -> hello-ok per trial, where the
client was in its cycle at approval (a connection held for how long, or a pause since the last
close), connections it made (reconnects = connections - 1) and the close frames a passive tap on
the veth saw (c:CODE by the client, g:CODE by the gateway; rst = reset, fin-no-close = TCP closed
without a close frame), then p50/p99/max per client (nearest rank). Writes DIR/trials.json,
DIR/summary.txt, the gateway's log and each trial's client output (--summary DIR prints the
summary of an earlier run's trials.json again).

--decision reject rejects instead of approving, --decision none decides nothing; either way the
client is then watched for 45 s or until it exits, and its line says whether it exited (status,
seconds after the decision) or how many connections it opened after it, with the closes seen.
--gateway-arg passes an option to clawpair-gateway (--gateway-arg=--pending-ttl=5 with
--decision none: what the client does when its request expires). Needs root. Exit status 0
when every trial reached hello-ok, 1 otherwise, 2 on a setup error.
"""
import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interoplab as lab  # noqa: E402

SETTLE_S = 2.0
# 2026.9.6 node host: every 3 s over its first three connections, and in each of the pauses
# after them (1, 2 and 4 s long), where only its own reconnect can deliver the approval
DEFAULT_OFFSETS = {'node-2026.9.6': '0:45:3,c1+0.2,c1+0.5,c1+0.8,c2+0.3,c2+1,c2+1.7,c3+0.5,'
                                    'c3+2,c3+3.5'}
HELD_TIMEOUT_S = 300.0  # a node host starts in tens of seconds on a loaded machine
HELLO_TIMEOUT_S = 90.0
OBSERVE_S = 45.0  # --decision reject or none: how long what the client does is watched


def parse_offsets(s):
    """A comma list of A:B:STEP ranges, seconds, and cK+S (S seconds after the K-th close)."""
    out = []
    for x in s.split(','):
        if ':' in x:
            a, b, step = (float(v) for v in x.split(':'))
            if step <= 0:
                raise ValueError(x)
            n = int(math.floor((b - a) / step + 1e-9)) + 1
            out += [round(a + i * step, 3) for i in range(n)]
        elif x.startswith('c'):
            k, sec = x[1:].split('+')
            if int(k) < 1:
                raise ValueError(x)
            out.append((int(k), float(sec)))
        elif x:
            out.append(float(x))
    return out


def offset_text(o):
    return f'c{o[0]}+{o[1]:g}' if isinstance(o, tuple) else f'{o:g}'


def approve_time(t, gw):
    """When to approve T: OFFSET s after its first held-open, or S s after its K-th close."""
    if not isinstance(t.offset, tuple):
        return t.held0 + t.offset
    k, sec = t.offset
    closed = sorted(c for _, c in gw.device_conns(t.device) if c is not None)
    return closed[k - 1] + sec if len(closed) >= k else None


def pct(values, p):
    v = sorted(values)
    return v[max(0, math.ceil(p / 100 * len(v)) - 1)] if v else None


class Trial:
    def __init__(self, client, index, offset):
        self.client, self.index, self.offset = client, index, offset
        self.label = f'{client.name}-t{index:02d}'
        self.state = 'new'
        self.proc = None
        self.device = None
        self.t_start = self.held0 = self.approve_cmd = self.t_stop = None
        self.approve_rc = self.approve_out = None
        self.decision = 'approve'
        self.result = {'client': client.name, 'trial': index, 'offset': offset_text(offset)}

    def fail(self, why):
        self.result['error'] = why
        self.state = 'done'


def where_in_cycle(gw, dev, t):
    """'held 3.2 s' when a connection of DEV was open at T, else 'pause 0.6 s' since the last."""
    last_close = None
    for o, c in gw.device_conns(dev):
        if o <= t and (c is None or c > t):
            return f'held {t - o:.1f} s'
        if c is not None and c <= t:
            last_close = c
    return f'pause {t - last_close:.1f} s' if last_close else 'none'


def main():
    parts = __doc__.split('\n\n')
    ap = argparse.ArgumentParser(usage=parts[1].replace('Usage: ', ''),
                                 description='\n\n'.join([parts[0]] + parts[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--client', action='append', choices=sorted(lab.CLIENTS))
    ap.add_argument('--offsets')
    ap.add_argument('--parallel', type=int, default=4)
    ap.add_argument('--results', default='clients-results')
    ap.add_argument('--lab', default=lab.LAB)
    ap.add_argument('--gateway')
    ap.add_argument('--ctl')
    ap.add_argument('--deadline', type=float, default=900, help='whole run, seconds')
    ap.add_argument('--decision', choices=('approve', 'reject', 'none'), default='approve')
    ap.add_argument('--gateway-arg', action='append', default=[], metavar='ARG')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--summary', metavar='DIR', help='print the summary of DIR/trials.json again')
    a = ap.parse_args()
    if a.summary:
        with open(os.path.join(a.summary, 'trials.json')) as f:
            report(json.load(f), a.summary)
        return 0
    if a.parallel < 1 or a.parallel > 6:
        ap.error('--parallel is 1..6 (each client is a node process)')
    names = a.client or ['node-2026.9.6', 'node-2026.1.30', 'openclaw-node']
    trials = []
    for name in names:
        c = lab.CLIENTS[name]
        try:
            offs = parse_offsets(a.offsets or DEFAULT_OFFSETS.get(name, '0:22:2'))
        except ValueError:
            ap.error(f'bad --offsets {a.offsets}')
        trials += [Trial(c, i, o) for i, o in enumerate(offs)]
    if a.list:
        for t in trials:
            print(t.label, offset_text(t.offset))
        return 0
    try:
        for name in names:
            lab.CLIENTS[name].verify(a.lab)
        gw_bin = lab.find_build('server/clawpair-gateway', a.gateway)
        ctl_bin = lab.find_build('ctl/clawpair-ctl', a.ctl)
        ns = lab.Netns()
    except lab.LabError as e:
        print(f'run-clients: {e}', file=sys.stderr)
        return 2
    os.makedirs(a.results, exist_ok=True)
    results = os.path.abspath(a.results)
    work = tempfile.mkdtemp(prefix='clawpair-clients.')
    gw = tap = None
    signal.signal(signal.SIGTERM, lab.interrupt)
    try:
        ns.create()
        gw = lab.Gateway(gw_bin, work, [ns.host_ip, '127.0.0.1'], extra=a.gateway_arg).start()
        tap = lab.WireTap(ns.host_if, gw.port)
        tap.start()
        print(f'run-clients: gateway {gw.url(ns.host_ip)} (clients in netns {ns.name} at '
              f'{ns.ns_ip}), {len(trials)} trials, {a.parallel} at a time', file=sys.stderr)
        rc = run(a, trials, ns, gw, tap, ctl_bin, work)
    except lab.LabError as e:
        print(f'run-clients: {e}', file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print('run-clients: interrupted; cleaning up', file=sys.stderr)
        rc = 1
    finally:
        for t in trials:
            if t.proc:
                t.proc.stop()
        if tap:
            tap.stop()
        if gw:
            gw.stop()
            shutil.copy(gw.log_path, os.path.join(results, 'gateway.log'))
        ns.destroy()
        for t in trials:
            if t.proc and os.path.exists(t.proc.log_path):
                shutil.copy(t.proc.log_path, os.path.join(results, t.label + '.log'))
        shutil.rmtree(work, ignore_errors=True)
    if rc != 2:
        report([t.result for t in trials], results)
    return rc


def identify(t, tap):
    """The trial's device id: from the driver's output (openclaw-node) or its display name."""
    if t.client.name == 'openclaw-node':
        try:
            with open(t.proc.log_path) as f:
                for line in f:
                    if line.startswith('{') and '"identity"' in line:
                        return json.loads(line).get('deviceId')
        except (OSError, ValueError):
            return None
        return None
    return tap.display_names().get(t.label)


def approve(t, ctl_bin, gw, request, decision):
    if decision == 'none':
        t.approve_rc, t.approve_out = 0, ''
        return
    t.approve_rc, t.approve_out = lab.ctl(ctl_bin, gw.url('127.0.0.1'), gw.token_file,
                                          decision, request)


def run(a, trials, ns, gw, tap, ctl_bin, work):
    t_end = time.time() + a.deadline
    queue = list(trials)
    active = []
    last_start = 0.0
    while (queue or active) and time.time() < t_end:
        gw.poll()
        now = time.time()
        # the first trial of a client runs alone until it is held open: it fills the compile
        # caches that the others then read (interoplab.Client.argv_env)
        warming = any(x.state == 'starting' and x.index == 0 for x in active)
        if queue and len(active) < a.parallel and now - last_start >= 2.0 and not warming:
            t = queue.pop(0)
            state = os.path.join(work, t.label)
            argv, env = t.client.argv_env(a.lab, state, ns.host_ip, gw.port, gw.token, t.label)
            t.proc = lab.Proc(ns, argv, env, os.path.join(work, t.label + '.log'))
            t.t_start, t.state, last_start = now, 'starting', now
            active.append(t)
        for t in list(active):
            if t.state == 'stopping':
                if not t.stopper.is_alive():
                    finish(t, gw, tap)
                    active.remove(t)
                    r = t.result
                    print(f'run-clients: {t.label} offset {offset_text(t.offset)} s: '
                          + (f"{r['approve_to_hello_ms']} ms" if 'approve_to_hello_ms' in r
                             else r.get('error') or 'watched, %s connection(s) after the '
                             'decision' % r.get('connections_after_decision')), file=sys.stderr)
                continue
            step(t, gw, tap, ctl_bin, now, a.decision)
            if t.state == 'done':
                # stopped aside: a client can take seconds to end, the other trials go on
                t.t_stop, t.state = time.time(), 'stopping'
                t.stopper = threading.Thread(target=t.proc.stop, daemon=True)
                t.stopper.start()
        time.sleep(0.05)
    for t in active + queue:
        if t.state == 'stopping':
            t.stopper.join()
            finish(t, gw, tap)
        elif t.state != 'done':
            t.fail('run deadline reached')
            if t.proc:
                t.t_stop = time.time()
                t.proc.stop()
                finish(t, gw, tap)
    ok = [('approve_to_hello_ms' in t.result) if a.decision == 'approve' else
          ('error' not in t.result) for t in trials]
    return 0 if all(ok) else 1


def step(t, gw, tap, ctl_bin, now, decision):
    rc = t.proc.poll()
    if t.device is None:
        t.device = identify(t, tap)
    d = gw.devices.get(t.device) if t.device else None
    if t.state == 'starting':
        if d and d['held']:
            t.held0 = d['held'][0][0]
            t.state = 'waiting'
        elif rc is not None:
            t.fail(f'client exited with status {rc} before its request was held')
        elif now - t.t_start > HELD_TIMEOUT_S:
            t.fail('no held-open request within %d s' % HELD_TIMEOUT_S)
    at = approve_time(t, gw) if t.state == 'waiting' else None
    if at is None and t.state == 'waiting' and now - t.held0 > HELD_TIMEOUT_S + 60:
        t.fail('the close to approve after did not come')
    if at is not None and now >= at:
        t.approve_cmd = now
        t.result['approve_late_ms'] = round((now - at) * 1000)
        t.state, t.decision = 'approving', decision
        threading.Thread(target=approve, args=(t, ctl_bin, gw, d['request'], decision),
                         daemon=True).start()
        if decision != 'approve':
            t.state = 'observing'
    if t.state == 'observing':
        # what the client does after a rejection (or, with none, after whatever the gateway
        # does: --gateway-arg=--pending-ttl=5 expires the request): watched, not judged
        if t.approve_rc not in (None, 0):
            t.fail(f'clawpair-ctl {decision}: {t.approve_out}')
        elif rc is not None or now - t.approve_cmd >= OBSERVE_S:
            t.state = 'done'
    if t.state == 'approving':
        if d['hello'] is not None:
            t.state = 'settle'
        elif t.approve_rc not in (None, 0):
            t.fail(f'clawpair-ctl approve: {t.approve_out}')
        elif now - t.approve_cmd > HELLO_TIMEOUT_S:
            t.fail('no hello-ok within %d s of the approval' % HELLO_TIMEOUT_S)
        elif rc is not None:
            t.fail(f'client exited with status {rc} before hello-ok')
    if t.state == 'settle' and (now - d['hello'] >= SETTLE_S or rc is not None):
        t.state = 'done'


def finish(t, gw, tap):
    gw.poll()
    r = t.result
    r.update({'client': t.client.name, 'trial': t.index, 'offset': offset_text(t.offset),
              'device': t.device})
    d = gw.devices.get(t.device) if t.device else None
    if not d:
        return
    conns = tap.device_conns(t.device)
    r['connections'] = len(gw.device_conns(t.device))
    r['reconnects'] = max(0, r['connections'] - 1)
    r['closes'] = lab.format_closes(conns, t.t_stop)
    # how long each connection lasted and each pause between two, by the gateway's log: the
    # client's connect timeout and backoff as seen from the gateway
    span = [(o, c) for o, c in gw.device_conns(t.device) if t.t_stop is None or o < t.t_stop]
    r['held_s'] = [round(c - o, 2) for o, c in span[:-1] if c is not None]
    r['pauses_s'] = [round(b[0] - a[1], 2) for a, b in zip(span, span[1:]) if a[1] is not None]
    if d['approved'] is not None:
        r['approved_at'] = d['approved']
        r['at_approval'] = where_in_cycle(gw, t.device, d['approved'])
        r['held_to_approve_s'] = round(d['approved'] - t.held0, 3)
    if t.approve_cmd is not None and t.decision != 'approve':
        r['decided_at'] = t.approve_cmd
        r['at_decision'] = where_in_cycle(gw, t.device, t.approve_cmd)
        after = [o for o, _ in gw.device_conns(t.device) if o > t.approve_cmd]
        r['connections_after_decision'] = len(after)
        if t.proc.exit_t is not None and (t.t_stop is None or t.proc.exit_t <= t.t_stop):
            r['exited_after_s'] = round(t.proc.exit_t - t.approve_cmd, 1)
            r['exit_status'] = t.proc.p.returncode  # its own exit, not the stop
    if d['approved'] is not None and d['hello'] is not None:
        r['approve_to_hello_ms'] = round((d['hello'] - d['approved']) * 1000)
        r['hello_on_held_socket'] = r['at_approval'].startswith('held')
        wire = [c['hello'] for c in conns if c['hello']]
        if wire:
            r['approve_to_hello_wire_ms'] = round((min(wire) - d['approved']) * 1000)


def report(rs, results):
    """Prints and writes the per-trial table and the per-client summary of result dicts RS."""
    watched = any('decided_at' in r for r in rs)
    lines = ['client            trial  offset  ' + ('at decision   then the client did'
                                                    if watched else
                                                    'at approval   approve->hello-ok')
             + '  conns  closes (c: client, g: gateway)']
    for r in rs:
        ms = r.get('approve_to_hello_ms')
        if 'decided_at' in r:  # --decision reject or none: what the client did after it
            ms = ('exit %s after %s s' % (r.get('exit_status'), r['exited_after_s'])
                  if 'exited_after_s' in r else
                  'reconnected %d x' % r.get('connections_after_decision', 0))
            lines.append(f"{r['client']:<17} {r['trial']:>5} {r['offset']:>7}  "
                         f"{r.get('at_decision', '-'):<13} {ms:>17}  "
                         f"{r.get('connections', '-'):>5}  {', '.join(r.get('closes', [])) or '-'}")
            continue
        lines.append(f"{r['client']:<17} {r['trial']:>5} {r['offset']:>7}  "
                     f"{r.get('at_approval', '-'):<13} "
                     f"{(str(ms) + ' ms') if ms is not None else r.get('error', '-'):>17}  "
                     f"{r.get('connections', '-'):>5}  {', '.join(r.get('closes', [])) or '-'}")
    names = list(dict.fromkeys(r['client'] for r in rs))
    if not all('decided_at' in r for r in rs):
        lines += ['', 'approve -> hello-ok, ms   trials  hello-ok    p50    p99    max']
    for name in names:
        mine = [r for r in rs if r['client'] == name and 'decided_at' not in r]
        if not mine:
            continue
        for what, sel in (('all', mine),
                          ('  on a held connection',
                           [r for r in mine if r.get('at_approval', '').startswith('held')]),
                          ('  in a pause', [r for r in mine
                                            if r.get('at_approval', '').startswith('pause')])):
            if what != 'all' and not sel:
                continue
            v = [r['approve_to_hello_ms'] for r in sel if 'approve_to_hello_ms' in r]
            lines.append(f"{name if what == 'all' else what:<24} {len(sel):>7}  {len(v):>8}  "
                         f"{pct(v, 50)!s:>5}  {pct(v, 99)!s:>5}  {(max(v) if v else None)!s:>5}")
    lines += ['', 'client            connection lifetime (s)  pause before reconnect n (s, '
              'min-max)']
    for name in names:
        mine = [r for r in rs if r['client'] == name]
        held = [h for r in mine for h in r.get('held_s', [])]
        pauses = {}
        for r in mine:
            for i, p in enumerate(r.get('pauses_s', [])):
                pauses.setdefault(i + 1, []).append(p)
        ps = ', '.join(f'{i}: {min(v):g}-{max(v):g}' for i, v in sorted(pauses.items()))
        lines.append(f"{name:<17} {(f'{min(held):g}-{max(held):g}' if held else '-'):<24} "
                     f"{ps or '-'}")
    text = '\n'.join(lines) + '\n'
    print(text, end='')
    with open(os.path.join(results, 'summary.txt'), 'w') as f:
        f.write(text)
    with open(os.path.join(results, 'trials.json'), 'w') as f:
        json.dump(rs, f, indent=1)


if __name__ == '__main__':
    sys.exit(main())
