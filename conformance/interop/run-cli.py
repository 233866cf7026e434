#!/usr/bin/env python3
"""run-cli.py: the OpenClaw 2026.9.6 CLI, unmodified, against the reference gateway with a paired
node: `openclaw nodes list`, `nodes status`, `devices list` and `nodes remove`, text and --json.

Usage: run-cli.py [--lab DIR] [--results DIR] [--gateway PATH] [--ctl PATH]
                  [--gateway-arg ARG]...

A network namespace (veth pair) holds a real 2026.9.6 node host (`openclaw node run`), a LAN
node; clawpair-ctl approves it and it connects. The CLI runs on the gateway's machine (loopback,
a local operator; fresh HOME and state, whose openclaw.json names the gateway as
gateway.remote.url with the shared token).
Checks: each command exits 0; `nodes list` and `nodes status` show the node with its display name,
its caps (not '?') and a last-connect time, `--json` gives the node's id, caps and
lastConnectedAtMs/connectedAtMs; `devices list --json` lists the device; `nodes remove --node ID`
exits 0, the device is no longer paired in `clawpair-ctl devices` (the node host, still running,
asks to pair again) and the gateway ends the node's session.
A failed check prints the command, its output and the gateway's answers on the wire (a passive
tap on loopback). Needs root and the lab of /work/shared/tools/openclaw-gateway.sh (--lab, default
$OPENCLAW_LAB or /tmp/openclaw-lab). --gateway-arg passes an option to clawpair-gateway
(--gateway-arg=--compat-6836: the checks of the node lists fail). Takes about a minute. Exit
status 0 when every check passed, 1 when one failed, 2 on a setup error.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interoplab as lab  # noqa: E402

LABEL = 'cli-interop-node'


class Checks:
    def __init__(self, tap, results):
        self.tap, self.results, self.failed, self.lines = tap, results, 0, []
        self.since = 0.0

    def __call__(self, ok, what, cmd=None, out=None):
        line = f"{'PASS' if ok else 'FAIL'} {what}"
        print(line)
        self.lines.append(line)
        if not ok:
            self.failed += 1
            if cmd:
                print(f'  command: {" ".join(cmd)}\n  output:\n' + indent(out or ''))
                print('  gateway answers on the wire:\n' + indent(self.answers()))

    def mark(self):
        """Forgets the frames so far: answers() shows what came after."""
        self.since = time.time()

    def answers(self):
        """The res and close frames the gateway sent on loopback since mark()."""
        out = []
        for r in self.tap.all_conns():
            for t, who, f in r.get('frames', []):
                if t >= self.since and who == 'gateway' and (
                        f.startswith('close') or '"type":"res"' in f):
                    out.append(f[:1500])
        return '\n'.join(out)


def indent(s):
    return '\n'.join('    ' + x for x in s.strip().split('\n'))


def main():
    parts = __doc__.split('\n\n')
    ap = argparse.ArgumentParser(usage=parts[1].replace('Usage: ', ''),
                                 description='\n\n'.join([parts[0]] + parts[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--lab', default=lab.LAB)
    ap.add_argument('--results', default='cli-results')
    ap.add_argument('--gateway')
    ap.add_argument('--ctl')
    ap.add_argument('--gateway-arg', action='append', default=[], metavar='ARG')
    a = ap.parse_args()
    node = lab.CLIENTS['node-2026.9.6']
    try:
        node.verify(a.lab)
        gw_bin = lab.find_build('server/clawpair-gateway', a.gateway)
        ctl_bin = lab.find_build('ctl/clawpair-ctl', a.ctl)
        ns = lab.Netns()
    except lab.LabError as e:
        print(f'run-cli: {e}', file=sys.stderr)
        return 2
    os.makedirs(a.results, exist_ok=True)
    results = os.path.abspath(a.results)
    work = tempfile.mkdtemp(prefix='clawpair-cli.')
    gw = tap = lotap = proc = None
    signal.signal(signal.SIGTERM, lab.interrupt)
    try:
        ns.create()
        gw = lab.Gateway(gw_bin, work, [ns.host_ip, '127.0.0.1'], extra=a.gateway_arg).start()
        tap = lab.WireTap(ns.host_if, gw.port)
        lotap = lab.WireTap('lo', gw.port, keep=True)
        tap.start()
        lotap.start()
        argv, env = node.argv_env(a.lab, os.path.join(work, 'node'), ns.host_ip, gw.port,
                                  gw.token, LABEL)
        proc = lab.Proc(ns, argv, env, os.path.join(work, 'node.log'))
        dev = pair(gw, tap, ctl_bin, proc)
        rc = run_checks(a, node, gw, tap, lotap, ctl_bin, dev, work, results)
    except lab.LabError as e:
        print(f'run-cli: {e}', file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print('run-cli: interrupted; cleaning up', file=sys.stderr)
        rc = 1
    finally:
        if proc:
            proc.stop()
            shutil.copy(proc.log_path, os.path.join(results, 'node.log'))
        for t in (tap, lotap):
            if t:
                t.stop()
        if gw:
            gw.stop()
            shutil.copy(gw.log_path, os.path.join(results, 'gateway.log'))
        ns.destroy()
        shutil.rmtree(work, ignore_errors=True)
    return rc


def pair(gw, tap, ctl_bin, proc):
    """Approves the node's request as clawpair-ctl lists it (held open or not: a gateway may have
    closed it), then waits for its hello-ok on the wire; returns its device id."""
    t_end = time.time() + 180
    approved = set()
    while time.time() < t_end:
        dev = tap.display_names().get(LABEL)
        if dev and any(r['hello'] for r in tap.device_conns(dev)):
            return dev
        rc, out = lab.ctl(ctl_bin, gw.url('127.0.0.1'), gw.token_file, '--json', 'pending')
        try:
            pend = (json.loads(out).get('pending') or []) if rc == 0 else []
        except ValueError:
            pend = []
        for p in pend:
            if p.get('displayName') == LABEL and p.get('requestId') not in approved:
                rc, out = lab.ctl(ctl_bin, gw.url('127.0.0.1'), gw.token_file, 'approve',
                                  p['requestId'])
                if rc != 0:
                    raise lab.LabError(f'clawpair-ctl approve: {out}')
                approved.add(p['requestId'])
        if proc.poll() is not None:
            raise lab.LabError(f'the node host exited ({proc.p.returncode}): see node.log')
        time.sleep(0.5)
    raise lab.LabError('the node host did not pair within 180 s (see gateway.log, node.log)')


def run_checks(a, node, gw, tap, lotap, ctl_bin, dev, work, results):
    home = os.path.join(work, 'cli')
    env = {'PATH': os.path.dirname(node.node(a.lab)) + ':/usr/bin:/bin',
           'HOME': os.path.join(home, 'home'), 'TMPDIR': os.path.join(home, 'tmp'),
           'OPENCLAW_STATE_DIR': os.path.join(home, 'state'),
           'OPENCLAW_CONFIG_PATH': os.path.join(home, 'state', 'openclaw.json'),
           'OPENCLAW_NO_AUTO_UPDATE': '1',
           'OPENCLAW_DISABLE_BONJOUR': '1', 'NO_COLOR': '1', 'COLUMNS': '200'}
    for k in ('home', 'tmp', 'state'):
        os.makedirs(os.path.join(home, k), exist_ok=True)
    url = gw.url('127.0.0.1')
    # the gateway and its token in the CLI's own config (mode 0600), not on its command line:
    # with --url the CLI wants --token too
    fd = os.open(env['OPENCLAW_CONFIG_PATH'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, json.dumps({'gateway': {'mode': 'remote', 'remote': {
        'url': url, 'token': gw.token}}}).encode())
    os.close(fd)
    check = Checks(lotap, results)
    log = open(os.path.join(results, 'cli.txt'), 'w')

    def cli(*args):
        cmd = [node.node(a.lab), os.path.join(a.lab, node.check), *args]
        check.mark()
        t0 = time.time()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
        out = r.stdout + r.stderr
        log.write(f'$ openclaw {" ".join(args)}   (exit {r.returncode}, '
                  f'{time.time() - t0:.1f} s)\n{out}\n')
        return r.returncode, out, ['openclaw', *args]

    def js(out):
        try:
            return json.loads(out[out.index('{'):out.rindex('}') + 1])
        except ValueError:
            return None

    def node_of(obj):
        for key in ('nodes', 'paired'):
            for n in (obj or {}).get(key) or []:
                if isinstance(n, dict) and n.get('nodeId') == dev:
                    return n
        return None

    def table_row(out):
        return next((ln for ln in out.split('\n') if LABEL in ln or dev[:12] in ln), None)

    for sub in ('list', 'status'):
        rc, out, cmd = cli('nodes', sub, '--json')
        n = node_of(js(out))
        check(rc == 0, f'nodes {sub} --json exits 0 ({rc})', cmd, out)
        check(n is not None, f'nodes {sub} --json lists the node {dev[:12]}', cmd, out)
        if n is not None:
            caps = n.get('caps')
            check(isinstance(caps, list) and len(caps) > 0,
                  f'nodes {sub} --json: caps {caps}', cmd, out)
            last = n.get('lastConnectedAtMs') or n.get('connectedAtMs')
            check(isinstance(last, (int, float)) and abs(last / 1000 - time.time()) < 600,
                  f'nodes {sub} --json: lastConnectedAtMs/connectedAtMs {last}', cmd, out)
            if sub == 'status':
                check(n.get('connected') is True, f"nodes status --json: connected "
                      f"{n.get('connected')}", cmd, out)
        rc, out, cmd = cli('nodes', sub)
        row = table_row(out)
        check(rc == 0 and row is not None, f'nodes {sub} exits 0 ({rc}) and shows the node',
              cmd, out)
        if row is not None:
            # the last column: Last Connect in `nodes list`, Caps in `nodes status`
            cells = [c.strip() for c in row.split('│')[1:-1]]
            last = cells[-1] if cells else ''
            check(last not in ('', '?', 'unknown'), f"nodes {sub}: the row's "
                  f"{'Last Connect' if sub == 'list' else 'Caps'} column is {last!r}: "
                  f'{row.strip()}', cmd, out)
    rc, out, cmd = cli('devices', 'list', '--json')
    check(rc == 0 and dev in out, f'devices list --json exits 0 ({rc}) and lists the device',
          cmd, out)
    conns_before = [r for r in tap.device_conns(dev) if r['hello']]
    rc, out, cmd = cli('nodes', 'remove', '--node', dev, '--json')
    check(rc == 0, f'nodes remove --node ID exits 0 ({rc})', cmd, out)
    time.sleep(1.0)
    check.mark()
    crc, cout = lab.ctl(ctl_bin, url, gw.token_file, '--json', 'devices')
    paired = [p.get('deviceId') for p in (js(cout) or {}).get('paired') or []]
    check(crc == 0 and dev not in paired, 'after nodes remove, clawpair-ctl devices does not '
          'list the device as paired', ['clawpair-ctl', '--json', 'devices'], cout)
    ends = [c for r in tap.device_conns(dev) if r['hello'] for c in r['closes']
            if c['by'] == 'gateway']
    check(bool(conns_before) and bool(ends), 'after nodes remove, the gateway closed the node\'s '
          'session: ' + ', '.join(f"{c['code']} {c['reason']}" for c in ends[:1]))
    rc, out, cmd = cli('nodes', 'list', '--json')
    check(rc == 0 and node_of(js(out)) is None, 'nodes list --json after remove: exits 0, the '
          'node is not listed as paired', cmd, out)
    log.close()
    print(f'run-cli: {len(check.lines) - check.failed} passed, {check.failed} failed; '
          f'outputs in {results}/cli.txt')
    return 1 if check.failed else 0


if __name__ == '__main__':
    sys.exit(main())
