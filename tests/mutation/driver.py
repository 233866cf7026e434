#!/usr/bin/env python3
"""driver.py: the mutation test of the conformance suite. For each mutant of mutants.py (a single
violation of spec/pairing.md) it runs the reference gateway behind wsproxy.py applying that
mutant, and clawpair-conformance with only the cases that cite the mutant's requirement; the
mutant is caught (killed) when one of those cases FAILs. The un-mutated proxy must pass every
case first, so a kill is the mutant's doing.

Usage: driver.py [--jobs N] [--only NAME[,NAME...]] [--markdown FILE] [--json FILE] [--list]
Needs CLAWPAIR_BUILD_ROOT and CLAWPAIR_SOURCE_ROOT (meson's test_env). Exit status 0 when the
baseline passes and every mutant not marked alive is killed, 1 otherwise, 77 when not built.
"""
import argparse
import concurrent.futures
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, HERE)
import mutants  # noqa: E402
import restart as restart_cmd  # noqa: E402

BUILD = os.environ.get('CLAWPAIR_BUILD_ROOT', '')
SOURCE = os.environ.get('CLAWPAIR_SOURCE_ROOT', os.path.dirname(os.path.dirname(HERE)))
GATEWAY = os.path.join(BUILD, 'server', 'clawpair-gateway')
RUNNER = os.path.join(BUILD, 'conformance', 'clawpair-conformance')
CASES = os.path.join(SOURCE, 'conformance', 'cases')
TOKEN = 'mutation-test-token'
TICK_REQS = ('WIRE-16', 'HOLD-2')
# gateway options and runner options of each setup
SETUPS = {
    'ticks': (['--tick-interval', '1000'], ['--tick-interval-ms', '1000']),
    'max-pending-2': (['--max-pending', '2'], ['--max-pending', '2']),
}


def cases_by_requirement():
    """{requirement: sorted case ids} from the case files."""
    out = {}
    for path in glob.glob(os.path.join(CASES, '*', '*.json')):
        with open(path, encoding='utf-8') as f:
            c = json.load(f)
        out.setdefault(c['requirement'], []).append(c['id'])
    return dict((k, sorted(v)) for k, v in out.items())


def patterns_for(req, by_req):
    return sorted(set('%s/%s/*' % (cid.split('/')[0], req) for cid in by_req.get(req, [])))


def setups_for(req, mutant=None):
    s = set(getattr(mutant, 'config', ()) or ())
    if req in TICK_REQS:
        s.add('ticks')
    if req == 'LIMIT-3':
        s.add('max-pending-2')
    return sorted(s)


def wait_line(path, proc, what, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        with open(path, encoding='utf-8', errors='replace') as f:
            for line in f:
                if line.startswith('listening on ws://'):
                    return line.split()[-1]
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    raise RuntimeError('%s did not start (see %s)' % (what, path))


def stop(proc):
    """Stops a child process (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_job(name, mutant_name, patterns, setups, keep=False):
    """Gateway + proxy + runner on patterns (all cases when empty). Returns the report dict."""
    d = tempfile.mkdtemp(prefix='cp-mut-')
    state = os.path.join(d, 'state')
    gw_extra, run_extra = [], []
    for s in setups:
        gw_extra += SETUPS[s][0]
        run_extra += SETUPS[s][1]
    base = [GATEWAY, '--token', TOKEN, '--state-dir', state, '--trusted-proxy', '127.0.0.1',
            '--pending-ttl', '2', '--handshake-timeout', '2000'] + gw_extra
    gw = proxy = None
    pidfile = os.path.join(d, 'gw.pid')
    t0 = time.time()
    try:
        out = os.path.join(d, 'gw.out')
        gw = subprocess.Popen(base + ['--listen', '127.0.0.1:0'], stdout=open(out, 'w'),
                              stderr=open(os.path.join(d, 'gw.err'), 'ab'), stdin=subprocess.DEVNULL)
        gw_url = wait_line(out, gw, 'gateway')
        port = int(gw_url.rsplit(':', 1)[1])
        with open(pidfile, 'w') as f:
            f.write(str(gw.pid))
        with open(os.path.join(d, 'gateway.json'), 'w') as f:
            json.dump({'cmd': base + ['--listen', '127.0.0.1:%d' % port], 'state': state,
                       'pidfile': pidfile}, f)
        pout = os.path.join(d, 'proxy.out')
        proxy = subprocess.Popen([sys.executable, os.path.join(HERE, 'wsproxy.py'), '--upstream',
                                  '127.0.0.1:%d' % port, '--token', TOKEN, '--mutant', mutant_name or ''],
                                 stdout=open(pout, 'w'), stderr=open(os.path.join(d, 'proxy.err'), 'w'),
                                 stdin=subprocess.DEVNULL)
        url = wait_line(pout, proxy, 'proxy')
        restart = os.path.join(d, 'restart.sh')
        with open(restart, 'w') as f:
            f.write('#!/bin/sh\nexec "%s" "%s" "%s" "%s"\n'
                    % (sys.executable, os.path.join(HERE, 'restart.py'), d, mutant_name or ''))
        # one case at a time: a mutant keeps state across connections, and the mutants already run
        # in parallel
        os.chmod(restart, 0o755)
        args = [RUNNER, '--url', url, '--token', TOKEN, '--pending-ttl-ms', '2000', '--jobs', '1',
                '--restart-cmd', restart, '--json', os.path.join(d, 'r.json')] + run_extra
        for p in patterns:
            args += ['--cases', p]
        p = subprocess.run(args, capture_output=True, text=True, errors='replace', timeout=600)
        try:
            with open(os.path.join(d, 'r.json'), encoding='utf-8') as f:
                rep = json.load(f)
        except (OSError, ValueError):
            rep = {'cases': [], 'error': 'no report: exit %d: %s' % (p.returncode, p.stderr[-500:])}
        rep['exit'] = p.returncode
        rep['seconds'] = time.time() - t0
        rep['dir'] = d
        return rep
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return {'cases': [], 'error': str(e), 'exit': -1, 'seconds': time.time() - t0, 'dir': d}
    finally:
        if proxy:
            stop(proxy)
        if gw:
            stop(gw)
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read().strip() or 0)
            if gw is None or pid != gw.pid:
                restart_cmd.stop(pid)  # a gateway that the restart command started
        if os.path.exists(os.path.join(d, 'readonly')):
            restart_cmd.writable(d, {'state': state}, True)
        if not keep:
            shutil.rmtree(d, ignore_errors=True)


def verdicts(rep, *vs):
    return [c for c in rep.get('cases', []) if c.get('verdict') in vs]


def baseline(by_req, jobs):
    """The un-mutated proxy: every case PASS (or SKIP for a need no setup gives)."""
    runs = [('all cases', [], [])]
    for req in sorted(by_req):
        s = setups_for(req)
        if s:
            runs.append(('%s with %s' % (req, ','.join(s)), patterns_for(req, by_req), s))
    problems, passed = [], set()
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        reps = list(ex.map(lambda r: run_job('baseline', None, r[1], r[2]), runs))
    for (what, _, _), rep in zip(runs, reps):
        if rep.get('error'):
            problems.append('%s: %s' % (what, rep['error']))
        for c in verdicts(rep, 'FAIL', 'NON-STRICT', 'ERROR'):
            problems.append('%s: %s %s: %s' % (what, c['verdict'], c['id'], c.get('message')))
        passed |= set(c['id'] for c in verdicts(rep, 'PASS'))
    return problems, passed


def judge(m, by_req, rep):
    if rep.get('error'):
        return 'error', rep['error'], None
    fails = verdicts(rep, 'FAIL', 'NON-STRICT')
    if fails:
        return 'killed', fails[0].get('message') or '', ', '.join(c['id'] for c in fails)
    ran = [c['id'] for c in rep.get('cases', []) if c.get('verdict') == 'PASS']
    return 'alive', 'passed: %s' % (', '.join(ran) or 'no case ran'), None


def markdown(results, score, total, seconds):
    lines = ['| mutant | requirement | what it breaks | killed by |', '| --- | --- | --- | --- |']
    for m, (status, msg, killer) in results:
        ks = [k.strip() for k in (killer or '').split(',') if k.strip()]
        cell = '`%s`%s' % (ks[0], ' (+%d)' % (len(ks) - 1) if len(ks) > 1 else '') if status == 'killed' else '**%s**: %s' % (status, m.alive or msg)
        lines.append('| `%s` | %s | %s | %s |' % (m.name, m.req, m.desc.replace('|', '\\|'), cell))
    head = 'Score: %d of %d mutants killed.' % (score, total)
    return head + '\n\n' + '\n'.join(lines) + '\n'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--jobs', type=int, default=int(os.environ.get('CLAWPAIR_MUTATION_JOBS', '2')))
    ap.add_argument('--only', default='')
    ap.add_argument('--markdown', default='')
    ap.add_argument('--json', default='')
    ap.add_argument('--list', action='store_true')
    ap.add_argument('--no-baseline', action='store_true')
    ap.add_argument('--keep', action='store_true', help='keep the job directories')
    a = ap.parse_args()
    ms = [cls() for cls in mutants.REGISTRY]
    if a.only:
        names = a.only.split(',')
        ms = [m for m in ms if m.name in names]
    if a.list:
        for m in ms:
            print('%-34s %-10s %s' % (m.name, m.req, m.desc))
        print('%d mutants' % len(ms))
        return 0
    if not os.path.exists(RUNNER) or not os.path.exists(GATEWAY):
        print('SKIP: %s or %s not built' % (RUNNER, GATEWAY))
        return 77
    names = [m.name for m in ms]
    if len(set(names)) != len(names):
        print('FAIL: duplicate mutant names')
        return 1
    by_req = cases_by_requirement()
    t0 = time.time()
    if not a.no_baseline:
        problems, passed = baseline(by_req, a.jobs)
        if problems:
            for p in problems:
                print('baseline: ' + p)
            print('FAIL: the un-mutated proxy does not pass every case')
            return 1
        print('baseline: %d cases PASS through the un-mutated proxy (%.0f s)' % (len(passed), time.time() - t0))
    def one(m):
        if not patterns_for(m.req, by_req):
            return m, ('alive', 'no case cites %s' % m.req, None), 0.0
        rep = run_job(m.name, m.name, patterns_for(m.req, by_req), setups_for(m.req, m), a.keep)
        return m, judge(m, by_req, rep), rep['seconds']

    results = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        for m, res, secs in ex.map(one, ms):
            status, msg, killer = res
            print('%-7s %-34s %-10s %5.1fs %s' % (status, m.name, m.req, secs,
                                                 killer.split(',')[0] + ': ' + msg[:150] if killer else msg[:200]),
                  flush=True)
            results.append((m, res))
    score = sum(1 for _, r in results if r[0] == 'killed')
    seconds = time.time() - t0
    print('Score: %d of %d mutants killed in %.0f s' % (score, len(results), seconds))
    if a.markdown:
        with open(a.markdown, 'w', encoding='utf-8') as f:
            f.write(markdown(results, score, len(results), seconds))
    if a.json:
        with open(a.json, 'w', encoding='utf-8') as f:
            json.dump([{'name': m.name, 'requirement': m.req, 'description': m.desc, 'status': r[0],
                        'killedBy': r[2], 'message': r[1], 'alive': m.alive} for m, r in results], f, indent=1)
    bad = [(m, r) for m, r in results if r[0] != 'killed' and not m.alive]
    for m, r in bad:
        print('FAIL: mutant %s (%s) %s: %s' % (m.name, m.req, r[0], r[1][:300]))
    woke = [m for m, r in results if r[0] == 'killed' and m.alive]
    for m in woke:
        print('note: %s is marked alive (%s) but was killed: drop the mark' % (m.name, m.alive))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
