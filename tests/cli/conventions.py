#!/usr/bin/env python3
"""conventions.py: the command-line conventions every clawpair tool keeps: -h/--help print the
help on stdout and exit 0, -V/--version print "PROG VERSION" and exit 0, an unknown option or an
option missing its value is named in "PROG: message (try --help)" on stderr with exit status 2.

Usage: conventions.py VERSION (CLAWPAIR_BUILD_ROOT names the build directory)."""
import os
import subprocess
import sys

TOOLS = [
    ('clawpair-gateway', 'server/clawpair-gateway'),
    ('clawpair-ctl', 'ctl/clawpair-ctl'),
    ('clawpair-fake-node', 'fake-node/clawpair-fake-node'),
    ('clawpair-conformance', 'conformance/clawpair-conformance'),
]


def run(exe, args):
    env = dict(os.environ)
    env.pop('CLAWPAIR_TOKEN', None)
    p = subprocess.run([exe] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=20,
                       env=env)
    return p.returncode, p.stdout.decode('utf-8', 'replace'), p.stderr.decode('utf-8', 'replace')


def check_tool(prog, exe, version):
    problems = []

    def expect(cond, what, args, rc, out, err):
        if not cond:
            problems.append('%s %s: %s (exit %d, stdout %r, stderr %r)'
                            % (prog, ' '.join(args), what, rc, out[:200], err[:200]))

    for args in (['-h'], ['--help']):
        rc, out, err = run(exe, args)
        expect(rc == 0, 'exit status is not 0', args, rc, out, err)
        expect(out.lower().startswith('usage: ' + prog), 'stdout does not start with the usage',
               args, rc, out, err)
        expect('--help' in out and '--version' in out, 'the help does not list --help and --version',
               args, rc, out, err)
        expect(err == '', 'something on stderr', args, rc, out, err)

    for args in (['-V'], ['--version']):
        rc, out, err = run(exe, args)
        expect(rc == 0 and out == '%s %s\n' % (prog, version),
               'want exactly "%s %s" and exit 0' % (prog, version), args, rc, out, err)
        expect(err == '', 'something on stderr', args, rc, out, err)

    for args, needle, words in ((['--no-such-option'], "'--no-such-option'", 'unknown option'),
                                (['-Z'], "'-Z'", 'unknown option'),
                                (['--url'], "'--url'",
                                 'unknown option' if prog == 'clawpair-gateway' else 'needs a value')):
        rc, out, err = run(exe, args)
        lines = err.splitlines()
        expect(rc == 2, 'exit status is not 2', args, rc, out, err)
        expect(out == '', 'something on stdout', args, rc, out, err)
        expect(len(lines) == 1 and lines[0].startswith(prog + ': ')
               and lines[0].endswith(' (try --help)'),
               'stderr is not one line "%s: ... (try --help)"' % prog, args, rc, out, err)
        expect(needle in err and words in err, 'stderr does not say %s %s' % (words, needle),
               args, rc, out, err)
    return problems


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    version = sys.argv[1]
    build = os.environ.get('CLAWPAIR_BUILD_ROOT', 'build')
    problems = []
    for prog, rel in TOOLS:
        exe = os.path.join(build, rel)
        if not os.access(exe, os.X_OK):
            problems.append('%s: not built' % exe)
            continue
        found = check_tool(prog, exe, version)
        print('%s %s' % ('ok  ' if not found else 'FAIL', prog))
        problems += found
    for p in problems:
        print('  ' + p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
