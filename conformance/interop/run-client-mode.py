#!/usr/bin/env python3
"""run-client-mode.py: grades real, unmodified OpenClaw clients with `clawpair-conformance
client` (spec/pairing.md section 10, CLIENT-1 to CLIENT-15): the runner plays the gateway and
starts the client for each case with --exec, the client a LAN node in a network namespace of
this script's making (veth pair; never loopback, never the machine's LAN address).

Usage: run-client-mode.py [--client NAME]... [--out DIR] [--hold-ms N] [--wait S]
                          [--expectations] [--cases PATTERN]... [--exclude PATTERN]...
                          [--deadline S] [--lab DIR] [--conformance PATH] [--cache DIR]
                          [--loopback] [--profile NAME] [--list]

Clients (NAME): node-2026.9.6 (`openclaw node run` of 2026.9.6), node-2026.1.30 (the same of
2026.1.30), openclaw-node (the npm client openclaw-node 0.14.0, run by openclaw-node-run.mjs as
role node); and fake-node, the tree's clawpair-fake-node (--profile, default reference), the
row to compare them with (never by default). Default: the three real ones, one after another
(the jitter case starts six copies of the client at once; two clients at a time would make that
twelve node processes). They come from the lab (--lab, default $OPENCLAW_LAB or
/tmp/openclaw-lab); README.md says how to install it.

For each client the runner (the tree's build*/conformance/clawpair-conformance, or
--conformance) listens on the host end of the veth (--listen HOST:0) and starts, per case,
`ip netns exec NS env HOME={state_dir}/home ... node ... node run --host {host} --port {port}`
(interoplab.Client.exec_command): each case a fresh state directory, so a new device identity,
kept across the restart of the restart cases; the shared token in the runner's environment,
which the client inherits (OPENCLAW_GATEWAY_TOKEN, or OCN_TOKEN for openclaw-node), so it is in
no command line. TMPDIR, where jiti and node keep their compile caches, is one per client and
kept across runs (--cache, default DIR/cache): with a fresh one the 2026.1.30 node host
transpiles its plugins again, minutes on a loaded 2-core machine, before its first connect.
--loopback runs the clients on 127.0.0.1 without a namespace (no root needed).

--hold-ms (default 15000) is the hold window of the pending cases: the real clients' own connect
timeouts are about that long, so a shorter window would hide them. --wait (default 300 s) bounds
each case's wait for the client's first connect request; a case's times run from that request,
so a slow start costs no verdict. --deadline (default 1800 s) bounds each client's run: past it
the runner is stopped (SIGTERM: it stops the client and writes its reports, the rest NOT-RUN).

Writes, per client, DIR/NAME.json, NAME.xml (JUnit), NAME.html, NAME.txt (the runner's output)
and NAME-known.txt (--write-expectations: the failures of this run as an expectations file), and
prints one summary line per client: the counts, the failing and non-strict requirement ids, and
how they differ from the known failures of the fake node's profile of that client
(conformance/expectations/client-<profile>.txt). With --expectations each client is graded with
its own file, conformance/expectations/client-openclaw-*.txt (the case ids it fails and why).
Exit status: 0 every client's runner exited 0, 1 one did not, 2 a setup error.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import interoplab as lab  # noqa: E402

EXPECTATIONS = os.path.join(lab.SOURCE, 'conformance', 'expectations')
# the client's own expectations file, and the fake node profile that models the client
KNOWN = {
    'node-2026.9.6': ('client-openclaw-node-host-2026.9.6.txt', 'node-host-2026.9.6'),
    'node-2026.1.30': ('client-openclaw-node-host-2026.1.30.txt', 'node-host-2026.1.30'),
    'openclaw-node': ('client-openclaw-node-0.14.0.txt', 'openclaw-node-0.14'),
}
ORDER = ['openclaw-node', 'node-2026.9.6', 'node-2026.1.30']


class FakeNode:
    """The tree's clawpair-fake-node (its default profile 'reference', or --profile) as a client,
    in the same namespace: the row to compare the real clients with."""

    name, title = 'fake-node', 'clawpair-fake-node'

    def __init__(self, binary, profile):
        self.binary, self.profile = binary, profile

    def exec_command(self, lab_dir, ns_name, cache):
        ip = shutil.which('ip') or '/sbin/ip'
        netns = f'{ip} netns exec {ns_name} ' if ns_name else ''
        return (f'exec {netns}{self.binary} --profile {self.profile} --url {{url}} '
                '--token-file {token_file} --identity {state_dir}/identity.json'), {}

    def token_env(self, token):
        return {}


def read_known(path):
    """The case ids (or patterns) of a TSV expectations file."""
    out = set()
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip('\n')
                if line and not line.startswith('#'):
                    out.add(line.split('\t')[0])
    except OSError:
        pass
    return out


def summary_line(name, report, profile):
    """'NAME: 19 cases in 612 s: 12 PASS, ...; fail CLIENT-8, ...; vs profile P: ...'"""
    s = report['summary']
    counts = ', '.join(f'{s[k]} {k}' for k in ('PASS', 'FAIL', 'NON-STRICT', 'XFAIL', 'SKIP',
                                                 'ERROR', 'NOT-RUN') if s[k] or k in
                       ('PASS', 'FAIL', 'NON-STRICT', 'SKIP'))
    bad = [c for c in report['cases'] if c['verdict'] in ('FAIL', 'NON-STRICT', 'XFAIL')]
    line = f"{name}: {s['total']} cases in {report['duration_ms'] / 1000:.0f} s: {counts}"
    for v in ('FAIL', 'NON-STRICT', 'XFAIL', 'SKIP', 'ERROR'):
        reqs = sorted({c['requirement'] for c in report['cases'] if c['verdict'] == v},
                      key=lambda r: int(r.split('-')[1]))
        if reqs:
            line += f"; {v}: {' '.join(reqs)}"
    if profile:
        known = read_known(os.path.join(EXPECTATIONS, f'client-{profile}.txt'))
        failed = {c['id'] for c in bad}
        judged = {c['id'] for c in report['cases'] if c['verdict'] not in ('SKIP', 'ERROR',
                                                                            'NOT-RUN')}
        only_real = sorted(failed - known)
        only_prof = sorted((known & judged) - failed)
        if only_real or only_prof:
            line += f'; vs profile {profile}:'
            if only_real:
                line += f" fails, the profile not: {' '.join(only_real)}"
            if only_prof:
                line += f" the profile fails, it not: {' '.join(only_prof)}"
        else:
            line += f'; as profile {profile}'
    return line


def run_client(a, c, ns, token_file, token, out):
    """One `clawpair-conformance client` run for client C; returns (exit status, report)."""
    cache = os.path.join(a.cache, f'tmp-{c.name}')
    cmd, env = c.exec_command(a.lab, ns.name if ns else None, cache)
    env.update(c.token_env(token))
    env['LANG'] = 'C.UTF-8'
    host = ns.host_ip if ns else '127.0.0.1'
    base = os.path.join(out, c.name)
    argv = [a.conformance, 'client', '--listen', f'{host}:0', '--token-file', token_file,
            '--hold-ms', str(a.hold_ms), '--wait', str(a.wait), '--exec', cmd,
            '--json', base + '.json', '--junit', base + '.xml', '--html', base + '.html']
    if a.expectations:
        known = KNOWN[c.name][0] if c.name in KNOWN else f'client-{a.profile}.txt'
        if c.name != 'fake-node' or a.profile != 'reference':
            argv += ['--expectations', os.path.join(EXPECTATIONS, known)]
    else:
        argv += ['--write-expectations', base + '-known.txt']
    for p in a.cases:
        argv += ['--cases', p]
    for p in a.exclude:
        argv += ['--exclude', p]
    print(f'run-client-mode: {c.title}: clawpair-conformance client on ws://{host} '
          f"(client {'in netns ' + ns.name + ' at ' + ns.ns_ip if ns else 'on loopback'})",
          file=sys.stderr, flush=True)
    with open(base + '.txt', 'w') as log:
        log.write('$ ' + ' '.join(argv[:1] + ['client'] + [repr(x) if ' ' in x else x
                                                             for x in argv[2:]]) + '\n')
        log.flush()
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(a.deadline)
        except subprocess.TimeoutExpired:
            print(f'run-client-mode: {c.title}: over --deadline {a.deadline:.0f} s, stopped',
                  file=sys.stderr)
            rc = None
        except KeyboardInterrupt:
            rc = None
            raise
        finally:
            if p.poll() is None:
                # SIGTERM: the runner stops its clients and writes its reports (cases NOT-RUN)
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
    try:
        with open(base + '.json') as f:
            report = json.load(f)
    except (OSError, ValueError):
        report = None
    return (rc if rc is not None else 1), report


def main():
    parts = __doc__.split('\n\n')
    ap = argparse.ArgumentParser(usage=parts[1].replace('Usage: ', ''),
                                 description='\n\n'.join([parts[0]] + parts[2:]),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--client', action='append', choices=sorted(lab.CLIENTS) + ['fake-node'])
    ap.add_argument('--profile', default='reference', help="fake-node's --profile")
    ap.add_argument('--out', default='client-mode-results', metavar='DIR')
    ap.add_argument('--hold-ms', type=int, default=15000)
    ap.add_argument('--wait', type=int, default=300, metavar='S')
    ap.add_argument('--expectations', action='store_true',
                    help="grade with each client's expectations file")
    ap.add_argument('--cases', action='append', default=[], metavar='PATTERN')
    ap.add_argument('--exclude', action='append', default=[], metavar='PATTERN')
    ap.add_argument('--deadline', type=float, default=1800, metavar='S',
                    help="each client's run, seconds")
    ap.add_argument('--lab', default=lab.LAB)
    ap.add_argument('--conformance', metavar='PATH')
    ap.add_argument('--cache', metavar='DIR')
    ap.add_argument('--loopback', action='store_true')
    ap.add_argument('--list', action='store_true', help='print the --exec commands, run nothing')
    a = ap.parse_args()
    if a.hold_ms < 100 or a.wait < 1 or a.deadline < 10:
        ap.error('--hold-ms >= 100, --wait >= 1, --deadline >= 10')
    names = [n for n in ORDER + ['fake-node'] if n in (a.client or ORDER)]
    a.out = os.path.abspath(a.out)
    a.cache = os.path.abspath(a.cache or os.path.join(a.out, 'cache'))
    clients = dict(lab.CLIENTS)
    if 'fake-node' in names:
        try:
            clients['fake-node'] = FakeNode(lab.find_build('fake-node/clawpair-fake-node'),
                                            a.profile)
        except lab.LabError as e:
            print(f'run-client-mode: {e}', file=sys.stderr)
            return 2
    if a.list:
        for n in names:
            cmd, env = clients[n].exec_command(a.lab, None if a.loopback else 'NS',
                                                   os.path.join(a.cache, f'tmp-{n}'))
            print(f'{n}: --exec {cmd!r}')
        return 0
    ns = None
    try:
        for n in names:
            if n != 'fake-node':
                lab.CLIENTS[n].verify(a.lab)
        a.conformance = lab.find_build('conformance/clawpair-conformance', a.conformance)
        if not a.loopback:
            ns = lab.Netns()
    except lab.LabError as e:
        print(f'run-client-mode: {e}', file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix='clawpair-client-mode.')
    token = os.urandom(16).hex()
    token_file = os.path.join(work, 'token')
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (token + '\n').encode())
    os.close(fd)
    signal.signal(signal.SIGTERM, lab.interrupt)
    rc, lines = 0, []
    t0 = time.time()
    try:
        if ns:
            ns.create()
        for n in names:
            c = clients[n]
            r, report = run_client(a, c, ns, token_file, token, a.out)
            if report is None:
                line = f'{n}: no report (exit status {r}; see {a.out}/{n}.txt)'
            else:
                prof = KNOWN[n][1] if n in KNOWN else (a.profile if a.profile != 'reference'
                                                        else None)
                line = summary_line(n, report, prof) + f' (exit {r})'
            print(line, flush=True)
            lines.append(line)
            rc = max(rc, 1 if r else 0)
            if r == 2:
                rc = 2
    except lab.LabError as e:
        print(f'run-client-mode: {e}', file=sys.stderr)
        rc = 2
    except KeyboardInterrupt:
        print('run-client-mode: interrupted; cleaning up', file=sys.stderr)
        rc = 1
    finally:
        if ns:
            ns.destroy()
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(a.out, 'summary.txt'), 'w') as f:
        f.write(''.join(x + '\n' for x in lines))
        f.write(f'hold {a.hold_ms} ms, {time.time() - t0:.0f} s in all, '
                f"{time.strftime('%Y-%m-%d', time.gmtime())}\n")
    return rc


if __name__ == '__main__':
    sys.exit(main())
