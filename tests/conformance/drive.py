#!/usr/bin/env python3
"""drive.py: black-box tests of clawpair-conformance against the real reference gateway.

Usage: drive.py MODE   (reference | compat | extras | tls | coverage | lint | cli | html | secrets | gone | install | offhost | parallel | schema | ci | client)
Needs CLAWPAIR_BUILD_ROOT and CLAWPAIR_SOURCE_ROOT (meson's test_env). Exit 77 = skip.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get('CLAWPAIR_BUILD_ROOT', '')
SOURCE = os.environ.get('CLAWPAIR_SOURCE_ROOT', '')
VALGRIND = os.environ.get('CLAWPAIR_VALGRIND') == '1'
GATEWAY = os.path.join(BUILD, 'server', 'clawpair-gateway')
RUNNER = os.path.join(BUILD, 'conformance', 'clawpair-conformance')
CASES = os.path.join(SOURCE, 'conformance', 'cases')
TOKEN = 'conformance-test-token'
# Under ASan+UBSan (scripts/check sets CLAWPAIR_SANITIZE=1) or valgrind the gateway is several
# times slower, and scripts/check runs another test beside it: the gateway's pending TTL and
# handshake timeout grow, so that what the cases time against them (LIMIT-2's 33 connects
# within one TTL, LIMIT-4's unfinished connections within one handshake timeout) still fits.
SANITIZE = os.environ.get('CLAWPAIR_SANITIZE') == '1'
SCALE = '10' if VALGRIND else '2' if SANITIZE else '1'
TTL_S = 6 if VALGRIND or SANITIZE else 2
TTL_MS = str(TTL_S * 1000)


def fail(msg):
    print('FAIL: ' + msg)
    sys.exit(1)


def gateway_cmd(port, state, extra, host='127.0.0.1'):
    cmd = [GATEWAY, '--listen', '%s:%d' % (host, port), '--token', TOKEN, '--state-dir', state,
           '--trusted-proxy', host, '--pending-ttl', str(TTL_S),
           '--handshake-timeout', TTL_MS] + extra
    if VALGRIND:
        cmd = ['valgrind', '--error-exitcode=99', '--leak-check=full',
               '--errors-for-leak-kinds=definite', '-q'] + cmd
    return cmd


class Gateway:
    """The reference gateway on a free port with a fresh state dir."""

    def __init__(self, extra=(), host='127.0.0.1'):
        self.host = host
        self.dir = tempfile.mkdtemp(prefix='cp-conf-')
        self.state = os.path.join(self.dir, 'state')
        os.mkdir(self.state, 0o700)  # a group-writable state dir is refused (spec 8.9)
        self.extra = list(extra)
        self.proc = None
        self.url = None
        self.port = 0
        self.fingerprint = None  # with --tls-self-signed: what the gateway printed

    def start(self):
        self.proc = subprocess.Popen(gateway_cmd(self.port, self.state, self.extra, self.host),
                                     stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, 'gw.err'), 'ab'),
                                     text=True)
        deadline = time.time() + (60 if VALGRIND else 10)
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r'^tls fingerprint (sha256:[0-9a-f]{64})$', line)
            if m:
                self.fingerprint = m.group(1)
            m = re.search(r'listening on (wss?://%s:(\d+))' % re.escape(self.host), line)
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                return self
        self.stop()
        fail('gateway did not print "listening on ws://..." (or wss://)')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60 if VALGRIND else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        if VALGRIND and rc == 99:
            fail('valgrind reported errors in the gateway (see %s/gw.err)' % self.dir)
        return rc

    def restart_script(self):
        """A --restart-cmd: SIGTERM the gateway, start it again on the same port and state."""
        path = os.path.join(self.dir, 'restart.sh')
        pidfile = os.path.join(self.dir, 'gw.pid')
        with open(pidfile, 'w') as f:
            f.write(str(self.proc.pid))
        cmd = ' '.join("'%s'" % a for a in gateway_cmd(self.port, self.state, self.extra))
        with open(path, 'w') as f:
            f.write('#!/bin/sh\nset -e\npid=$(cat %s)\nkill -TERM "$pid"\n'
                    # the old gateway may linger as a zombie of this driver: wait for state Z or gone
                    'while [ -e /proc/$pid ] && ! grep -q "^[0-9]* (.*) Z" /proc/$pid/stat 2>/dev/null; do sleep 0.05; done\n'
                    # the old gw.out says "listening on" too: gone before the new one starts
                    'rm -f %s/gw.out\n'
                    '%s > %s/gw.out 2>> %s/gw.err &\necho $! > %s\n'
                    'for i in $(seq 400); do grep -q "listening on" %s/gw.out 2>/dev/null && exit 0; sleep 0.05; done\n'
                    'exit 1\n' % (pidfile, self.dir, cmd, self.dir, self.dir, pidfile, self.dir))
        os.chmod(path, 0o755)
        return path, pidfile

    def cleanup(self, pidfile=None):
        if pidfile and os.path.exists(pidfile):
            pid = int(open(pidfile).read().strip() or 0)
            if self.proc and pid != self.proc.pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                    for _ in range(200):
                        os.kill(pid, 0)
                        time.sleep(0.05)
                except ProcessLookupError:
                    pass
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args, timeout=900):
    p = subprocess.run([RUNNER] + args, capture_output=True, text=True, errors='replace', timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def run_against(gw, extra, tag):
    out = os.path.join(gw.dir, tag)
    os.makedirs(out, exist_ok=True)
    pin = ['--tls-fingerprint', gw.fingerprint] if gw.fingerprint else []
    rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--timeout-scale', SCALE] + pin + [
                      '--json', out + '/r.json', '--junit', out + '/r.xml', '--html', out + '/r.html'] + extra)
    with open(out + '/r.json', encoding='utf-8') as f:
        rep = json.load(f)
    return rc, so, se, rep, out


def by_verdict(rep, v):
    return [c for c in rep['cases'] if c['verdict'] == v]


def check_junit(path, rep):
    """The JUnit report as CI tools read it: counts that agree with the JSON report, no skipped=
    on <testsuites>, and per suite a timestamp and the run's properties."""
    import xml.etree.ElementTree as ET
    root = ET.parse(path).getroot()
    if root.tag != 'testsuites' or 'skipped' in root.attrib:
        fail('JUnit root: %s %s' % (root.tag, root.attrib))
    n = sum(len(ts.findall('testcase')) for ts in root.findall('testsuite'))
    if int(root.get('tests')) != n or n != len(rep['cases']):
        fail('JUnit: %s tests, %d testcases, %d cases' % (root.get('tests'), n, len(rep['cases'])))
    if int(root.get('errors')) != rep['summary']['ERROR']:
        fail('JUnit errors=%s, %d ERROR' % (root.get('errors'), rep['summary']['ERROR']))
    for ts in root.findall('testsuite'):
        if not re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$', ts.get('timestamp', '')):
            fail('suite %s timestamp %r' % (ts.get('name'), ts.get('timestamp')))
        props = {p.get('name'): p.get('value') for p in ts.findall('properties/property')}
        if props.get('gateway') != rep['gateway'] or not props.get('runner.version') \
                or '--timeout-scale' not in props or '--remote-via' not in props:
            fail('suite %s properties %s' % (ts.get('name'), props))
        if any(TOKEN in (v or '') for v in props.values()):
            fail('the token in the JUnit properties')


def mode_reference(extra=(), tag='ref'):
    gw = Gateway(extra).start()
    try:
        rc, so, se, rep, out = run_against(gw, ['--pending-ttl-ms', TTL_MS], tag)
        check_junit(out + '/r.xml', rep)
        bad = by_verdict(rep, 'FAIL') + by_verdict(rep, 'NON-STRICT')
        for c in bad:
            print('not passing: %s %s: %s' % (c['verdict'], c['id'], c['message']))
        if bad or rc != 0:
            print(so[-3000:], se)
            fail('the reference gateway must pass every case (exit %d)' % rc)
        passed = len(by_verdict(rep, 'PASS'))
        if passed < 100:
            fail('only %d cases passed' % passed)
        if not re.search(r'^\[\s*1/\d+\] PASS\s+handshake/', so, re.M):
            fail('no progress line in the text output')
        if 'Summary: ' not in so or 'Verdict: PASSED' not in so:
            fail('no summary')
        print('ok: %d PASS, %d SKIP against the reference gateway%s'
              % (passed, len(by_verdict(rep, 'SKIP')), ' over ' + gw.url if gw.fingerprint else ''))
    finally:
        gw.cleanup()


def mode_tls():
    """The whole suite over wss:// with the gateway's fingerprint pinned (every actor of every
    case connects with it), then the runner refusing a wrong pin before any case."""
    mode_reference(['--tls-self-signed'], 'tls')
    gw = Gateway(['--tls-self-signed']).start()
    try:
        if not gw.url.startswith('wss://') or not gw.fingerprint:
            fail('no wss:// URL or fingerprint: %s %s' % (gw.url, gw.fingerprint))
        wrong = 'sha256:' + ('0' if gw.fingerprint[7] != '0' else '1') + gw.fingerprint[8:]
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--tls-fingerprint', wrong])
        want = 'TLS certificate mismatch: pinned %s, the gateway presented %s' % (wrong, gw.fingerprint)
        if rc != 2 or 'refusing the gateway' not in se or want not in se or 'PASS' in so:
            fail('a wrong pin: exit %d, %r %r' % (rc, so[-300:], se))
        refused = se.strip()
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases', 'handshake/WIRE-2'])
        if rc != 2 or 'TLS certificate not trusted' not in se:
            fail('no pin for a self-signed gateway: exit %d, %r' % (rc, se))
        print('ok: a wrong pin is refused: %s' % refused)
    finally:
        gw.cleanup()


def mode_compat():
    gw = Gateway(['--compat-6836']).start()
    try:
        rc, so, se, rep, _ = run_against(gw, ['--pending-ttl-ms', TTL_MS], 'compat')
        if rc != 1:
            fail('exit status %d against --compat-6836, want 1' % rc)
        cases = {c['id']: c for c in rep['cases']}
        hold = [c for c in rep['cases'] if c['id'].startswith('hold/HOLD-1/')]
        if not hold:
            fail('no hold-open cases')
        for c in hold:
            m = c['message'] or ''
            if c['verdict'] != 'FAIL' or '1008' not in m or 'OpenClaw #6836' not in m \
                    or 'held open' not in m:
                fail('%s: want FAIL with the 1008 diagnosis, got %s: %s' % (c['id'], c['verdict'], m))
        first = cases['hold/HOLD-1/no-close-while-pending']['message']
        if not re.match(r"closed with 1008 'pairing required' \d+ ms after connect, before any approval: "
                        r"the spec requires the connection to be held open \(OpenClaw #6836\)$", first):
            fail('diagnosis text: %r' % first)
        ul = cases['store/STORE-2/node-list-shows-request']
        if ul['verdict'] != 'FAIL' or not re.match(
                r'node\.pair\.list lacked requestId [0-9a-f]{8}\u2026 that device\.pair\.list shows '
                r'\(OpenClaw #6836: two stores\)$', ul['message'] or ''):
            fail('unified-list diagnosis: %r' % ul['message'])
        ap = cases['store/STORE-3/node-pair-approve-listed']
        if ap['verdict'] != 'FAIL' or "node.pair.approve answered 'unknown requestId'" not in (ap['message'] or '') \
                or 'OpenClaw #6836' not in ap['message']:
            fail('approve diagnosis: %r' % ap['message'])
        if 'OpenClaw #6836' not in so:
            fail('diagnosis missing from the text output')
        # what does not depend on pairing still passes
        for cid in ('handshake/WIRE-13/hello-ok-shape', 'robust/ROBUST-1/not-json'):
            if cases[cid]['verdict'] != 'PASS':
                fail('%s should pass in compat mode: %s' % (cid, cases[cid]['message']))
        # a known-failure list turns those FAILs into XFAIL and the run into a pass
        exp = os.path.join(gw.dir, 'exp.json')
        with open(exp, 'w') as f:
            json.dump({'expected-fail': [{'id': 'hold/HOLD-1/*', 'reason': 'closes with 1008 (#6836)'}]}, f)
        rc2, so2, se2 = run(['--url', gw.url, '--token', TOKEN, '--cases', 'hold/HOLD-1',
                             '--expectations', exp, '--timeout-scale', SCALE])
        if rc2 != 0 or 'XFAIL' not in so2 or ' FAIL ' in so2.replace('XFAIL', ''):
            fail('expectations: exit %d: %s' % (rc2, so2))
        # a pattern whose cases partly fail is not stale: the ones that pass are plain PASS
        with open(exp, 'w') as f:
            json.dump({'expected-fail': [{'id': 'key', 'reason': 'closes 1008 (#6836)'}]}, f)
        rc2, so2, se2 = run(['--url', gw.url, '--token', TOKEN, '--cases', 'key',
                             '--expectations', exp, '--timeout-scale', SCALE])
        if rc2 != 0 or 'XFAIL' not in so2 or not re.search(r'\] PASS ', so2) or 'listed as a known failure' in so2:
            fail('a pattern with some cases passing: exit %d: %s' % (rc2, so2))
        # --write-expectations: a starting file from a run's failures, which the next run takes
        wrote = os.path.join(gw.dir, 'wrote.json')
        sel = ['--cases', 'hold/HOLD-1', '--cases', 'store/STORE-2', '--cases', 'handshake/WIRE-13']
        rc3, so3, se3 = run(['--url', gw.url, '--token', TOKEN, '--timeout-scale', SCALE,
                             '--write-expectations', wrote] + sel)
        listed = json.load(open(wrote, encoding='utf-8'))['expected-fail']
        if rc3 != 1 or not listed or any(not e['reason'] for e in listed) \
                or not any('OpenClaw #6836' in e['reason'] for e in listed):
            fail('--write-expectations: exit %d, %s' % (rc3, listed))
        rc4, so4, se4 = run(['--url', gw.url, '--token', TOKEN, '--timeout-scale', SCALE,
                             '--expectations', wrote] + sel)
        if rc4 != 0 or so4.count('XFAIL ') < len(listed):
            fail('the written expectations: exit %d, %s' % (rc4, so4[-800:]))
        # every failure known: one console line per case, XFAIL included; --quiet: the summary
        known = os.path.join(gw.dir, 'known.json')
        with open(known, 'w') as f:
            json.dump({'expected-fail': [{'id': c['id'], 'reason': 'known: ' + (c['message'] or '')[:80]}
                                         for c in rep['cases'] if c['verdict'] in ('FAIL', 'NON-STRICT', 'INFO')]}, f)
        base = ['--url', gw.url, '--token', TOKEN, '--timeout-scale', SCALE, '--pending-ttl-ms', TTL_MS,
                '--expectations', known]
        rc5, so5, se5 = run(base)
        lines = so5.splitlines()
        xfail = [l for l in lines if re.match(r'^\[\s*\d+/\d+\] XFAIL ', l)]
        if rc5 != 0 or len(lines) != 1 + len(rep['cases']) + 3 or not xfail \
                or any(': known: ' not in l for l in xfail) or not lines[-1].startswith('Verdict: PASSED'):
            fail('an expected run: exit %d, %d lines for %d cases, %d XFAIL lines:\n%s'
                 % (rc5, len(lines), len(rep['cases']), len(xfail), '\n'.join(lines[:12])))
        rc6, so6, se6 = run(base + ['--quiet'])
        quiet = [l for l in so6.splitlines() if l.strip()]
        if rc6 != 0 or len(quiet) != 2 or not quiet[0].startswith('Summary: ') \
                or not quiet[1].startswith('Verdict: PASSED'):
            fail('--quiet: exit %d, %r' % (rc6, so6[:500]))
        print('ok: compat-6836: %d FAIL; "%s"; expected: %d lines, --quiet: %d'
              % (len(by_verdict(rep, 'FAIL')), first, len(lines), len(so6.splitlines())))
    finally:
        gw.cleanup()


def mode_extras():
    """Restart, tick and total-cap cases, which the main run SKIPs."""
    gw = Gateway(['--max-pending', '2', '--tick-interval', '1000']).start()
    script, pidfile = gw.restart_script()
    try:
        rc, so, se, rep, _ = run_against(gw, [
            '--restart-cmd', script, '--max-pending', '2', '--tick-interval-ms', '1000',
            '--cases', 'persist', '--cases', 'hold/HOLD-7', '--cases', 'limits/LIMIT-3',
            '--cases', 'handshake/WIRE-16', '--cases', 'hold/HOLD-2/held-socket-gets-ticks'], 'extras')
        ids = {c['id']: c for c in rep['cases']}
        for c in rep['cases']:
            if c['verdict'] != 'PASS':
                print(so[-4000:])
                fail('%s: %s %s' % (c['id'], c['verdict'], c['message']))
        for want in ('persist/PERSIST-1/pending-survives-restart', 'limits/LIMIT-3/pending-total',
                     'hold/HOLD-7/shutdown-1001', 'handshake/WIRE-16/tick'):
            if want not in ids:
                fail('%s did not run' % want)
        if rc != 0:
            fail('exit %d' % rc)
        print('ok: %d extra cases PASS' % len(rep['cases']))
    finally:
        gw.cleanup(pidfile)
    # cases whose requests must outlive them, against a gateway with a longer TTL
    gw = Gateway(['--pending-ttl', '60']).start()
    try:
        rc, so, se, rep, _ = run_against(gw, ['--pending-ttl-ms', '60000', '--cases', 'limits/LIMIT-7'],
                                         'extras-ttl')
        if rc != 0 or not rep['cases'] or any(c['verdict'] != 'PASS' for c in rep['cases']):
            print(so[-4000:])
            fail('long-TTL cases: exit %d' % rc)
        print('ok: %d long-TTL cases PASS' % len(rep['cases']))
    finally:
        gw.cleanup()


def load_cases():
    out = []
    for path in sorted(glob.glob(os.path.join(CASES, '**', '*.json'), recursive=True)):
        with open(path, encoding='utf-8') as f:
            out.append((path, json.load(f)))
    return out


def mode_coverage():
    tsv = os.path.join(SOURCE, 'spec', 'requirements.tsv')
    if not os.path.exists(tsv):
        fail('spec/requirements.tsv missing')
    ids = []
    for line in open(tsv, encoding='utf-8'):
        f = line.rstrip('\n').split('\t')
        if f and re.match(r'^[A-Z]+-\d+$', f[0]):
            ids.append(f[0])
    if len(ids) < 40:
        fail('only %d requirement ids in %s' % (len(ids), tsv))
    cited = {}
    for path, c in load_cases():
        cited.setdefault(c['requirement'], []).append(c['id'])
    # the client requirements (spec section 10) have their cases in client-cases/ (mode_client)
    for path in glob.glob(os.path.join(SOURCE, 'conformance', 'client-cases', '*', '*.json')):
        c = json.load(open(path, encoding='utf-8'))
        cited.setdefault(c['requirement'], []).append(c['id'])
    missing = [i for i in ids if i not in cited]
    unknown = sorted(set(cited) - set(ids))
    if missing:
        fail('requirements without a case: ' + ', '.join(missing))
    if unknown:
        fail('cases cite unknown requirements: ' + ', '.join(unknown))
    robust = len(cited.get('ROBUST-1', []))
    if robust < 30:
        fail('only %d robustness cases' % robust)
    print('ok: %d requirements, each with >= 1 case; %d robustness cases' % (len(ids), robust))


def case_groups():
    """The case groups, in run order, from the one list in conformance/cases.c."""
    src = open(os.path.join(SOURCE, 'conformance', 'cases.c'), encoding='utf-8').read()
    m = re.search(r'group_order\[\]\s*=\s*\{([^}]*)\}', src)
    if not m:
        fail('no group_order list in conformance/cases.c')
    return re.findall(r'"([^"]+)"', m.group(1))


def mode_lint():
    """Case files: fields, ids, folders, and close codes that agree with protocol/errors.def."""
    rows = {}
    for line in open(os.path.join(SOURCE, 'protocol', 'errors.def'), encoding='utf-8'):
        m = re.match(r'X\((\w+), (NULL|"[^"]*"), "([^"]*)", (\d+), "([^"]*)"', line)
        if m:
            rows[m.group(3)] = (int(m.group(4)), m.group(5))
    groups = case_groups()
    folders = sorted(d for d in os.listdir(CASES) if os.path.isdir(os.path.join(CASES, d)))
    if folders != sorted(groups):
        fail('case folders %s are not the groups of conformance/cases.c %s' % (folders, groups))
    seen = set()
    checked = 0
    for path, c in load_cases():
        for k in ('id', 'title', 'requirement', 'level', 'sentence', 'actors', 'steps'):
            if k not in c:
                fail('%s: no %s' % (path, k))
        if c['level'] not in ('MUST', 'SHOULD', 'MAY'):
            fail('%s: level %s' % (path, c['level']))
        if c['id'] in seen:
            fail('duplicate id ' + c['id'])
        seen.add(c['id'])
        group = c['id'].split('/')[0]
        if os.path.basename(os.path.dirname(path)) != group:
            fail('%s: id %s is not in folder %s' % (path, c['id'], group))
        if c['id'].split('/')[1] != c['requirement']:
            fail('%s: id does not name its requirement' % path)
        for st in c['steps']:
            exp = st.get('expect')
            if isinstance(exp, dict) and 'error' in exp and 'close' in exp:
                dc = exp['error'].get('details', {}).get('code')
                if isinstance(dc, str):
                    code, reason = rows[dc]
                    if exp['close'].get('code') != code:
                        fail('%s: %s closes with %d per errors.def, case says %s' % (path, dc, code, exp['close']))
                    checked += 1
    print('ok: %d case files, %d error/close pairs agree with errors.def' % (len(seen), checked))


def case_file(d, group, name, c):
    os.makedirs(os.path.join(d, group), exist_ok=True)
    path = os.path.join(d, group, name + '.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(c, f, indent=1)
    return path


def base_case(cid):
    with open(os.path.join(CASES, 'handshake', 'WIRE-2--challenge-first.json'), encoding='utf-8') as f:
        c = json.load(f)
    c['id'] = cid
    return c


def broken_cases_dir(d):
    """A case that passes and three the scenario engine refuses (two when loaded, one when
    played)."""
    case_file(d, 'handshake', 'ok', base_case('handshake/WIRE-2/ok'))
    c = base_case('handshake/WIRE-2/unknown-var')
    c['steps'][1]['payload']['nonce'] = '${nonce}'
    case_file(d, 'handshake', 'var', c)
    c = base_case('handshake/WIRE-2/unknown-key')
    c['steps'][1]['bogus'] = 1
    case_file(d, 'handshake', 'key', c)
    c = base_case('handshake/WIRE-2/no-token-yet')
    c['needs'] = ['remote']
    c['actors'] = {'n1': {'role': 'node', 'remote': True}}
    c['steps'] = [{'actor': 'n1', 'do': 'connect', 'expect': 'pending'},
                  {'actor': 'n1', 'do': 'connect', 'token': '${n1.deviceToken}', 'expect': 'hello-ok'}]
    case_file(d, 'handshake', 'runtime', c)


def broken_cases(gw):
    """Cases the scenario engine refuses are ERROR, not a FAIL of the gateway: --list says which
    and exits 2; a run reports them as JUnit errors and exits 2."""
    d = os.path.join(gw.dir, 'broken')
    broken_cases_dir(d)
    rc, so, se = run(['--list', '--cases-dir', d])
    if rc != 2 or 'broken case handshake/WIRE-2/unknown-var' not in se or 'unknown variable ${nonce}' not in se \
            or 'broken case handshake/WIRE-2/unknown-key' not in se or 'no-token-yet' in se:
        fail('--list of broken cases: exit %d, %r' % (rc, se))
    out = os.path.join(gw.dir, 'broken-out')
    os.makedirs(out)
    rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases-dir', d, '--junit', out + '/r.xml',
                      '--json', out + '/r.json'])
    with open(out + '/r.json', encoding='utf-8') as f:
        v = {c['id']: (c['verdict'], c['message']) for c in json.load(f)['cases']}
    xml = open(out + '/r.xml', encoding='utf-8').read()
    want = {'handshake/WIRE-2/ok': 'PASS', 'handshake/WIRE-2/unknown-var': 'ERROR',
            'handshake/WIRE-2/unknown-key': 'ERROR', 'handshake/WIRE-2/no-token-yet': 'ERROR'}
    if rc != 2 or {k: x[0] for k, x in v.items()} != want:
        fail('broken cases: exit %d, %s' % (rc, v))
    if not re.search(r'<testsuites [^>]*failures="0" [^>]*errors="3"', xml) or xml.count('<error type="ERROR"') != 3:
        fail('JUnit: broken cases are not errors: %s' % xml[:400])
    if ' FAIL ' in so or 'case rejected by the scenario engine: step 1: unknown variable ${nonce}' not in so:
        fail('console: %s' % so)


def commented_case(gw):
    """// and block comments: the runner takes the file that clawpair-fake-node --script takes."""
    d = os.path.join(gw.dir, 'commented')
    text = json.dumps(base_case('handshake/WIRE-2/commented'), indent=1)
    text = '// a case with comments\n' + text.replace('"steps": [', '"steps": [ /* two steps */\n  // open, then the challenge\n', 1)
    os.makedirs(os.path.join(d, 'handshake'))
    path = os.path.join(d, 'handshake', 'commented.json')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    node = os.path.join(BUILD, 'fake-node', 'clawpair-fake-node')
    p = subprocess.run([node, '--url', gw.url, '--token', TOKEN, '--script', path],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        fail('clawpair-fake-node --script of a commented file: exit %d %s' % (p.returncode, p.stderr))
    rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases-dir', d])
    if rc != 0 or 'PASS       handshake/WIRE-2/commented' not in so:
        fail('a case with // comments: exit %d, %r %r' % (rc, so[-300:], se))


def requirement_sections():
    out = {}
    for line in open(os.path.join(SOURCE, 'spec', 'requirements.tsv'), encoding='utf-8'):
        f = line.rstrip('\n').split('\t')
        if len(f) >= 3 and re.match(r'^[A-Z]+-\d+$', f[0]):
            out[f[0]] = f[2]
    return out


def listed(args):
    rc, so, se = run(['--list'] + args)
    if rc != 0:
        fail('--list %s: exit %d %s' % (args, rc, se))
    return [l.split()[0] for l in so.splitlines() if '/' in l.split()[0]]


def natural_key(s):
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', s)]


def selection():
    """--cases GROUP, --cases REQ, --section S, natural order, --list --json."""
    cases = [c for _, c in load_cases()]
    sections = requirement_sections()
    for args, want in ((['--cases', 'hold'], [c['id'] for c in cases if c['id'].startswith('hold/')]),
                       (['--cases', 'HOLD-1'], [c['id'] for c in cases if c['requirement'] == 'HOLD-1']),
                       (['--section', '8.3'], [c['id'] for c in cases if sections[c['requirement']] == '8.3']),
                       (['--section', '8.1'], [c['id'] for c in cases if sections[c['requirement']] == '8.1'])):
        got = listed(args)
        if sorted(got) != sorted(want) or not want:
            fail('%s lists %d cases, want %d: %s' % (args, len(got), len(want), sorted(set(got) ^ set(want))[:5]))
    ids = listed([])
    diagnose = {c['id'] for c in cases if c.get('diagnose')}
    for group in dict.fromkeys(i.split('/')[0] for i in ids):
        # the #6836 cases ("diagnose") lead their group; the rest follow in natural order
        rest = [i for i in ids if i.startswith(group + '/') and i not in diagnose]
        if rest != sorted(rest, key=natural_key):
            fail('%s: not in natural order: %s' % (group, rest))
    if ids.index(next(i for i in ids if i.startswith('handshake/WIRE-2/'))) > \
            ids.index(next(i for i in ids if i.startswith('handshake/WIRE-10/'))):
        fail('WIRE-10 listed before WIRE-2')
    d = tempfile.mkdtemp(prefix='cp-list-')
    try:
        rc, so, se = run(['--list', '--cases', 'hold', '--json', d + '/l.json'])
        lst = json.load(open(d + '/l.json', encoding='utf-8'))
        if rc != 0 or lst.get('formatVersion') != 1 or [c['id'] for c in lst['cases']] != listed(['--cases', 'hold']) \
                or any(c['section'] != '8.3' for c in lst['cases'] if c['requirement'] == 'HOLD-1'):
            fail('--list --json: exit %d, %s' % (rc, json.dumps(lst)[:300]))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fail_fast_and_timeout():
    gw = Gateway(['--compat-6836']).start()
    try:
        rc, so, se, rep, _ = run_against(gw, ['--cases', 'hold', '--fail-fast', '--jobs', '1'], 'ff')
        v = [c['verdict'] for c in rep['cases']]
        if rc != 1 or v.count('FAIL') != 1 or v[v.index('FAIL') + 1:] != ['NOT-RUN'] * (len(v) - v.index('FAIL') - 1) \
                or len(v) < 3 or '--fail-fast stopped the run after' not in so:
            fail('--fail-fast: exit %d, %s' % (rc, v))
        # side by side: the cases already running finish, no other starts
        rc, so, se, rep, _ = run_against(gw, ['--fail-fast', '--jobs', '4'], 'ff4')
        v = [c['verdict'] for c in rep['cases']]
        if rc != 1 or 'FAIL' not in v or v.count('NOT-RUN') < len(v) - 20:
            fail('--fail-fast --jobs 4: exit %d, %s' % (rc, v))
    finally:
        gw.cleanup()
    gw = Gateway().start()
    try:
        rc, so, se, rep, _ = run_against(gw, ['--cases', 'hold/HOLD-1/no-close-while-pending',
                                              '--cases', 'handshake/WIRE-2', '--case-timeout', '0.5'], 'timeout')
        v = {c['id']: (c['verdict'], c['message']) for c in rep['cases']}
        held = v['hold/HOLD-1/no-close-while-pending']
        # the runner scales --case-timeout by --timeout-scale (SCALE)
        if rc != 2 or held[0] != 'ERROR' or \
                'still running after %g s (--case-timeout)' % (0.5 * float(SCALE)) not in held[1] \
                or v['handshake/WIRE-2/challenge-first'][0] != 'PASS':
            fail('--case-timeout: exit %d, %s' % (rc, v))
    finally:
        gw.cleanup()


def mode_cli():
    rc, so, se = run(['--list'])
    if rc != 0 or 'hold/HOLD-1/no-close-while-pending' not in so or not re.search(r'^\d+ cases$', so, re.M):
        fail('--list: exit %d, %s' % (rc, so[:300]))
    n = int(re.search(r'^(\d+) cases$', so, re.M).group(1))
    if n != len(load_cases()):
        fail('--list shows %d cases, %d files' % (n, len(load_cases())))
    lines = [l for l in so.splitlines() if l.startswith('hold/')]
    if not lines or not lines[0].startswith('hold/HOLD-1/no-close-while-pending'):
        fail('the 1008 case is not first in its group: %r' % lines[:2])
    rc, so, se = run(['--list', '--cases', 'store', '--exclude', 'store/STORE-4/*'])
    ids = [l.split()[0] for l in so.splitlines() if '/' in l]
    if rc != 0 or not ids or any(not i.startswith('store/') or i.startswith('store/STORE-4/') for i in ids):
        fail('--cases/--exclude selection: %r' % ids)
    for bad in (['--bogus'], ['--token', 'x'], ['--url', 'http://x', '--token', 'x'],
                ['--url', 'ws://127.0.0.1:1', '--token', 'x', '--timeout-scale', 'fast'],
                ['--url', 'ws://127.0.0.1:1', '--token', 'x', '--remote-via', 'carrier-pigeon'],
                ['--list', '--cases', 'no/such/case'], ['--list', '--cases-dir', '/nonexistent']):
        rc, so, se = run(bad)
        if rc != 2:
            fail('%r: exit %d, want 2' % (bad, rc))
    # a port nobody listens on: bind one, close it
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    rc, so, se = run(['--url', 'ws://127.0.0.1:%d' % port, '--token', 'x'])
    if rc != 2 or 'cannot reach' not in se:
        fail('unreachable gateway: exit %d, %s' % (rc, se))
    # a wrong token is a refusal: exit 1, in every tool alike
    gw = Gateway().start()
    try:
        rc, so, se = run(['--url', gw.url, '--token', 'wrong', '--cases', 'handshake/WIRE-2'])
        if rc != 1 or 'refused' not in se or 'wrong' in se:
            fail('wrong token: exit %d, %s' % (rc, se))
        ident = os.path.join(gw.dir, 'id.json')
        for tool, args in (('ctl/clawpair-ctl', ['pending']),
                           ('fake-node/clawpair-fake-node', ['--identity', ident, '--once', '--timeout', '10']),
                           ('fake-node/clawpair-fake-node', ['--count', '2', '--once', '--timeout', '10'])):
            p = subprocess.run([os.path.join(BUILD, tool), '--url', gw.url, '--token', 'wrong'] + args,
                               capture_output=True, text=True, timeout=60)
            if p.returncode != 1:
                fail('%s %s with a wrong token: exit %d, want 1 like clawpair-conformance' % (tool, args, p.returncode))
        # a swarm nobody approves has no latency to show: "no approvals", not "p50 0 ms"
        node = os.path.join(BUILD, 'fake-node', 'clawpair-fake-node')
        p = subprocess.run([node, '--url', gw.url, '--token', TOKEN, '--count', '200', '--once',
                            '--xff', 'auto', '--timeout', '60'], capture_output=True, text=True, timeout=120)
        if p.returncode != 0 or 'pending 200' not in p.stdout or 'no approvals' not in p.stdout \
                or 'p50 0 ms' in p.stdout:
            fail('fake-node --count 200 --once, nobody approving: exit %d, %s' % (p.returncode, p.stdout))
        p = subprocess.run([node, '--url', gw.url, '--token', TOKEN, '--count', '3', '--once', '--json',
                            '--xff', 'auto', '--timeout', '60'], capture_output=True, text=True, timeout=120)
        summ = [json.loads(l) for l in p.stdout.splitlines() if '"summary"' in l]
        if p.returncode != 0 or not summ or summ[0].get('samples') != 0 or summ[0].get('p50Ms') is not None:
            fail('fake-node --count --json, nobody approving: %s' % p.stdout)
        # a report path that cannot be written is found before the run, not after it
        for opt, path in (('--junit', '/nonexistent/x.xml'), ('--html', gw.dir), ('--json', '/proc/x.json')):
            t0 = time.time()
            rc, so, se = run(['--url', gw.url, '--token', TOKEN, opt, path])
            if rc != 2 or ('cannot write %s %s' % (opt, path)) not in se or '[  1/' in so \
                    or time.time() - t0 > 5:
                fail('%s %s: exit %d, %r %r' % (opt, path, rc, so[-200:], se))
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--json', gw.dir + '/a', '--html', gw.dir + '/a'])
        if rc != 2 or 'both write' not in se:
            fail('one path for two reports: exit %d, %r' % (rc, se))
        broken_cases(gw)
        commented_case(gw)
        # a listed case that passes: the file is stale; the console and JUnit say so, exit 1
        exp = os.path.join(gw.dir, 'exp.tsv')
        store4 = [c['id'] for _, c in load_cases() if c['id'].startswith('store/STORE-4/')]
        with open(exp, 'w') as f:
            f.write('# known failures\n\n%s\tpretend this one is broken\n' % store4[0])
        xml = os.path.join(gw.dir, 'stale.xml')
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases', 'store/STORE-4',
                          '--expectations', exp, '--timeout-scale', SCALE, '--junit', xml])
        junit = open(xml, encoding='utf-8').read()
        line = re.search(r'^\[\s*\d+/\d+\] PASS +%s .*\n +(.*)$' % re.escape(store4[0]), so, re.M)
        if rc != 1 or not line or 'listed as a known failure but passed (pretend this one is broken)' not in line.group(1) \
                or '<failure type="XPASS" message="listed as a known failure but passed' not in junit:
            fail('a stale expectation: exit %d %s %s' % (rc, so, junit[:600]))
        # a pattern is stale when every case it names passed
        with open(exp, 'w') as f:
            f.write('store/STORE-4/*\tpretend these are broken\n')
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases', 'store/STORE-4',
                          '--expectations', exp, '--timeout-scale', SCALE])
        if rc != 1 or "listed as a known failure ('store/STORE-4/*': pretend these are broken) but every case it names passed" not in so:
            fail('a stale pattern: exit %d %s' % (rc, so))
        # a misspelled id matches no case: exit 2 before the run
        with open(exp, 'a') as f:
            f.write('store/STORE-4/no-such-case\tmisspelled\n')
        rc, so, se = run(['--url', gw.url, '--token', TOKEN, '--cases', 'store/STORE-4',
                          '--expectations', exp])
        if rc != 2 or not re.search(r"exp.tsv:\d+: 'store/STORE-4/no-such-case' matches no case", se) or '[  1/' in so:
            fail('a misspelled expectation: exit %d %r %r' % (rc, so[-200:], se))
    finally:
        gw.cleanup()
    selection()
    fail_fast_and_timeout()
    print('ok: --list, selection, bad usage, unreachable, wrong token, expectations, --fail-fast, --case-timeout')


def mode_html():
    chromium = shutil.which('chromium') or ('/usr/bin/chromium' if os.path.exists('/usr/bin/chromium') else None)
    if not chromium:
        print('SKIP: no chromium')
        sys.exit(77)
    gw = Gateway(['--compat-6836']).start()
    prof = tempfile.mkdtemp(prefix='cp-chromium-')
    try:
        exp = os.path.join(gw.dir, 'exp.tsv')
        with open(exp, 'w') as f:
            f.write('hold/HOLD-1/no-close-while-pending\tcloses 1008 here\n')
        rc, so, se, rep, out = run_against(gw, ['--cases', 'hold', '--cases', 'store',
                                                '--cases', 'robust/ROBUST-1/not-json',
                                                '--expectations', exp], 'html')
        html = out + '/r.html'
        src = open(html, encoding='utf-8').read()
        if 'http://' in src.replace('http-equiv', '') or 'https://' in src or '<link' in src:
            fail('the HTML report references the network')
        p = subprocess.run([chromium, '--headless', '--no-sandbox', '--disable-gpu',
                            '--disable-background-networking', '--disable-component-update',
                            '--disable-sync', '--no-first-run', '--user-data-dir=' + prof,
                            '--dump-dom', 'file://' + html],
                           capture_output=True, text=True, timeout=120)
        dom = p.stdout
        if p.returncode != 0 or '<table id="cases"' not in dom:
            fail('chromium: exit %d: %s' % (p.returncode, p.stderr[-500:]))
        for v, cnt in rep['summary'].items():
            if v == 'total':
                continue
            m = re.search(r'id="count-%s"[^>]*><b class="n">(\d+)</b>' % re.escape(v), dom)
            if not m or int(m.group(1)) != cnt:
                fail('rendered count for %s: %s, JSON says %d' % (v, m and m.group(1), cnt))
        row = re.search(r'<tr class="case" data-verdict="FAIL" id="hold/HOLD-[0-9]+/[^"]+">.*?</tr>', dom, re.S)
        if not row or 'OpenClaw #6836' not in row.group(0):
            fail('no rendered failure row with the diagnosis')
        chips = re.findall(r'<button type="button" class="count" data-verdict="[^"]+" id="count-[^"]+" aria-pressed="true"', dom)
        if len(chips) != len(rep['summary']) - 1:
            fail('%d filter buttons for %d verdicts' % (len(chips), len(rep['summary']) - 1))
        xf = re.search(r'<tr class="case" data-verdict="XFAIL" id="hold/HOLD-1/no-close-while-pending">.*?</tr>', dom, re.S)
        if not xf or 'Known failure: closes 1008 here' not in xf.group(0):
            fail('the known-failure reason is not in the XFAIL row')
        if '<details open="">' not in dom and '<details open>' not in dom:
            fail('failures are not expanded')
        # frames hold JSON with quotes: they must come back as text, not markup
        if '&lt;' not in src and '&quot;' not in src:
            fail('nothing was escaped in the HTML')
        if re.search(r'<pre class="frames">[^<]*"type":"req"', dom) is None:
            fail('frames are not rendered as text')
        print('ok: chromium rendered %d cases, counts and the failure row match' % len(rep['cases']))
    finally:
        shutil.rmtree(prof, ignore_errors=True)
        gw.cleanup()


SECRET_MEMBER = re.compile(r'"(token|deviceToken|bootstrapToken|password)"\s*:\s*"([^"]*)"')


def report_texts(out, console):
    """Every text a run leaves behind, with the JSON strings and the markup decoded."""
    import html as htmlmod
    texts = {'console': console}
    with open(out + '/r.json', encoding='utf-8') as f:
        raw = f.read()
    texts['json'] = raw
    strings = []

    def walk(v):
        if isinstance(v, str):
            strings.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
    walk(json.loads(raw))
    texts['json strings'] = '\n'.join(strings)
    for ext in ('xml', 'html'):
        with open(out + '/r.' + ext, encoding='utf-8') as f:
            texts[ext] = htmlmod.unescape(f.read())
    return texts


def state_tokens(gw):
    """The device tokens the gateway issued and still holds."""
    out = []
    for path in glob.glob(os.path.join(gw.state, 'paired', '*.json')):
        with open(path, encoding='utf-8') as f:
            rec = json.load(f)
        for tok in (rec.get('tokens') or {}).values():
            if tok.get('token'):
                out.append(tok['token'])
    return out


def check_redacted(texts, secrets):
    members = 0
    for name, text in texts.items():
        for s in secrets:
            if s in text:
                fail('%s shows a secret %s...' % (name, s[:6]))
        for m in SECRET_MEMBER.finditer(text):
            members += 1
            if m.group(2) not in ('', '<redacted>'):
                fail('%s: %s is %r, not "<redacted>"' % (name, m.group(1), m.group(2)))
    return members


def mode_secrets():
    """No report and no console line shows the shared token or a device token, unless
    --show-secrets asks for them."""
    token_cases = ['--cases', 'hold', '--cases', 'events', '--cases', 'trust', '--cases', 'recon',
                   '--cases', 'handshake/WIRE-11']
    total = 0
    for extra, flags in ((['--compat-6836'], ['-v']), ([], ['--all-frames', '-v'])):
        gw = Gateway(extra).start()
        try:
            rc, so, se, rep, out = run_against(gw, token_cases + flags, 'secrets')
            tokens = state_tokens(gw)
            if not tokens:
                fail('no device token was issued: nothing to look for')
            total += check_redacted(report_texts(out, so + se), [TOKEN] + tokens)
        finally:
            gw.cleanup()
    if total < 20:
        fail('only %d token members in the reports: the check saw nothing' % total)
    gw = Gateway().start()
    try:
        rc, so, se, rep, out = run_against(gw, ['--cases', 'hold/HOLD-3', '--all-frames',
                                                '--show-secrets'], 'shown')
        texts = report_texts(out, so)
        if TOKEN not in texts['json strings'] or not any(t in texts['json strings'] for t in state_tokens(gw)):
            fail('--show-secrets: the token and the device tokens should be in the report')
    finally:
        gw.cleanup()
    print('ok: %d token members, each "<redacted>"; no token in the console, JSON, JUnit, HTML' % total)


def gone_run(jobs):
    gw = Gateway().start()
    try:
        out = os.path.join(gw.dir, 'gone')
        os.makedirs(out)
        p = subprocess.Popen([RUNNER, '--url', gw.url, '--token', TOKEN, '--timeout-scale', SCALE,
                              '--jobs', jobs, '--json', out + '/r.json', '--junit', out + '/r.xml'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors='replace')
        time.sleep(2)
        gw.proc.kill()
        gw.proc.wait()
        so, se = p.communicate(timeout=300)
        with open(out + '/r.json', encoding='utf-8') as f:
            rep = json.load(f)
    finally:
        gw.cleanup()
    m = re.search(r'gateway went away during (\S+): ', se)
    if p.returncode != 2 or not m:
        fail('--jobs %s: exit %d, want 2 and "gateway went away during <case>": %r' % (jobs, p.returncode, se[-500:]))
    during = m.group(1)
    fails = [l for l in so.splitlines() if re.match(r'^\[\s*\d+/\d+\] (FAIL|NON-STRICT)', l)]
    if fails:
        fail('--jobs %s: %d cases judged after the gateway died, e.g. %s' % (jobs, len(fails), fails[0]))
    if '#6836' in so:
        fail('a dead gateway was diagnosed as #6836')
    verdicts = [c['verdict'] for c in rep['cases']]
    ids = [c['id'] for c in rep['cases']]
    k = ids.index(during)
    if verdicts[k] != 'NOT-RUN' or verdicts.count('NOT-RUN') < 50 or 'FAIL' in verdicts:
        fail('--jobs %s: %s is %s; %s' % (jobs, during, verdicts[k], verdicts))
    if jobs == '1' and (set(verdicts[k:]) != {'NOT-RUN'} or 'NOT-RUN' in verdicts[:k]):
        fail('want NOT-RUN from %s on: %s' % (during, verdicts))
    if rep['exit_status'] != 2 or len(rep['cases']) != rep['summary']['total']:
        fail('report: exit_status %s, %d cases' % (rep['exit_status'], len(rep['cases'])))
    if 'Verdict: STOPPED: the gateway went away during ' + during not in so:
        fail('no STOPPED verdict line: %s' % so[-400:])
    return during, verdicts.count('NOT-RUN')


def mode_gone():
    """The gateway killed during a run: the runner stops with one line that names the case,
    marks the rest NOT-RUN, judges nothing after it and exits 2 (cases one by one, and side by
    side)."""
    for jobs in ('1', '8'):
        during, n = gone_run(jobs)
        print('ok: --jobs %s: the gateway went away during %s; %d cases NOT-RUN, exit 2' % (jobs, during, n))


def install_moved(top):
    """meson install of the build tree into a DESTDIR under top, then moved to top/moved, where
    no path compiled into the binaries points. Returns that path (tests/install uses it too)."""
    meson = shutil.which('meson')
    if not meson:
        print('SKIP: no meson')
        sys.exit(77)
    dest = os.path.join(top, 'dest')
    p = subprocess.run([meson, 'install', '-C', BUILD, '--destdir', dest, '--no-rebuild', '--quiet'],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        fail('meson install: %s %s' % (p.stdout[-500:], p.stderr[-500:]))
    moved = os.path.join(top, 'moved')
    os.rename(dest, moved)
    return moved


def mode_install():
    """meson install into a DESTDIR, the tree moved elsewhere: the runner lists the installed
    cases (not the source tree's), with no environment variable to help it."""
    top = tempfile.mkdtemp(prefix='cp-install-')
    try:
        moved = install_moved(top)
        runners = glob.glob(os.path.join(moved, '**', 'bin', 'clawpair-conformance'), recursive=True)
        cases = glob.glob(os.path.join(moved, '**', 'share', 'clawpair', 'conformance', 'cases'), recursive=True)
        if len(runners) != 1 or len(cases) != 1:
            fail('installed runner %s, cases %s' % (runners, cases))
        # keep one group, so that the count tells the installed cases from the source tree's
        for g in os.listdir(cases[0]):
            if g != 'hold':
                shutil.rmtree(os.path.join(cases[0], g))
        want = len(glob.glob(os.path.join(cases[0], 'hold', '*.json')))
        env = dict(os.environ)
        env.pop('CLAWPAIR_CASES_DIR', None)
        p = subprocess.run([runners[0], '--list'], capture_output=True, text=True, env=env, timeout=60)
        m = re.search(r'^(\d+) cases$', p.stdout, re.M)
        if p.returncode != 0 or not m or int(m.group(1)) != want:
            fail('installed --list: exit %d, %s %s (want %d cases)' % (p.returncode, p.stdout[-200:], p.stderr, want))
        p = subprocess.run([runners[0], '--list', '--section', '8.3'], capture_output=True, text=True, env=env, timeout=60)
        if p.returncode != 0 or 'hold/HOLD-1/' not in p.stdout:
            fail('installed --list --section 8.3: exit %d, %s %s' % (p.returncode, p.stdout[-200:], p.stderr))
        # the installed CI script finds the installed runner (PATH does not have it)
        scripts = glob.glob(os.path.join(moved, '**', 'share', 'clawpair', 'conformance', 'ci', 'run-suite.sh'),
                            recursive=True)
        env2 = dict(env, CLAWPAIR_TOKEN='x', PATH='/usr/bin:/bin')
        env2.pop('CLAWPAIR_CONFORMANCE', None)
        p = subprocess.run(scripts[:1] + ['--url', 'ws://127.0.0.1:1', '--out', os.path.join(top, 'r')],
                           capture_output=True, text=True, env=env2, timeout=60) if scripts else None
        if not p or p.returncode != 2 or 'cannot reach' not in p.stdout:
            fail('installed run-suite.sh: %s' % (p and (p.returncode, p.stdout[-300:], p.stderr[-300:])))
        print('ok: the installed runner, moved to %s, lists its %d installed cases' % (moved, want))
    finally:
        shutil.rmtree(top, ignore_errors=True)


def own_address():
    """This machine's own non-loopback IPv4 address (traffic to it stays on the machine)."""
    p = subprocess.run(['ip', '-4', '-o', 'addr', 'show', 'scope', 'global'], capture_output=True, text=True)
    m = re.search(r'inet (\d+\.\d+\.\d+\.\d+)/', p.stdout)
    return m.group(1) if m else None


def mode_offhost():
    """A gateway on a non-loopback address, as a runner on another host sees it: the runner says
    at start that its clients are not local, SKIPs the cases that need a local client with the
    reason, and fails nothing."""
    addr = own_address()
    if not addr:
        print('SKIP: no non-loopback address')
        sys.exit(77)
    gw = Gateway([], host=addr).start()
    try:
        rc, so, se, rep, _ = run_against(gw, ['--pending-ttl-ms', TTL_MS], 'offhost')
    finally:
        gw.cleanup()
    why, local, passed = offhost_check(rc, so, rep)
    if why:
        fail(why)
    print('ok: off the loopback: %d cases SKIP ("needs a local client"), %d remote-only cases PASS'
          % (local, passed))


def offhost_check(rc, so, rep):
    """A run whose clients are not local to the gateway (tests/install uses it too): the runner
    says so at start, SKIPs the local cases with the reason and fails nothing. Returns (what is
    wrong or None, local cases skipped, cases passed)."""
    bad = [c for c in rep['cases'] if c['verdict'] not in ('PASS', 'SKIP')]
    local = [c for c in rep['cases'] if c['verdict'] == 'SKIP' and 'needs a local client' in (c['message'] or '')]
    passed = [c['id'] for c in rep['cases'] if c['verdict'] == 'PASS']
    why = None
    if "the runner's connections are not local to the gateway" not in so:
        why = 'no word at start that the runner is not local: %s' % so[:600]
    elif rc != 0 or bad:
        why = 'exit %d; %s' % (rc, ['%s %s: %s' % (c['verdict'], c['id'], c['message']) for c in bad][:5])
    elif len(local) < 100 or not passed or not any(i.startswith('handshake/WIRE-9/') for i in passed):
        why = '%d local cases SKIPped, %d passed' % (len(local), len(passed))
    return why, len(local), len(passed)


def mode_parallel():
    """--jobs 8 gives the verdicts --jobs 1 gives, case by case, each run against a fresh
    reference gateway; and it is faster."""
    got = {}
    secs = {}
    for jobs in ('1', '8'):
        gw = Gateway().start()
        try:
            t0 = time.time()
            rc, so, se, rep, _ = run_against(gw, ['--pending-ttl-ms', TTL_MS, '--jobs', jobs, '--quiet'],
                                             'jobs' + jobs)
            secs[jobs] = time.time() - t0
            got[jobs] = {c['id']: c['verdict'] for c in rep['cases']}
            if rc != 0:
                print(so[-2000:])
                fail('--jobs %s: exit %d' % (jobs, rc))
        finally:
            gw.cleanup()
    diff = sorted(i for i in got['1'] if got['1'][i] != got['8'].get(i))
    if diff or set(got['1']) != set(got['8']):
        fail('--jobs 8 and --jobs 1 disagree: %s' % ['%s %s/%s' % (i, got['1'][i], got['8'].get(i)) for i in diff])
    if secs['8'] * 2 > secs['1']:
        fail('--jobs 8 took %.1f s, --jobs 1 %.1f s' % (secs['8'], secs['1']))
    print('ok: %d cases, the same verdicts; --jobs 1 %.1f s, --jobs 8 %.1f s'
          % (len(got['1']), secs['1'], secs['8']))


def mode_schema():
    """conformance/schema/: every case file, and the JSON reports of runs with every verdict,
    follow their schemas (checked by schema_lite.py, the subset of JSON Schema they use)."""
    import copy
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import schema_lite
    sdir = os.path.join(SOURCE, 'conformance', 'schema')
    case_s, report_s, list_s = (json.load(open(os.path.join(sdir, n), encoding='utf-8'))
                                for n in ('case.schema.json', 'report.schema.json', 'list.schema.json'))
    n = 0
    for path, c in load_cases():
        e = schema_lite.errors(case_s, c)
        if e:
            fail('%s: %s' % (path, e[:3]))
        n += 1
    bad = copy.deepcopy(load_cases()[0][1])
    bad['steps'][0]['bogus'] = 1
    bad['level'] = 'MIGHT'
    if len(schema_lite.errors(case_s, bad)) < 2:
        fail('the case schema takes an unknown step key and level MIGHT')
    verdicts = set()
    gw = Gateway(['--compat-6836']).start()
    try:
        exp = os.path.join(gw.dir, 'exp.tsv')
        with open(exp, 'w') as f:
            f.write('hold/HOLD-1/no-close-while-pending\tcloses 1008\nhandshake/WIRE-13/hello-ok-shape\tpretend\n')
        reports = []
        for tag, args in (('s1', ['--cases', 'hold', '--cases', 'handshake/WIRE-13/hello-ok-shape', '--cases', 'robust/ROBUST-1/not-json',
                                  '--expectations', exp, '--all-frames']),
                          ('s2', ['--cases', 'hold', '--fail-fast', '--jobs', '1']),
                          ('s3', ['--cases', 'handshake/WIRE-2', '--cases-dir', os.path.join(gw.dir, 'broken')])):
            if tag == 's3':
                broken_cases_dir(os.path.join(gw.dir, 'broken'))
            rc, so, se, rep, out = run_against(gw, args, tag)
            reports.append(rep)
        rc, so, se = run(['--list', '--json', os.path.join(gw.dir, 'list.json')])
        lst = json.load(open(os.path.join(gw.dir, 'list.json'), encoding='utf-8'))
    finally:
        gw.cleanup()
    for rep in reports:
        e = schema_lite.errors(report_s, rep)
        if e:
            fail('JSON report: %s' % e[:5])
        verdicts |= {c['verdict'] for c in rep['cases']}
        if any(c.get('expectation_stale') for c in rep['cases']):
            verdicts.add('stale')
    want = {'PASS', 'FAIL', 'XFAIL', 'ERROR', 'NOT-RUN', 'stale'}
    if not want <= verdicts:
        fail('the runs showed %s, not all of %s' % (sorted(verdicts), sorted(want)))
    e = schema_lite.errors(list_s, lst)
    if e or lst['total'] != n:
        fail('--list --json: %s' % e[:5])
    broken = copy.deepcopy(reports[0])
    del broken['formatVersion']
    broken['cases'][0]['verdict'] = 'MAYBE'
    broken['cases'][0]['extra'] = 1
    if len(schema_lite.errors(report_s, broken)) < 3:
        fail('the report schema takes a report without formatVersion, verdict MAYBE, an unknown key')
    print('ok: %d case files, %d reports (%s), the list: all follow conformance/schema/'
          % (n, len(reports), ', '.join(sorted(verdicts))))


def mode_ci():
    """conformance/ci/run-suite.sh against the reference gateway: the token from the
    environment (never on a command line), JUnit, HTML, JSON and the console out, the runner's
    exit status; and its refusals."""
    script = os.path.join(SOURCE, 'conformance', 'ci', 'run-suite.sh')
    env = dict(os.environ, CLAWPAIR_TOKEN=TOKEN, CLAWPAIR_CONFORMANCE=RUNNER)
    env.pop('GITHUB_STEP_SUMMARY', None)

    def suite(args, extra_env=None, gw_dir=None):
        e = dict(env, **(extra_env or {}))
        return subprocess.run(['sh', script] + args, capture_output=True, text=True, env=e, timeout=600,
                              cwd=gw_dir)
    gw = Gateway().start()
    try:
        out = os.path.join(gw.dir, 'ci')
        summary = os.path.join(gw.dir, 'summary.md')
        p = suite(['--url', gw.url, '--out', out, '--', '--pending-ttl-ms', TTL_MS, '--timeout-scale', SCALE],
                  {'GITHUB_STEP_SUMMARY': summary})
        if p.returncode != 0 or 'Verdict: PASSED' not in p.stdout:
            fail('run-suite.sh against the reference gateway: exit %d %s %s' % (p.returncode, p.stdout[-500:], p.stderr))
        rep = json.load(open(out + '/report.json', encoding='utf-8'))
        check_junit(out + '/junit.xml', rep)
        html = open(out + '/report.html', encoding='utf-8').read()
        console = open(out + '/console.txt', encoding='utf-8').read()
        if rep['exit_status'] != 0 or '<table id="cases"' not in html or 'Summary: ' not in console:
            fail('run-suite.sh reports: %s' % os.listdir(out))
        for name in ('junit.xml', 'report.html', 'report.json', 'console.txt'):
            if TOKEN in open(os.path.join(out, name), encoding='utf-8').read():
                fail('run-suite.sh: the token is in %s' % name)
        if 'Verdict: PASSED' not in open(summary, encoding='utf-8').read():
            fail('no GitHub step summary')
        # a token file instead of the environment, the runner's status passed on
        tf = os.path.join(gw.dir, 'token')
        with open(tf, 'w') as f:
            f.write(TOKEN + '\n')
        exp = os.path.join(gw.dir, 'stale.tsv')
        with open(exp, 'w') as f:
            f.write('handshake/WIRE-2\tnot really\n')
        p = suite(['--url', gw.url, '--token-file', tf, '--out', out, '--expectations', exp,
                   '--', '--cases', 'handshake/WIRE-2'], {'CLAWPAIR_TOKEN': ''})
        if p.returncode != 1 or 'listed as a known failure' not in p.stdout:
            fail('run-suite.sh with a stale expectation: exit %d %s' % (p.returncode, p.stdout[-400:]))
        p = suite(['--url', gw.url, '--out', out, '--', '--cases', 'handshake/WIRE-2'], {'CLAWPAIR_TOKEN': 'wrong'})
        if p.returncode != 1:
            fail('run-suite.sh with a wrong token: exit %d' % p.returncode)
    finally:
        gw.cleanup()
    for args, extra, why in ((['--out', out], {}, 'no gateway'),
                             (['--url', 'ws://127.0.0.1:1', '--out', out], {'CLAWPAIR_TOKEN': ''}, 'no token'),
                             (['--url', 'ws://127.0.0.1:1', '--out', out], {}, 'unreachable'),
                             (['--bogus'], {}, 'a bad option')):
        p = suite(args, extra)
        if p.returncode != 2:
            fail('run-suite.sh, %s: exit %d, want 2: %s' % (why, p.returncode, p.stderr[-300:]))
    print('ok: run-suite.sh: JUnit, HTML, JSON, console and step summary; exit 0, 1 (stale, wrong token), 2')


# (requirement or case pattern, badnode.py --break, the verdict each selected case must get,
#  a word its message must carry): each client case shown able to fail
CLIENT_BREAKS = (
    ('CLIENT-1', 'nonce', 'FAIL', 'the challenge of its connection'),
    ('CLIENT-2', 'signature', 'FAIL', 'verifies over neither'),
    ('CLIENT-3', 'device-id', 'FAIL', 'is not the SHA-256'),
    ('CLIENT-4', 'new-key', 'FAIL', 'different device keys'),
    ('CLIENT-5', 'close-pending', 'NON-STRICT', 'held the pending connect'),
    ('CLIENT-6', 'reconnect-on-hello', 'FAIL', 'hello-ok'),
    ('CLIENT-15', 'close-pending', 'FAIL', 'reconnect'),
    ('CLIENT-7', 'no-token', 'NON-STRICT', 'not the device token'),
    ('CLIENT-8', 'exit-on-close', 'FAIL', 'no reconnect'),
    ('CLIENT-9', 'fast-retry', 'NON-STRICT', 'under 250 ms'),
    ('CLIENT-10', 'no-jitter', 'NON-STRICT', 'within 10 %'),
    ('CLIENT-11', 'reconnect-always', 'FAIL', 'reconnected'),
    ('CLIENT-12', 'reconnect-always', 'FAIL', 'reconnected'),
    ('CLIENT-13', 'tick-impatient', 'FAIL', 'under two tickIntervalMs'),
    ('CLIENT-14', 'crash-on-garbage', 'FAIL', 'signal 11'),
    ('CLIENT-14', 'leak-token', 'FAIL', 'the shared token'),
)


# The fake node's profiles other than the default, with the --hold-ms and options their
# expectations files (conformance/expectations/client-PROFILE.txt) were written with.
CLIENT_PROFILES = [('android', '1000', ''), ('node-host-2026.1.30', '1000', ''),
                   ('node-host-2026.9.6', '3000', ' --hello-timeout 2'), ('openclaw-node-0.14', '1000', '')]


def mode_client():
    """clawpair-conformance client, the runner playing the gateway: the stock fake node (profile
    'reference') passes every client case, with JSON (report schema), JUnit and HTML reports free
    of the token; each other profile of the fake node fails exactly the cases its expectations
    file lists (XFAIL, exit 0: the measured behaviour of the client it models); badnode.py passes
    the 4408 and jitter cases; and each case FAILs (NON-STRICT for a SHOULD) against badnode.py
    breaking its requirement. The runs go four at a time (they mostly wait); about 40 s."""
    import concurrent.futures
    import xml.etree.ElementTree as ET
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import schema_lite
    try:
        import cryptography  # noqa: F401  (badnode.py signs with it)
        have_crypto = True
    except ImportError:
        have_crypto = False
    fake = os.path.join(BUILD, 'fake-node', 'clawpair-fake-node')
    bad = '%s %s --url {url} --token-file {token_file} --state-dir {state_dir}' % (
        sys.executable, os.path.join(SOURCE, 'tests', 'conformance', 'badnode.py'))
    expect = os.path.join(SOURCE, 'conformance', 'expectations', 'client-fake-node.txt')
    d = tempfile.mkdtemp(prefix='cp-client-mode-')
    common = ['client', '--hold-ms', '1000', '--token', TOKEN, '--timeout-scale', SCALE]

    def client(args, tag):
        out = os.path.join(d, tag)
        os.makedirs(out)
        p = subprocess.run([RUNNER] + common + ['--json', out + '/r.json'] + args, capture_output=True,
                           text=True, errors='replace', timeout=300)
        rep = json.load(open(out + '/r.json', encoding='utf-8')) if os.path.exists(out + '/r.json') else None
        return p.returncode, p.stdout, p.stderr, rep, out

    try:
        rc, so, se = run(['client', '--list'])
        listed = [l.split()[0] for l in so.splitlines() if '/CLIENT-' in l]
        reqs = {l.split('\t')[0] for l in open(os.path.join(SOURCE, 'spec', 'requirements.tsv'))
                if l.startswith('CLIENT-')}
        if rc != 0 or {c.split('/')[1] for c in listed} != reqs:
            fail('client --list: exit %d, cases for %s, requirements %s' % (rc, listed, sorted(reqs)))
        cschema = json.load(open(os.path.join(SOURCE, 'conformance', 'schema', 'client-case.schema.json'),
                                 encoding='utf-8'))
        cfiles = sorted(glob.glob(os.path.join(SOURCE, 'conformance', 'client-cases', '*', '*.json')))
        for path in cfiles:
            e = schema_lite.errors(cschema, json.load(open(path, encoding='utf-8')))
            if e:
                fail('%s: %s' % (path, e[:3]))
        broken = json.load(open(cfiles[0], encoding='utf-8'))
        broken['steps'][0]['answer'] = 'later'
        if not schema_lite.errors(cschema, broken):
            fail('client-case.schema.json takes answer "later"')
        rc, so, se = run(['client', '--exec', 'node {nope}'])
        if rc != 2 or '{nope}' not in se:
            fail('client --exec with an unknown placeholder: exit %d %s' % (rc, se))
        jobs = {'fake-node': (['--expectations', expect, '--junit', '%s/fake-node/r.xml' % d,
                               '--html', '%s/fake-node/r.html' % d, '--exec',
                               fake + ' --url {url} --token-file {token_file} --identity {state_dir}/id.json'],
                              'fake-node')}
        for prof, hold, extra in CLIENT_PROFILES:
            pexp = os.path.join(SOURCE, 'conformance', 'expectations', 'client-%s.txt' % prof)
            ids = [l.split('\t')[0] for l in open(pexp, encoding='utf-8') if l.strip() and not l.startswith('#')]
            args = ['--hold-ms', hold, '--expectations', pexp]
            for i in ids:
                args += ['--cases', i]
            jobs['profile ' + prof] = (args + ['--exec', '%s --profile %s%s --url {url} --token-file {token_file} '
                                               '--identity {state_dir}/id.json' % (fake, prof, extra)],
                                       'profile-' + prof)
        if have_crypto:
            jobs['badnode'] = (['--cases', 'recon/CLIENT-8/reconnect-after-4408', '--cases', 'CLIENT-10',
                                '--exec', bad], 'badnode')
            for i, (pat, br, _v, _w) in enumerate(CLIENT_BREAKS):
                jobs['break-%d' % i] = (['--strict', '--cases', pat, '--exec', bad + ' --break ' + br],
                                      'break-%d' % i)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
            res = {k: ex.submit(client, *v) for k, v in jobs.items()}
            res = {k: f.result() for k, f in res.items()}
        rc, so, se, rep, out = res['fake-node']
        got = {c['id']: c['verdict'] for c in rep['cases']}
        xfail = sorted(k for k, v in got.items() if v == 'XFAIL')
        others = sorted(k for k, v in got.items() if v not in ('PASS', 'XFAIL'))
        if rc != 0 or len(got) != len(listed) or others or xfail:
            fail('stock fake node: exit %d, XFAIL %s, other %s\n%s%s' % (rc, xfail, others, so[-2000:], se[-500:]))
        for prof, _hold, _extra in CLIENT_PROFILES:
            prc, pso, pse, prep, _ = res['profile ' + prof]
            pv = sorted(set(c['verdict'] for c in (prep or {}).get('cases', [])))
            if prc != 0 or pv != ['XFAIL']:
                fail('profile %s: exit %d, verdicts %s (want every listed case XFAIL)\n%s%s'
                     % (prof, prc, pv, pso[-1500:], pse[-300:]))
        schema = json.load(open(os.path.join(SOURCE, 'conformance', 'schema', 'report.schema.json'), encoding='utf-8'))
        e = schema_lite.errors(schema, rep)
        if e:
            fail('client-mode JSON report against report.schema.json: %s' % e[:3])
        root = ET.parse(out + '/r.xml').getroot()
        if sum(len(ts.findall('testcase')) for ts in root.findall('testsuite')) != len(got):
            fail('client-mode JUnit: not one testcase per case')
        html = open(out + '/r.html', encoding='utf-8').read()
        if 'recon/CLIENT-10/jitter' not in html:
            fail('client-mode HTML lacks the cases')
        for name in ('r.json', 'r.xml', 'r.html'):
            if TOKEN in open(os.path.join(out, name), encoding='utf-8').read():
                fail('client mode: the token is in %s' % name)
        if not have_crypto:
            print('ok: fake node (badnode.py not run: no python3 cryptography package)')
            return
        rc, so, se, rep, out = res['badnode']
        if rc != 0 or [c['verdict'] for c in rep['cases']] != ['PASS', 'PASS']:
            fail('badnode.py on the fake node\'s two known failures: exit %d\n%s' % (rc, so[-1500:]))
        for i, (pat, br, want, word) in enumerate(CLIENT_BREAKS):
            rc, so, se, rep, out = res['break-%d' % i]
            bad_cases = [c for c in rep['cases'] if c['verdict'] != want or word not in (c['message'] or '')]
            if rc != 1 or not rep['cases'] or bad_cases:
                fail('--break %s: %s cases should be %s saying %r: exit %d %s' % (
                    br, pat, want, word, rc, [(c['id'], c['verdict'], c['message']) for c in bad_cases]))
        print('ok: client mode: the fake node passes %d cases (2 XFAIL as listed), badnode.py passes '
              'those 2, and %d breaks each fail their cases' % (len(got) - 2, len(CLIENT_BREAKS)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    if not os.path.exists(RUNNER):
        print('SKIP: %s not built' % RUNNER)
        sys.exit(77)
    mode = sys.argv[1]
    {'reference': mode_reference, 'compat': mode_compat, 'extras': mode_extras, 'tls': mode_tls,
     'coverage': mode_coverage, 'lint': mode_lint, 'cli': mode_cli, 'html': mode_html,
     'secrets': mode_secrets, 'gone': mode_gone,
     'install': mode_install, 'offhost': mode_offhost, 'parallel': mode_parallel,
     'schema': mode_schema, 'ci': mode_ci, 'client': mode_client}[mode]()


if __name__ == '__main__':
    main()
