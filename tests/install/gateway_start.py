#!/usr/bin/env python3
"""gateway_start.py: clawpair-gateway's start, fast: an address the machine does not have and an
address in use each stop it with exit status 1 and "cannot listen on ADDR:PORT: REASON" (nothing
on stdout), a host name is a usage error, and --listen ADDR:0 prints the port the kernel picked,
which accepts connections, for every address.

Usage: gateway_start.py (CLAWPAIR_BUILD_ROOT names the build directory; TAP on stdout)."""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap  # noqa: E402

BUILD = os.environ.get('CLAWPAIR_BUILD_ROOT', 'build')
GATEWAY = os.path.join(BUILD, 'server', 'clawpair-gateway')
# the valgrind setup: the gateway under memcheck, its errors (leaks on the failed starts too) exit 99
VALGRIND = ['valgrind', '--error-exitcode=99', '--leak-check=full', '--errors-for-leak-kinds=definite',
            '-q'] if os.environ.get('CLAWPAIR_VALGRIND') == '1' else []
SLOW = 10 if VALGRIND else 1


def gateway(state, *listen, timeout=10):
    """Runs the gateway until it exits (or timeout): (exit status, stdout, stderr); None when it
    was still running."""
    args = VALGRIND + [GATEWAY, '--token', 'start-test-token', '--state-dir', state, '--log-level',
                       'warn']
    for a in listen:
        args += ['--listen', a]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout * SLOW)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b'').decode(), (e.stderr or b'').decode()


def has_address(addr):
    try:
        s = socket.socket()
        s.bind((addr, 0))
        s.close()
        return True
    except OSError:
        return False


def main():
    t = Tap(7)
    top = tempfile.mkdtemp(prefix='cp-start-')
    state = os.path.join(top, 'state')
    os.mkdir(state, 0o700)
    try:
        # 1.2.3.4 (a public address) is on no interface of a test machine
        if has_address('1.2.3.4'):
            t.skip('an address the machine does not have', 'this machine has 1.2.3.4')
        else:
            rc, out, err = gateway(state, '1.2.3.4:18555', timeout=10)
            t.ok(rc == 1 and out == '' and
                 err == 'clawpair-gateway: cannot listen on 1.2.3.4:18555: Cannot assign requested address\n',
                 'an address the machine does not have: exit 1 with the reason',
                 'exit %s, stdout %r, stderr %r' % (rc, out, err))

        busy = socket.socket()
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, out, err = gateway(state, '127.0.0.1:%d' % port)
        t.ok(rc == 1 and out == '' and
             err == 'clawpair-gateway: cannot listen on 127.0.0.1:%d: Address already in use\n' % port,
             'an address in use: exit 1 with the reason', 'exit %s, stdout %r, stderr %r' % (rc, out, err))
        # the second address fails: nothing was announced for the first
        rc, out, err = gateway(state, '127.0.0.1:0', '127.0.0.1:%d' % port)
        t.ok(rc == 1 and 'listening on' not in out and 'Address already in use' in err,
             'one bad address of two: exit 1, no address announced', 'exit %s, %r %r' % (rc, out, err))
        busy.close()

        rc, out, err = gateway(state, 'localhost:0')
        t.ok(rc == 2 and 'ADDR must be an IPv4 or IPv6 address' in err,
             'a host name: usage error', 'exit %s, %r' % (rc, err))

        listen = ['127.0.0.1:0', '127.0.0.1:0']
        if has_address('::1'):
            listen.append('[::1]:0')
        p = subprocess.Popen(VALGRIND + [GATEWAY, '--token', 'start-test-token', '--state-dir', state,
                              '--log-level', 'warn'] + sum((['--listen', a] for a in listen), []),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = [p.stdout.readline() for _ in listen]
            got = [re.match(r'^listening on ws://(127\.0\.0\.1|\[::1\]):(\d+)\n$', l) for l in lines]
            ports = [int(m.group(2)) for m in got if m]
            t.ok(len(ports) == len(listen) and all(ports) and len(set(ports)) == len(ports),
                 'port 0: each address says the port it is bound to', lines)
            reached = 0
            for m in got:
                if not m:
                    continue
                host = m.group(1).strip('[]')
                with socket.create_connection((host, int(m.group(2))), timeout=5 * SLOW) as c:
                    c.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
                    if c.recv(12).startswith(b'HTTP/1.1'):
                        reached += 1
            t.ok(reached == len(listen), 'the gateway answers on every announced port',
                 '%d of %d' % (reached, len(listen)))
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
        t.ok(rc == 0, 'SIGTERM: exit 0', 'exit %s: %s' % (rc, p.stderr.read()[-400:]))
    finally:
        subprocess.run(['rm', '-rf', top])
    t.done()


if __name__ == '__main__':
    main()
