#!/usr/bin/env python3
"""install.py: what `meson install` gives a user, used as a user would, with the source and build
trees out of reach. The tree is installed into a DESTDIR and moved; then

- the manual pages render and say what each installed tool's --help says (manpages.py);
- the spec, the expectations files, fake-node/netns.sh and the CI script are in place;
- a small C program (use_protocol.c) is compiled and linked with nothing but the installed
  headers and `pkg-config --cflags --libs clawpair-protocol`, and derives the vectors' deviceIds;
- as root: the installed clawpair-gateway runs in a network namespace made here (a veth pair,
  10.79.N.2/30 in it, 10.79.N.1/30 outside), listening on the namespace's address, not on
  loopback, and the installed clawpair-conformance runs against it from outside. Both run in a
  mount namespace where the source and build trees are empty (tmpfs over them), with no
  CLAWPAIR_* variable and a cwd outside them; the runner under strace when there is one, which
  shows no path of those trees opened. The runner must find itself off-host (the local cases
  SKIP with that reason, none FAILs), write its JSON, JUnit and HTML reports, and no report and
  no console line may hold the gateway token or a device token the gateway issued.

Without root, `ip` or `unshare` the namespace checks are TAP skips with the reason.
Usage: install.py (CLAWPAIR_BUILD_ROOT, CLAWPAIR_SOURCE_ROOT: meson's test_env; TAP on stdout)."""
import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'conformance'))
import drive  # noqa: E402  the conformance tests' gateway command, report and redaction checks
import manpages  # noqa: E402
from tap import Tap, skip_all  # noqa: E402

SOURCE = os.path.realpath(os.environ.get('CLAWPAIR_SOURCE_ROOT', '.'))
BUILD = os.path.realpath(os.environ.get('CLAWPAIR_BUILD_ROOT', 'build'))
TOKEN = drive.TOKEN
CHECKS = 1 + len(manpages.TOOLS) + 3 + 6
# Hides the trees named before "--" under empty tmpfs mounts, then runs the rest (in a private
# mount namespace made by unshare).
COVER = 'while [ "$1" != -- ]; do mount -t tmpfs -o size=64k,mode=0755 hidden "$1" || exit 99; shift; done; shift; exec "$@"'


def one(pattern):
    found = glob.glob(pattern, recursive=True)
    return found[0] if len(found) == 1 else None


def clean_env():
    """What a user's shell would have: no CLAWPAIR_* and no LD_LIBRARY_PATH into the build tree
    (meson test sets one)."""
    return {'PATH': '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
            'HOME': os.environ.get('HOME', '/root'), 'LC_ALL': 'C'}


def can_cover():
    """Whether this process may make a mount namespace (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or not shutil.which('unshare'):
        return False
    return subprocess.run(['unshare', '--mount', '--propagation', 'private', 'true'],
                          capture_output=True).returncode == 0


COVER_OK = can_cover()


def covered(cmd):
    """cmd with the source and build trees hidden (a mount namespace); as it is when this process
    cannot make one."""
    if not COVER_OK:
        return cmd
    hidden = [SOURCE] + ([BUILD] if not BUILD.startswith(SOURCE + '/') else [])
    return ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', COVER, 'cover'] + \
        hidden + ['--'] + cmd


def check_files(t, root):
    share = one(os.path.join(root, '**', 'share', 'clawpair'))
    doc = one(os.path.join(root, '**', 'share', 'doc', 'clawpair'))
    want = []
    if share:
        want += [os.path.join(share, 'conformance', 'expectations', 'openclaw-2026.1.30.json'),
                 os.path.join(share, 'conformance', 'requirements.tsv'),
                 os.path.join(share, 'conformance', 'ci', 'run-suite.sh'),
                 os.path.join(share, 'conformance', 'schema', 'report.schema.json'),
                 os.path.join(share, 'fake-node', 'netns.sh')]
    if doc:
        want += [os.path.join(doc, 'spec', 'pairing.md'), os.path.join(doc, 'spec', 'requirements.tsv'),
                 os.path.join(doc, 'conformance', 'README.md'), os.path.join(doc, 'LICENSE')]
    missing = [w for w in want if not os.path.isfile(w)]
    t.ok(share and doc and not missing and os.access(os.path.join(share, 'fake-node', 'netns.sh'), os.X_OK)
         and filecmp(os.path.join(doc, 'spec', 'pairing.md'), os.path.join(SOURCE, 'spec', 'pairing.md')),
         'spec/, LICENSE, the expectations, the schemas, netns.sh and the CI script installed', 'share %s doc %s missing %s'
         % (share, doc, missing))


def filecmp(a, b):
    try:
        with open(a, 'rb') as x, open(b, 'rb') as y:
            return x.read() == y.read()
    except OSError:
        return False


def check_library(t, root, top):
    pc = one(os.path.join(root, '**', 'pkgconfig', 'clawpair-protocol.pc'))
    cc = shutil.which('cc') or shutil.which('gcc')
    if not pc or not cc or not shutil.which('pkg-config'):
        t.ok(False, 'clawpair-protocol.pc installed, cc and pkg-config found', 'pc %s cc %s' % (pc, cc))
        t.skip('a C program built against the installed library', 'nothing to build with')
        return
    t.ok(True, 'clawpair-protocol.pc installed')
    # PKG_CONFIG_SYSROOT_DIR: the .pc says the final prefix; the files are under the DESTDIR
    env = dict(clean_env(), PKG_CONFIG_PATH=os.path.dirname(pc), PKG_CONFIG_SYSROOT_DIR=root)
    flags = subprocess.run(['pkg-config', '--cflags', '--libs', 'clawpair-protocol'],
                           capture_output=True, text=True, env=env)
    src = os.path.join(top, 'use_protocol.c')
    vectors = os.path.join(top, 'device-auth.json')
    shutil.copy(os.path.join(HERE, 'use_protocol.c'), src)
    shutil.copy(os.path.join(SOURCE, 'tests', 'vectors', 'device-auth.json'), vectors)
    exe = os.path.join(top, 'use_protocol')
    build = subprocess.run([cc, '-std=c11', '-Wall', '-Wextra', '-Werror', '-o', exe, src]
                           + flags.stdout.split(), capture_output=True, text=True, cwd=top, env=env)
    libdir = os.path.dirname(os.path.dirname(pc))
    run = subprocess.run(covered([exe, vectors]), capture_output=True, text=True, cwd=top,
                         env=dict(clean_env(), LD_LIBRARY_PATH=libdir), timeout=30) \
        if build.returncode == 0 else None
    want = json.load(open(vectors))['keys'][0]['deviceId']
    t.ok(flags.returncode == 0 and run is not None and run.returncode == 0
         and ('deviceId ' + want) in run.stdout and run.stdout.rstrip().splitlines()[-1].startswith('ok: '),
         'a C program built with only the installed headers and `pkg-config --cflags --libs '
         'clawpair-protocol` derives the deviceIds', '%s\n%s%s%s' % (
             flags.stdout + flags.stderr, build.stderr, run and run.stdout, run and run.stderr))


def can_namespace():
    if os.geteuid() != 0:
        return 'not root'
    for tool in ('ip', 'unshare'):
        if not shutil.which(tool):
            return 'no %s' % tool
    if not COVER_OK:
        return 'no mount namespace (unshare --mount refused) to hide the source tree in'
    return None


class Netns:
    """A network namespace and a veth pair: HOST_IP outside, NS_IP inside, a /30 of their own."""

    def __init__(self):
        n = os.getpid() % 250
        self.name = 'cp-inst-%d' % os.getpid()
        self.host_if, self.ns_if = 'cpinst%dh' % os.getpid(), 'cpinst%dn' % os.getpid()
        self.host_ip, self.ns_ip = '10.79.%d.1' % n, '10.79.%d.2' % n
        self.made = False

    def up(self):
        steps = [['ip', 'netns', 'add', self.name],
                 ['ip', 'link', 'add', self.host_if, 'type', 'veth', 'peer', 'name', self.ns_if],
                 ['ip', 'link', 'set', self.ns_if, 'netns', self.name],
                 ['ip', 'addr', 'add', self.host_ip + '/30', 'dev', self.host_if],
                 ['ip', 'link', 'set', self.host_if, 'up'],
                 ['ip', '-n', self.name, 'addr', 'add', self.ns_ip + '/30', 'dev', self.ns_if],
                 ['ip', '-n', self.name, 'link', 'set', self.ns_if, 'up'],
                 ['ip', '-n', self.name, 'link', 'set', 'lo', 'up']]
        for s in steps:
            p = subprocess.run(s, capture_output=True, text=True)
            if p.returncode != 0:
                return '%s: %s' % (' '.join(s), p.stderr.strip())
            self.made = True
        return None

    def down(self):
        if self.made:
            subprocess.run(['ip', 'netns', 'del', self.name], capture_output=True)
            subprocess.run(['ip', 'link', 'del', self.host_if], capture_output=True)


def start_gateway(ns, gw_exe, state, log, host, proxy):
    drive.GATEWAY = gw_exe
    cmd = drive.gateway_cmd(0, state, ['--trusted-proxy', proxy], host=host)
    p = subprocess.Popen(['ip', 'netns', 'exec', ns.name] + covered(cmd), stdout=subprocess.PIPE,
                         stderr=open(log, 'ab'), text=True, cwd=os.path.dirname(state), env=clean_env())
    deadline = time.time() + 15 * (10 if drive.VALGRIND else 1)
    while time.time() < deadline:
        if not select.select([p.stdout], [], [], max(0, deadline - time.time()))[0]:
            break
        line = p.stdout.readline()
        if not line:
            break
        m = re.match(r'^listening on (ws://(\S+):(\d+))$', line.strip())
        if m:
            return p, m.group(1), m.group(2)
    return p, None, None


def stop(p):
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def device_tokens(state):
    tokens = []
    for path in glob.glob(os.path.join(state, 'paired', '*.json')):
        rec = json.load(open(path, encoding='utf-8'))
        tokens += [tok['token'] for tok in (rec.get('tokens') or {}).values() if tok.get('token')]
    return tokens


def check_secrets(t, run, out, console, state, need_devices=False):
    tokens = device_tokens(state)
    try:
        members = drive.check_redacted(drive.report_texts(out, console), [TOKEN] + tokens)
        ok, why = members > 0 and (tokens or not need_devices), '%d token members' % members
    except (SystemExit, OSError, ValueError) as e:
        ok, why = False, 'a secret in a report, or no report (%s)' % e
    t.ok(ok, '%s run: no report or console line holds the gateway token or one of the %d device '
         'tokens the gateway issued (%s, each "<redacted>")' % (run, len(tokens), why), why)


def local_run(t, ns, gw_exe, runner, top):
    """A remote runner can have no device approved (TRUST-1), so device tokens are issued in a
    second run, local to a second gateway: both in the namespace, on its loopback."""
    state = os.path.join(top, 'state-local')
    os.mkdir(state, 0o700)
    gw, url, _ = start_gateway(ns, gw_exe, state, os.path.join(top, 'gw-local.err'), '127.0.0.1',
                               '127.0.0.1')
    try:
        out = os.path.join(top, 'reports-local')
        os.mkdir(out)
        p = subprocess.run(['ip', 'netns', 'exec', ns.name] + covered(
            [runner, '--url', url or 'ws://127.0.0.1:1', '--token', TOKEN, '--all-frames', '-v',
             '--cases', 'hold', '--cases', 'events', '--cases', 'recon', '--timeout-scale',
             drive.SCALE, '--json', out + '/r.json', '--junit', out + '/r.xml', '--html',
             out + '/r.html']), capture_output=True, text=True, errors='replace', cwd=top,
            env=clean_env(), timeout=120)
        check_secrets(t, 'local (exit %d)' % p.returncode, out, p.stdout + p.stderr, state,
                      need_devices=True)
    finally:
        stop(gw)


def report_checks(t, rc, so, se, out, state, trace):
    try:
        with open(out + '/r.json', encoding='utf-8') as f:
            rep = json.load(f)
    except (OSError, ValueError) as e:
        t.ok(False, 'the runner wrote its JSON report', '%s\n%s\n%s' % (e, so[-1500:], se[-800:]))
        for what in ('JUnit and HTML', 'secrets', 'trees'):
            t.skip(what, 'no report')
        return
    why, local, passed = drive.offhost_check(rc, so, rep)
    t.ok(not why, 'the installed runner against the installed gateway: exit 0, no FAIL; off-host '
         'found at start, %d local cases SKIP ("needs a local client"), %d remote ones PASS'
         % (local, passed), '%s\n%s' % (why, se[-800:]))
    try:
        drive.check_junit(out + '/r.xml', rep)
        html = open(out + '/r.html', encoding='utf-8').read()
        ok = '<table id="cases"' in html
    except (SystemExit, OSError, ValueError) as e:
        ok = False
        so += '\n%s' % e
    t.ok(ok, 'JUnit and HTML reports written and agreeing with the JSON one', so[-600:])
    check_secrets(t, 'off-host', out, so + se, state)
    if trace is None:
        t.skip('the runner opened no path of the source or build tree', 'no strace')
        return
    try:
        lines = open(trace, encoding='utf-8', errors='replace').read().splitlines()
    except OSError:
        lines = []
    hits = [l for l in lines if SOURCE + '/' in l or '"%s"' % SOURCE in l or BUILD + '/' in l]
    opened = [l for l in lines if 'share/clawpair/conformance/cases/' in l]
    t.ok(lines and opened and not hits, 'the runner opened no path of the source or build tree '
         '(%d file calls traced, %d in the installed cases)' % (len(lines), len(opened)), '\n'.join(hits[:10]))


def installed_checks(t, top):
    """The checks that need no namespace. Returns the installed runner and gateway."""
    root = drive.install_moved(top)
    runner = one(os.path.join(root, '**', 'bin', 'clawpair-conformance'))
    gw_exe = one(os.path.join(root, '**', 'bin', 'clawpair-gateway'))
    man1 = one(os.path.join(root, '**', 'share', 'man', 'man1'))
    t.ok(runner and gw_exe and man1, 'meson install --destdir, the tree moved to %s' % root,
         'runner %s gateway %s man1 %s' % (runner, gw_exe, man1))
    bindir = os.path.dirname(runner or '')
    if shutil.which('groff'):
        manpages.check(t, lambda tool: os.path.join(bindir, tool),
                       lambda tool: os.path.join(man1 or '', tool + '.1'))
    else:
        for tool, _ in manpages.TOOLS:
            t.skip('%s: manual page' % tool, 'no groff')
    check_files(t, root)
    check_library(t, root, top)
    return runner, gw_exe


def offhost_checks(t, top, ns, runner, gw_exe, procs):
    """The installed gateway in the namespace, the installed runner outside."""
    state = os.path.join(top, 'state')
    os.mkdir(state, 0o700)
    gw, url, host = start_gateway(ns, gw_exe, state, os.path.join(top, 'gw.err'), ns.ns_ip,
                                  ns.host_ip)
    procs.append(gw)
    t.ok(url and host == ns.ns_ip, 'the installed gateway listens on the namespace address %s '
         '(%s), not on loopback' % (ns.ns_ip, url),
         open(os.path.join(top, 'gw.err'), errors='replace').read()[-800:])
    if not url:
        for what in ('runner', 'reports', 'secrets', 'trees', 'local run'):
            t.skip(what, 'no gateway')
        return
    out = os.path.join(top, 'reports')
    os.mkdir(out)
    trace = os.path.join(top, 'trace') if shutil.which('strace') else None
    cmd = [runner, '--url', url, '--token', TOKEN, '--all-frames', '--pending-ttl-ms', '2000',
           '--timeout-scale', drive.SCALE, '--json', out + '/r.json', '--junit', out + '/r.xml',
           '--html', out + '/r.html']
    if trace:
        cmd = ['strace', '-f', '-qq', '--seccomp-bpf', '-e', 'trace=%file', '-o', trace] + cmd
    p = subprocess.run(covered(cmd), capture_output=True, text=True, errors='replace', cwd=top,
                       env=clean_env(), timeout=300)
    report_checks(t, p.returncode, p.stdout, p.stderr, out, state, trace)
    local_run(t, ns, gw_exe, runner, top)


def main():
    if not shutil.which('meson'):
        skip_all('no meson')
    t = Tap(CHECKS)
    top = tempfile.mkdtemp(prefix='cp-inst-')
    ns, procs = None, []
    started = time.time()
    try:
        runner, gw_exe = installed_checks(t, top)
        why = can_namespace()
        ns = Netns() if not why else None
        why = why or ns.up()
        if why:
            for what in ('gateway in a network namespace', 'runner', 'reports', 'secrets',
                         'trees', 'local run'):
                t.skip(what, why)
        else:
            offhost_checks(t, top, ns, runner, gw_exe, procs)
    finally:
        for p in procs:
            stop(p)
        if ns:
            ns.down()
        shutil.rmtree(top, ignore_errors=True)
        print('# %.1f s' % (time.time() - started))
    t.done()


if __name__ == '__main__':
    main()
