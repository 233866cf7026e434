#!/usr/bin/env python3
"""suite.py: times the whole conformance suite against the reference gateway; prints one JSON line.

Usage: suite.py GATEWAY RUNNER

Two runs make the whole suite, as the reference gateway needs two configurations: the main run
(trusted proxy 127.0.0.1 for the X-Forwarded-For remote clients, a 2 s pending TTL for the expiry
cases, a 2 s handshake timeout for the silent-socket case), and the cases the main run skips
(restart, ticks, a total pending cap of 2). The figure is the wall time of both runner
invocations; gateway start-up is not counted.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOKEN = 'bench-suite-token'
EXTRA_CASES = ['persist', 'hold/HOLD-7', 'limits/LIMIT-3', 'handshake/WIRE-16',
               'hold/HOLD-2/held-socket-gets-ticks']


class Gateway:
    def __init__(self, exe, extra):
        self.dir = tempfile.mkdtemp(prefix='clawpair-suite-')
        self.cmd = [exe, '--token', TOKEN, '--state-dir', os.path.join(self.dir, 'state'),
                    '--trusted-proxy', '127.0.0.1', '--pending-ttl', '2', '--handshake-timeout', '2000',
                    '--log-level', 'warn'] + extra
        self.proc = None
        self.url = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd + ['--listen', '127.0.0.1:0'], stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.dir, 'err'), 'ab'), text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            m = re.search(r'listening on (ws://127\.0\.0\.1:(\d+))', line or '')
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                return self
            if not line:
                break
        raise RuntimeError('gateway did not start')

    def restart_script(self):
        """SIGTERM the running gateway, start it again on the same port and state."""
        pidfile = os.path.join(self.dir, 'pid')
        with open(pidfile, 'w') as f:
            f.write(str(self.proc.pid))
        cmd = ' '.join("'%s'" % a for a in self.cmd + ['--listen', '127.0.0.1:%d' % self.port])
        path = os.path.join(self.dir, 'restart.sh')
        with open(path, 'w') as f:
            f.write('#!/bin/sh\nset -e\npid=$(cat {p})\nkill -TERM "$pid"\n'
                    # the old gateway is this script's caller's child: a zombie until reaped
                    'while kill -0 "$pid" 2>/dev/null && ! grep -q "^[0-9]* ([^)]*) Z" /proc/$pid/stat; do sleep 0.02; done\n'
                    ': > {d}/out\n{c} > {d}/out 2>> {d}/err &\necho $! > {p}\n'
                    'for i in $(seq 500); do grep -q "listening on" {d}/out && exit 0; sleep 0.02; done\n'
                    'exit 1\n'.format(p=pidfile, c=cmd, d=self.dir))
        os.chmod(path, 0o755)
        return path, pidfile

    def stop(self, pidfile=None):
        pids = {self.proc.pid} if self.proc else set()
        if pidfile and os.path.exists(pidfile):
            pids.add(int(open(pidfile).read().strip() or 0))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(runner, gw, extra):
    out = os.path.join(gw.dir, 'report.json')
    t0 = time.monotonic()
    p = subprocess.run([runner, '--url', gw.url, '--token', TOKEN, '--json', out] + extra,
                       capture_output=True, text=True, errors='replace', timeout=900)
    secs = time.monotonic() - t0
    verdicts = {}
    try:
        with open(out, encoding='utf-8') as f:
            for c in json.load(f).get('cases', []):
                verdicts[c['verdict']] = verdicts.get(c['verdict'], 0) + 1
    except (OSError, ValueError):
        pass
    return secs, p.returncode, verdicts


def main():
    gateway, runner = sys.argv[1:3]
    total, rcs, verdicts = 0.0, [], {}
    gw = Gateway(gateway, []).start()
    try:
        s, rc, v = run(runner, gw, ['--pending-ttl-ms', '2000'])
    finally:
        gw.stop()
    total += s
    rcs.append(rc)
    main_secs = s
    for k, n in v.items():
        verdicts[k] = verdicts.get(k, 0) + n
    gw = Gateway(gateway, ['--max-pending', '2', '--tick-interval', '1000']).start()
    script, pidfile = gw.restart_script()
    try:
        args = ['--restart-cmd', script, '--max-pending', '2', '--tick-interval-ms', '1000']
        for c in EXTRA_CASES:
            args += ['--cases', c]
        s, rc, v = run(runner, gw, args)
    finally:
        gw.stop(pidfile)
    total += s
    rcs.append(rc)
    # The main run SKIPs what the second one runs: count those once, as run.
    verdicts['SKIP'] = max(0, verdicts.get('SKIP', 0) - sum(v.values()))
    for k, n in v.items():
        verdicts[k] = verdicts.get(k, 0) + n
    summary = ' '.join('%s %d' % (k, verdicts[k]) for k in sorted(verdicts) if verdicts[k])
    print(json.dumps({'seconds': round(total, 3), 'main_seconds': round(main_secs, 3),
                      'extra_seconds': round(s, 3), 'exit': max(rcs), 'summary': summary,
                      'verdicts': verdicts}))


if __name__ == '__main__':
    main()
