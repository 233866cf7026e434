#!/usr/bin/env python3
"""mangen.py: one text per tool (doc/<tool>.txt) becomes both its --help text, as a C header the
tool compiles in, and its manual page in roff, so that the two cannot say different things.

Usage: mangen.py SOURCE [--header OUT.h] [--man OUT.1] [--help-text OUT.txt]
                 [-D NAME=VALUE]... [--version V]

The source format (clawpair-ctl.txt is a short example):
  # ...                a comment line ('#' then a blank or the end of the line)
  name: / summary: / usage:    header fields up to the first blank line; usage may repeat
  == Title             a section: "Title:" in --help, .SH TITLE in the manual
  == Title [man]       a section only in the manual (examples, files, see also)
  TEXT                 at column 0: a paragraph, or an item's term when the next line is
                       indented by one tab
  <TAB>TEXT            the description of the item above (wrapped)
  <TAB><TAB>TERM  TEXT a sub-item of that description (two blanks end its term)
  <TAB><TAB><TAB>TEXT  the rest of that sub-item's description
  | TEXT               a line kept as it is (examples)
  @NAME@               replaced by -D NAME=VALUE (and @VERSION@ by --version)
"""
import re
import sys

WIDTH = 79  # help lines fit 80 columns
TERM_MAX = 24  # longer terms put their description on the next line


class Error(Exception):
    pass


def parse(text, defines):
    """Returns (header dict, sections): a section is (title, man_only, blocks); a block is
    ('para', text) | ('item', term, [parts]) | ('verbatim', [lines]); a part is ('text', text)
    or ('sub', term, text)."""
    def subst(m):
        if m.group(1) not in defines:
            raise Error('@%s@ is not defined (-D %s=...)' % (m.group(1), m.group(1)))
        return defines[m.group(1)]

    lines = []
    for n, raw in enumerate(text.split('\n'), 1):
        if raw.rstrip() == '#' or raw.startswith('# '):
            continue
        if '\t' in raw.lstrip('\t') or raw != raw.rstrip():
            raise Error('line %d: a tab inside the line, or blanks at its end' % n)
        lines.append((n, re.sub(r'@([A-Z_]+)@', subst, raw)))
    header = {'usage': []}
    i = 0
    while i < len(lines) and lines[i][1]:
        n, line = lines[i]
        m = re.match(r'^(name|summary|usage|section): (.+)$', line)
        if not m:
            raise Error('line %d: want "name:", "summary:", "section:" or "usage:"' % n)
        if m.group(1) == 'usage':
            header['usage'].append(m.group(2))
        else:
            header[m.group(1)] = m.group(2)
        i += 1
    for k in ('name', 'summary'):
        if k not in header:
            raise Error('no "%s:" line' % k)
    if not header['usage']:
        raise Error('no "usage:" line')
    sections = []
    block = None
    for j in range(i, len(lines)):
        n, line = lines[j]
        nxt = lines[j + 1][1] if j + 1 < len(lines) else ''
        if not line:
            block = None
            continue
        m = re.match(r'^== (.+?)( \[man\])?$', line)
        if m:
            sections.append((m.group(1), bool(m.group(2)), []))
            block = None
            continue
        if not sections:
            raise Error('line %d: text before the first "== Title"' % n)
        blocks = sections[-1][2]
        if line.startswith('|'):
            if block is None or block[0] != 'verbatim':
                block = ('verbatim', [])
                blocks.append(block)
            block[1].append(line[2:] if line.startswith('| ') else line[1:])
        elif line.startswith('\t\t\t'):
            if block is None or block[0] != 'item' or not block[2] or block[2][-1][0] != 'sub':
                raise Error('line %d: three tabs, but no sub-item above' % n)
            part = block[2][-1]
            block[2][-1] = ('sub', part[1], part[2] + ' ' + line.strip())
        elif line.startswith('\t\t'):
            m = re.match(r'^\t\t(\S+(?: \S+)*)(?:  +(\S.*))?$', line)
            if block is None or block[0] != 'item' or not m:
                raise Error('line %d: a sub-item outside an item' % n)
            block[2].append(('sub', m.group(1), m.group(2) or ''))
        elif line.startswith('\t'):
            if block is None or block[0] != 'item':
                raise Error('line %d: a description without its term' % n)
            if block[2] and block[2][-1][0] == 'text':
                block[2][-1] = ('text', block[2][-1][1] + ' ' + line.strip())
            else:
                block[2].append(('text', line.strip()))
        elif line[0] in ' \t':
            raise Error('line %d: indent with tabs' % n)
        elif nxt.startswith('\t'):
            block = ('item', line, [])
            blocks.append(block)
        else:
            if block is not None and block[0] == 'para':
                block = ('para', block[1] + ' ' + line)
                blocks[-1] = block
            else:
                block = ('para', line)
                blocks.append(block)
    return header, sections


def wrap(text, width, first, rest):
    """text wrapped to width: the first line after prefix first, the others after rest."""
    out, line = [], first
    fresh = True
    for word in text.split(' '):
        if not word:
            continue
        if not fresh and len(line) + 1 + len(word) > width:
            out.append(line)
            line, fresh = rest, True
        line += ('' if fresh else ' ') + word
        fresh = False
    out.append(line)
    return out


def term_column(blocks):
    terms = [len(b[1]) for b in blocks if b[0] == 'item' and len(b[1]) <= TERM_MAX]
    return 2 + (max(terms) if terms else 0) + 2


def help_text(header, sections):
    out = ['Usage: %s %s' % (header['name'], u) for u in header['usage']]
    out.append(header['summary'])
    for title, man_only, blocks in sections:
        if man_only:
            continue
        out += ['', title + ':']
        col = term_column(blocks)
        for b in blocks:
            if b[0] == 'para':
                out += wrap(b[1], WIDTH, '', '')
            elif b[0] == 'verbatim':
                out += ['  ' + l if l else '' for l in b[1]]
            else:
                term = '  ' + b[1]
                pad = ' ' * col
                subs = [p for p in b[2] if p[0] == 'sub']
                sub_col = max([len(p[1]) for p in subs] or [0])
                first = None
                if len(term) + 2 <= col and b[2] and b[2][0][0] == 'text':
                    first = term.ljust(col)
                else:
                    out.append(term)
                for p in b[2]:
                    if p[0] == 'text':
                        out += wrap(p[1], WIDTH, first or pad, pad)
                    else:
                        lead = pad + '  ' + p[1].ljust(sub_col) + '  '
                        out += wrap(p[2], WIDTH, lead, ' ' * len(lead))
                    first = None
    for line in out:
        if len(line) > WIDTH:
            raise Error('help line longer than %d columns: %r' % (WIDTH, line))
    return '\n'.join(out) + '\n'


def c_string(text):
    """text (ending with a newline) as a C string literal, one source line per line."""
    out = ['\t"%s\\n"' % l.replace('\\', '\\\\').replace('"', '\\"').replace('??', '?\\?')
           for l in text.split('\n')[:-1]]  # ?\? keeps C11's trigraphs out
    return ' \\\n'.join(out)


def header_file(source, header, text):
    return ('/* %s-help.h: the --help text of %s, made by doc/mangen.py from %s (the text of its\n'
            ' * manual page too); edit that file, not this one. */\n'
            '#define CLAWPAIR_HELP \\\n%s\n' % (header['name'], header['name'], source, c_string(text)))


def roff_escape(s):
    s = s.replace('\\', '\\e').replace('-', '\\-')
    return s


def roff_line(s):
    """One line of running text: escaped, never starting with a control character."""
    s = roff_escape(s)
    if s.startswith('.') or s.startswith("'"):
        s = '\\&' + s
    return s


def roff_term(term):
    """Options bold, placeholders (upper-case words) italic, the rest as it is."""
    out = []
    for word in term.split(' '):
        m = re.match(r'^(-[-\w]*)(,?)$', word)
        if m:
            out.append('\\fB%s\\fR%s' % (roff_escape(m.group(1)), m.group(2)))
            continue
        m = re.match(r'^([\[]?)([A-Z][A-Z0-9_]*(?:[:.,][A-Z0-9_.]*)*)([\]]?)(,?)$', word)
        if m:
            out.append('%s\\fI%s\\fR%s%s' % (m.group(1), roff_escape(m.group(2)), m.group(3),
                                             m.group(4)))
            continue
        out.append(roff_escape(word))
    s = ' '.join(out)
    return '\\&' + s if s.startswith('.') else s


def man_page(header, sections, version):
    name = header['name']
    out = ['.\\" %s(%s): made by doc/mangen.py from doc/%s.txt, the source of --help too'
           % (name, header.get('section', '1'), name),
           '.TH %s %s "" "clawpair %s" "clawpair manual"'
           % (name.upper(), header.get('section', '1'), version),
           '.nh', '.ad l',
           '.SH NAME', '%s \\- %s' % (roff_escape(name), roff_line(header['summary'].rstrip('.'))),
           '.SH SYNOPSIS']
    for u in header['usage']:
        out += ['.B %s' % roff_escape(name), roff_term(u), '.br']
    out.pop()
    for title, _, blocks in sections:
        out.append('.SH %s' % roff_escape(title.upper()))
        for b in blocks:
            if b[0] == 'para':
                out += ['.PP', roff_line(b[1])]
            elif b[0] == 'verbatim':
                out += ['.PP', '.RS 4', '.EX'] + [roff_line(l) for l in b[1]] + ['.EE', '.RE']
            else:
                out += ['.TP', roff_term(b[1])]
                first = True
                in_subs = False
                for p in b[2]:
                    if p[0] == 'text':
                        if in_subs:
                            out.append('.RE')
                            in_subs = False
                        if not first:
                            out.append('.IP')
                        out.append(roff_line(p[1]))
                    else:
                        if not in_subs:
                            out.append('.RS')
                            in_subs = True
                        out += ['.TP', roff_term(p[1]), roff_line(p[2])]
                    first = False
                if in_subs:
                    out.append('.RE')
    return '\n'.join(out) + '\n'


def main(argv):
    args = argv[1:]
    if not args or args[0] in ('-h', '--help'):
        print(__doc__)
        return 0 if args else 2
    source = args.pop(0)
    outs = {}
    defines = {}
    version = 'dev'
    while args:
        opt = args.pop(0)
        if not args:
            print('mangen.py: %s needs a value' % opt, file=sys.stderr)
            return 2
        val = args.pop(0)
        if opt in ('--header', '--man', '--help-text'):
            outs[opt] = val
        elif opt == '-D' and '=' in val:
            k, v = val.split('=', 1)
            defines[k] = v
        elif opt == '--version':
            version = val
        else:
            print('mangen.py: unknown option %s' % opt, file=sys.stderr)
            return 2
    defines.setdefault('VERSION', version)
    try:
        with open(source, encoding='utf-8') as f:
            header, sections = parse(f.read(), defines)
        text = help_text(header, sections)
    except Error as e:
        print('%s: %s' % (source, e), file=sys.stderr)
        return 1
    base = re.sub(r'^.*/', '', source)
    rendered = {'--header': header_file('doc/' + base, header, text),
                '--man': man_page(header, sections, version), '--help-text': text}
    for opt, path in outs.items():
        with open(path, 'w', encoding='utf-8') as f:
            f.write(rendered[opt])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
