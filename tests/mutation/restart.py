#!/usr/bin/env python3
"""restart.py: the --restart-cmd of the mutation test: stops the gateway of a job and starts it
again on the same address and state directory, letting the job's mutant act on the state
directory in between (mutants.py, before_start). It also carries out the restart modes of
scenario/SCENARIOS.md ("Restart modes") that a step asks for in CLAWPAIR_RESTART_MODE.

Usage: restart.py JOBDIR [MUTANT]
JOBDIR/gateway.json holds the gateway's command line ("cmd"), its state directory ("state") and
the file with its pid ("pidfile"). Exit status without a mode: 0 once the new gateway listens,
1 otherwise; with a mode: 10 (the gateway listens), 11 (it refused to start: undone and started
again), 1 (something else went wrong).
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
READONLY_SECONDS = 5  # the longest a readonly step lasts
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


def launch(job, cmd, name):
    """Starts cmd; returns (process, 0 once it listens or 1 when it exits or hangs)."""
    out = os.path.join(job, name + '.out')
    err = open(os.path.join(job, 'gw.err'), 'ab')
    p = subprocess.Popen(cmd, stdout=open(out, 'w'), stderr=err, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    end = time.time() + 20
    while time.time() < end:
        with open(out) as f:
            if 'listening on' in f.read():
                return p, 0
        if p.poll() is not None:
            return p, 1
        time.sleep(0.02)
    return p, 1


def start(job, cfg):
    p, rc = launch(job, cfg['cmd'], 'gw')
    with open(cfg['pidfile'], 'w') as f:
        f.write(str(p.pid))
    return rc


def err_size(job):
    try:
        return os.path.getsize(os.path.join(job, 'gw.err'))
    except OSError:
        return 0


def err_since(job, offset):
    with open(os.path.join(job, 'gw.err'), 'rb') as f:
        f.seek(offset)
        return f.read().decode('utf-8', 'replace')


def corrupt(job, cfg, mutant):
    """Mode corrupt: a paired-device file that is not JSON. 10 if the gateway starts on it, 11 if
    it refuses naming the file (then the file is put back and the gateway started again)."""
    with open(cfg['pidfile']) as f:
        stop(int(f.read().strip()))
    files = sorted(glob.glob(os.path.join(cfg['state'], 'paired', '*.json')))
    if not files:
        print('restart.py: corrupt: no paired device in the store', file=sys.stderr)
        start(job, cfg)
        return 1
    path = files[0]
    with open(path, 'rb') as f:
        saved = f.read()
    with open(path, 'wb') as f:
        f.write(b'{"deviceId": this is not JSON')
    if mutant:
        mutant.before_start(cfg['state'], 'corrupt')
    offset = err_size(job)
    if start(job, cfg) == 0:
        return 10
    named = os.path.basename(path) in err_since(job, offset)
    with open(path, 'wb') as f:
        f.write(saved)
    if start(job, cfg) != 0:
        return 1
    if not named:
        print('restart.py: the gateway refused to start without naming %s' % path, file=sys.stderr)
        return 12
    return 11


def second(job, cfg, mutant):
    """Mode second: another gateway on the same state directory while the first one runs."""
    cmd = list(cfg['cmd'])
    cmd[cmd.index('--listen') + 1] = '127.0.0.1:0'
    if mutant:
        mutant.before_start(cfg['state'], 'second')
    p, rc = launch(job, cmd, 'second')
    if p.poll() is None:
        p.terminate()
        p.wait()
    return 10 if rc == 0 else 11


def writable(job, cfg, on):
    """Modes readonly and writable: the table directories of the running gateway."""
    dirs = [d for d in glob.glob(os.path.join(cfg['state'], '*')) if os.path.isdir(d)]
    mark = os.path.join(job, 'readonly')
    if os.geteuid() == 0:
        # root writes through any mode bits: only the immutable attribute stops it
        if not shutil.which('chattr'):
            return 0
        r = subprocess.run(['chattr', '-i' if on else '+i'] + dirs, capture_output=True, text=True)
        if r.returncode != 0:
            print('restart.py: chattr: %s' % r.stderr.strip(), file=sys.stderr)
            return 1
    else:
        for d in dirs:
            os.chmod(d, 0o700 if on else 0o500)
    if on and os.path.exists(mark):
        os.unlink(mark)
    elif not on:
        open(mark, 'w').close()
        # A case that fails before its "writable" step must not leave the store unwritable
        # for the cases after it: undo it in any case a few seconds later.
        subprocess.Popen(['sh', '-c', 'sleep %d; exec "$0" "$1" "$2"' % READONLY_SECONDS,
                          sys.executable, os.path.abspath(__file__), job],
                         env=dict(os.environ, CLAWPAIR_RESTART_MODE='writable'),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    return 10


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
    if mode == 'corrupt':
        return corrupt(job, cfg, mutant)
    if mode == 'second':
        return second(job, cfg, mutant)
    if mode in ('readonly', 'writable'):
        return writable(job, cfg, mode == 'writable')
    if mode:
        return 0  # a mode this command does not know
    with open(cfg['pidfile']) as f:
        stop(int(f.read().strip()))
    if mutant:
        mutant.before_start(cfg['state'], mode)
    return start(job, cfg)


if __name__ == '__main__':
    sys.exit(main())
