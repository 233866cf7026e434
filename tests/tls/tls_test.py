#!/usr/bin/env python3
"""tls_test.py: the real clawpair-gateway with --tls-self-signed, and clawpair-ctl and
clawpair-fake-node over wss:// (spec §8.14): the gateway prints the fingerprint of the
certificate it presents; a fake LAN node pins it and is paired through clawpair-ctl (token and
pin from the environment, the node's token from a file); a wrong pin, no pin and ws:// are
refused with exit status 2 and a message naming both fingerprints; the pair is kept across a
restart (on the poll() loop) and works as --tls-cert/--tls-key; a certificate with another key
and bad option combinations are refused.

Needs CLAWPAIR_BUILD_ROOT (meson's test_env)."""
import hashlib
import os
import re
import shutil
import signal
import ssl
import stat
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get('CLAWPAIR_BUILD_ROOT', 'build')
GATEWAY = os.path.join(BUILD, 'server', 'clawpair-gateway')
CTL = os.path.join(BUILD, 'ctl', 'clawpair-ctl')
NODE = os.path.join(BUILD, 'fake-node', 'clawpair-fake-node')
TOKEN = 'tls-test-token'
SLOW = 10 if os.environ.get('CLAWPAIR_VALGRIND') == '1' else 1
WRONG = 'sha256:' + '00' * 32

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
        print('FAIL: ' + what)
    return cond


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ('CLAWPAIR_TOKEN', 'CLAWPAIR_TLS_FINGERPRINT', 'CLAWPAIR_POLL_LOOP')}
    env.update(extra)
    return env


def run(argv, env=None, timeout=30):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * SLOW,
                       env=env or clean_env(), stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


class Gateway:
    def __init__(self, work, args, env=None):
        self.err = os.path.join(work, 'gw.err')
        self.proc = subprocess.Popen([GATEWAY, '--listen', '127.0.0.1:0'] + args,
                                     stdout=subprocess.PIPE, stderr=open(self.err, 'ab'),
                                     text=True, env=env or clean_env())
        self.url = self.fingerprint = None
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.match(r'tls fingerprint (sha256:[0-9a-f]{64})$', line.strip())
            if m:
                self.fingerprint = m.group(1)
            m = re.match(r'listening on (wss?://127\.0\.0\.1:(\d+))$', line.strip())
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log(self):
        with open(self.err, encoding='utf-8', errors='replace') as f:
            return f.read()


def presented(port):
    """The fingerprint of the certificate the gateway presents, by Python's TLS."""
    pem = ssl.get_server_certificate(('127.0.0.1', port))
    return 'sha256:' + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def bad_usage(work):
    cert = os.path.join(work, 'nope.pem')
    for argv, words in (
            ([GATEWAY, '--token', 'x', '--tls-cert', cert], '--tls-cert and --tls-key go together'),
            ([GATEWAY, '--token', 'x', '--tls-self-signed', '--tls-cert', cert, '--tls-key', cert],
             'exclusive'),
            ([CTL, '--token', 'x', '--url', 'ws://127.0.0.1:1', '--tls-fingerprint', WRONG,
              'pending'], 'needs a wss:// URL'),
            ([CTL, '--token', 'x', '--url', 'wss://127.0.0.1:1', '--tls-fingerprint', 'sha256:abc',
              'pending'], "bad --tls-fingerprint 'sha256:abc'"),
            ([NODE, '--token', 'x', '--url', 'ws://127.0.0.1:1', '--tls-fingerprint', WRONG],
             'needs a wss:// URL')):
        rc, out, err = run(argv)
        check(rc == 2 and words in err, '%s: exit %d, stderr %r; want 2 and %r'
              % (' '.join(argv[1:]), rc, err, words))
    rc, out, err = run([CTL, '--token', 'x', '--url', 'wss://127.0.0.1:1', 'pending'],
                       env=clean_env(CLAWPAIR_TLS_FINGERPRINT='zz'))
    check(rc == 2 and "bad $CLAWPAIR_TLS_FINGERPRINT 'zz'" in err,
          'a bad fingerprint in the environment: exit %d, %r' % (rc, err))


def pair_over_wss(work, gw, token_file):
    """A fake LAN node pinned to the gateway, approved by clawpair-ctl over wss://."""
    ident = os.path.join(work, 'node', 'identity.json')
    node = subprocess.Popen([NODE, '--url', gw.url, '--token-file', token_file,
                             '--tls-fingerprint', gw.fingerprint, '--xff', '192.168.1.50',
                             '--identity', ident, '--once', '--timeout', str(30 * SLOW)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=clean_env())
    rid = None
    deadline = time.time() + 10 * SLOW
    while time.time() < deadline and rid is None:
        line = node.stdout.readline()
        if not line:
            break
        m = re.match(r'pending: requestId ([0-9a-f-]{36})', line)
        rid = m.group(1) if m else None
    if not check(rid is not None, 'the pinned fake node got no connect.pending over wss://'):
        node.kill()
        print(node.communicate()[1])
        return None
    env = clean_env(CLAWPAIR_TOKEN=TOKEN, CLAWPAIR_TLS_FINGERPRINT=gw.fingerprint)
    rc, out, err = run([CTL, '--url', gw.url, '--json', 'pending'], env=env)
    check(rc == 0 and rid in out, 'ctl pending over wss://: exit %d, %r %r' % (rc, out, err))
    rc, out, err = run([CTL, '--url', gw.url, 'approve', rid], env=env)
    check(rc == 0, 'ctl approve over wss://: exit %d, %r' % (rc, err))
    try:
        out, err = node.communicate(timeout=15 * SLOW)
    except subprocess.TimeoutExpired:
        node.kill()
        out, err = node.communicate()
    check(node.returncode == 0 and 'paired: hello-ok' in out,
          'the fake node was not paired over wss://: exit %s, %r %r' % (node.returncode, out, err))
    return ident


def refusals(gw, token_file):
    mismatch = 'TLS certificate mismatch: pinned %s, the gateway presented %s' % (WRONG, gw.fingerprint)
    rc, out, err = run([CTL, '--url', gw.url, '--token', TOKEN, '--tls-fingerprint', WRONG,
                        'pending'])
    check(rc == 2 and 'clawpair-ctl: refusing the gateway: ' in err and mismatch in err,
          'ctl with a wrong pin: exit %d, %r; want 2 and %r' % (rc, err, mismatch))
    # the same pin as openssl prints it (colons, upper case) is the same pin
    colons = ':'.join(gw.fingerprint[7 + i:9 + i] for i in range(0, 64, 2)).upper()
    rc, out, err = run([CTL, '--url', gw.url, '--token', TOKEN, '--tls-fingerprint', colons,
                        'devices'])
    check(rc == 0, 'ctl with the pin in openssl\'s spelling: exit %d, %r' % (rc, err))
    rc, out, err = run([NODE, '--url', gw.url, '--token-file', token_file, '--tls-fingerprint',
                        WRONG, '--once', '--timeout', '20', '--identity',
                        os.path.join(os.path.dirname(token_file), 'other', 'id.json')])
    check(rc == 2 and mismatch in err and 'TLS certificate refused after 1 attempt' in out,
          'fake node with a wrong pin: exit %d, %r %r' % (rc, out, err))
    rc, out, err = run([NODE, '--url', gw.url, '--token-file', token_file, '--tls-fingerprint',
                        WRONG, '--count', '3', '--xff', 'auto', '--timeout', '20'])
    check(rc == 2 and mismatch in err, 'a swarm with a wrong pin: exit %d, %r' % (rc, err))
    rc, out, err = run([CTL, '--url', gw.url, '--token', TOKEN, 'pending'])
    check(rc == 2 and 'TLS certificate not trusted' in err and gw.fingerprint in err,
          'ctl without a pin: exit %d, %r' % (rc, err))
    rc, out, err = run([CTL, '--url', gw.url.replace('wss://', 'ws://'), '--token', TOKEN,
                        'pending'])
    check(rc == 2, 'ctl over ws:// to the wss:// gateway: exit %d, %r' % (rc, err))


def main():
    for exe in (GATEWAY, CTL, NODE):
        if not os.access(exe, os.X_OK):
            print('SKIP: %s not built' % exe)
            return 77
    work = tempfile.mkdtemp(prefix='cp-tls-')
    state = os.path.join(work, 'state')
    token_file = os.path.join(work, 'token')
    with open(token_file, 'w') as f:
        f.write(TOKEN + '\n')
    os.chmod(token_file, 0o600)
    gw = None
    try:
        bad_usage(work)
        gw = Gateway(work, ['--token-file', token_file, '--state-dir', state,
                            '--trusted-proxy', '127.0.0.1', '--tls-self-signed'])
        if not check(gw.url and gw.url.startswith('wss://') and gw.fingerprint,
                     'no "tls fingerprint" and "listening on wss://" lines'):
            return 1
        check(presented(gw.port) == gw.fingerprint,
              'printed %s, presented %s' % (gw.fingerprint, presented(gw.port)))
        cert = os.path.join(state, 'tls', 'cert.pem')
        key = os.path.join(state, 'tls', 'key.pem')
        for path in (cert, key):
            check(stat.S_IMODE(os.stat(path).st_mode) == 0o600, '%s is not mode 0600' % path)
        with open(key, 'rb') as f:
            key_bytes = f.read()
        ident = pair_over_wss(work, gw, token_file)
        refusals(gw, token_file)
        check(gw.stop() == 0, 'the gateway did not stop cleanly')

        # restart on the poll() loop: the same pair, and the paired node connects again
        gw = Gateway(work, ['--token-file', token_file, '--state-dir', state,
                            '--trusted-proxy', '127.0.0.1', '--tls-self-signed'],
                     env=clean_env(CLAWPAIR_POLL_LOOP='1'))
        check(gw.fingerprint == presented(gw.port) and open(key, 'rb').read() == key_bytes,
              'the self-signed pair changed across a restart')
        if ident:
            rc, out, err = run([NODE, '--url', gw.url, '--token-file', token_file,
                                '--tls-fingerprint', gw.fingerprint, '--xff', '192.168.1.50',
                                '--identity', ident, '--once', '--timeout', '20'])
            check(rc == 0 and 'paired: hello-ok' in out,
                  'the paired node over wss:// after a restart: exit %d, %r %r' % (rc, out, err))
        fp = gw.fingerprint
        gw.stop()

        # the same pair as --tls-cert/--tls-key; then a certificate with another pair's key
        gw = Gateway(work, ['--token', TOKEN, '--state-dir', os.path.join(work, 's2'),
                            '--tls-cert', cert, '--tls-key', key])
        check(gw.fingerprint == fp and presented(gw.port) == fp,
              '--tls-cert/--tls-key: fingerprint %s, want %s' % (gw.fingerprint, fp))
        gw.stop()
        other = os.path.join(work, 's3')
        gw = Gateway(work, ['--token', TOKEN, '--state-dir', other, '--tls-self-signed'])
        gw.stop()
        rc, out, err = run([GATEWAY, '--listen', '127.0.0.1:0', '--token', TOKEN, '--state-dir',
                            os.path.join(work, 's4'), '--tls-cert', cert, '--tls-key',
                            os.path.join(other, 'tls', 'key.pem')])
        check(rc == 1 and 'do not belong together' in err and 'listening' not in out,
              'a certificate with another key: exit %d, %r' % (rc, err))
        gw = None
    finally:
        if gw:
            gw.stop()
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        print('%d problem(s)' % len(problems))
        return 1
    print('ok: pinned pairing over wss://, refusals, restart, --tls-cert/--tls-key')
    return 0


if __name__ == '__main__':
    sys.exit(main())
