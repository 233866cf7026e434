#!/usr/bin/env python3
"""manpages.py: each tool's manual page says what its --help says: the words of the help, less
its usage line, summary and headings, appear in the rendered page in the same order, and groff
renders the page without a warning. Both come from doc/<tool>.txt (doc/mangen.py); this catches
a tool whose help no longer comes from there, and a page roff cannot render. In the build tree,
also: the help names every long option of the tool's getopt table, and lists no other.

Usage: manpages.py [BIN_DIR MAN1_DIR] (default: the build tree under CLAWPAIR_BUILD_ROOT; TAP on
stdout). install.py calls check() on an installed tree."""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import Tap, skip_all  # noqa: E402

TOOLS = [('clawpair-gateway', 'server'), ('clawpair-ctl', 'ctl'),
         ('clawpair-fake-node', 'fake-node'), ('clawpair-conformance', 'conformance')]
SOURCES = {'clawpair-gateway': 'server/main.c', 'clawpair-ctl': 'ctl/ctl.c',
           'clawpair-fake-node': 'fake-node/main.c', 'clawpair-conformance': 'conformance/main.c'}
# what cli/ adds to every tool's own options
CLI_OPTIONS = {'help', 'version', 'token', 'token-file', 'tls-fingerprint'}


def help_words(text):
    lines = text.splitlines()[2:]  # the usage line and the summary are the page's NAME, SYNOPSIS
    lines = [l for l in lines if not re.match(r'^[A-Z][a-z ]*:$', l)]
    return ' '.join(lines).split()


def render(page):
    """(the page as plain text, groff's warnings)."""
    env = dict(os.environ, LC_ALL='C', MANWIDTH='80')
    p = subprocess.run(['groff', '-man', '-Tascii', '-P-cbou', '-ww', page], capture_output=True,
                       text=True, env=env, timeout=30)
    return p.stdout, p.stderr.strip()


def first_missing(words, page_words):
    """The index in words of the first word not found, in order, in page_words; None if all are."""
    j = 0
    for i, w in enumerate(words):
        while j < len(page_words) and page_words[j] != w:
            j += 1
        if j == len(page_words):
            return i
        j += 1
    return None


def check(t, exe_of, page_of):
    """One TAP line per tool: exe_of(tool) and page_of(tool) give its binary and its page."""
    for tool, _ in TOOLS:
        exe, page = exe_of(tool), page_of(tool)
        if not os.path.exists(page) or not os.access(exe, os.X_OK):
            t.ok(False, '%s: binary and manual page' % tool, 'missing %s or %s' % (exe, page))
            continue
        h = subprocess.run([exe, '--help'], capture_output=True, text=True, timeout=20).stdout
        text, warnings = render(page)
        words = help_words(h)
        miss = first_missing(words, text.split())
        t.ok(miss is None and not warnings and len(words) > 50 and 'OPTIONS' in text,
             '%s: the manual page says what --help says (%d words)' % (tool, len(words)),
             warnings or ('--help says "%s" where the page does not'
                          % ' '.join(words[max(0, (miss or 0) - 5):(miss or 0) + 5])))


def check_options(t, exe_of, source_root):
    """One TAP line per tool: its help and its getopt table name the same long options."""
    for tool, _ in TOOLS:
        with open(os.path.join(source_root, SOURCES[tool]), encoding='utf-8') as f:
            table = set(re.findall(r'\{"([a-z0-9-]+)",\s*(?:no|required|optional)_argument', f.read()))
        h = subprocess.run([exe_of(tool), '--help'], capture_output=True, text=True, timeout=20).stdout
        named = set(re.findall(r'(?<![\w-])--([a-z0-9][a-z0-9-]*)', h))
        listed = set(re.findall(r'^ {2,}(?:-\w, )?--([a-z0-9-]+)', h, re.M))
        missing, unknown = sorted(table - named), sorted(listed - table - CLI_OPTIONS)
        t.ok(table and not missing and not unknown,
             '%s: --help names its %d options, and no other' % (tool, len(table)),
             'not in --help: %s; not in %s: %s' % (missing, SOURCES[tool], unknown))


def main():
    if not shutil.which('groff'):
        skip_all('no groff to render the manual pages')
    if len(sys.argv) == 3:
        bin_dir, man_dir = sys.argv[1], sys.argv[2]
        exe_of = lambda tool: os.path.join(bin_dir, tool)  # noqa: E731
        page_of = lambda tool: os.path.join(man_dir, tool + '.1')  # noqa: E731
    else:
        build = os.environ.get('CLAWPAIR_BUILD_ROOT', 'build')
        where = dict(TOOLS)
        exe_of = lambda tool: os.path.join(build, where[tool], tool)  # noqa: E731
        page_of = lambda tool: os.path.join(build, where[tool], tool + '.1')  # noqa: E731
    source = os.environ.get('CLAWPAIR_SOURCE_ROOT')
    t = Tap(len(TOOLS) * (2 if source else 1))
    check(t, exe_of, page_of)
    if source:
        check_options(t, exe_of, source)
    t.done()


if __name__ == '__main__':
    main()
