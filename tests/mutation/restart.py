#!/usr/bin/env python3
"""restart.py: the --restart-cmd of the mutation test: stops the gateway of a job and starts it
again on the same address and state directory, letting the job's mutant act on the state
directory in between (mutants.py, before_start).

Usage: restart.py JOBDIR [MUTANT]
JOBDIR/gateway.json holds the gateway's command line ("cmd"), its state directory ("state") and
the file with its pid ("pidfile"). Exit status 0 once the new gateway listens, 1 otherwise.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def gone(pid):
    """The process is gone or a zombie (its parent has not waited for it yet)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except OSError:
        return True


def stop(pid, timeout=15.0):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + timeout
    while time.time() < end and not gone(pid):
        time.sleep(0.02)
    if not gone(pid):
        os.kill(pid, signal.SIGKILL)


def start(job, cfg):
    out = os.path.join(job, 'gw.out')
    err = open(os.path.join(job, 'gw.err'), 'ab')
    with open(out, 'w'):
        pass
    p = subprocess.Popen(cfg['cmd'], stdout=open(out, 'w'), stderr=err, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    with open(cfg['pidfile'], 'w') as f:
        f.write(str(p.pid))
    end = time.time() + 20
    while time.time() < end:
        with open(out) as f:
            if 'listening on' in f.read():
                return 0
        if p.poll() is not None:
            return 1
        time.sleep(0.02)
    return 1


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    job = sys.argv[1]
    with open(os.path.join(job, 'gateway.json')) as f:
        cfg = json.load(f)
    mode = os.environ.get('CLAWPAIR_RESTART_MODE', '')
    mutant = None
    if len(sys.argv) == 3 and sys.argv[2]:
        import mutants
        mutant = mutants.get(sys.argv[2])
    with open(cfg['pidfile']) as f:
        stop(int(f.read().strip()))
    if mutant:
        mutant.before_start(cfg['state'], mode)
    return start(job, cfg)


if __name__ == '__main__':
    sys.exit(main())
