#!/usr/bin/env python3
"""check_spec.py: checks that spec/pairing.md agrees with spec/requirements.tsv and with the
outcome table protocol/errors.def.

Usage: check_spec.py SOURCE_ROOT

Checks:
  1. every **[ID]** paragraph in pairing.md appears once, and exactly those ids are in
     requirements.tsv (header, four columns, level MUST or SHOULD, section where the id is defined);
  2. every [ID] cited anywhere in pairing.md is defined;
  3. every row of errors.def is in the §7 table with the same wire code, details.code, close code
     and reason, and the table has no other row;
  4. the §7 message list gives each row's errors.def message.
Then it proves it can fail: it re-runs the checks on copies with one close code changed, one
requirement dropped from the index, one reason changed and one row added, and expects an error
each time. Exit status 0 when all is well, 1 otherwise. Standard library only.
"""
import os
import re
import sys

ID_RE = r"[A-Z]+-\d+"
LEVELS = ("MUST", "SHOULD")


def parse_errors_def(text):
    """Rows of X(NAME, wire, dcode, close, reason, msg) as tuples; wire None for NULL.
    Skips C comments and reads C string literals with their escapes."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("errors.def: unterminated comment")
            i = end + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    esc = text[j + 1]
                    buf.append({"n": "\n", "t": "\t", '"': '"', "\\": "\\"}.get(esc, esc))
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            if j >= n:
                raise ValueError("errors.def: unterminated string")
            tokens.append(("str", "".join(buf)))
            i = j + 1
        elif c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(("punct", c))
            i += 1
        else:
            m = re.compile(r"[A-Za-z0-9_\-]+").match(text, i)
            if not m:
                raise ValueError("errors.def: unexpected character %r" % c)
            tokens.append(("word", m.group(0)))
            i = m.end()
    rows = []
    k = 0
    while k < len(tokens):
        if tokens[k] == ("word", "X") and k + 1 < len(tokens) and tokens[k + 1] == ("punct", "("):
            k += 2
            args, cur = [], []
            while k < len(tokens) and tokens[k] != ("punct", ")"):
                if tokens[k] == ("punct", ","):
                    args.append(cur)
                    cur = []
                else:
                    cur.append(tokens[k])
                k += 1
            args.append(cur)
            k += 1
            if len(args) != 6 or any(len(a) != 1 for a in args):
                raise ValueError("errors.def: malformed row near %r" % (args[:1],))
            name, wire, dcode, close, reason, msg = (a[0] for a in args)
            if name[0] != "word" or dcode[0] != "str" or reason[0] != "str" or msg[0] != "str":
                raise ValueError("errors.def: malformed row %r" % (name[1],))
            if wire == ("word", "NULL"):
                wire_v = None
            elif wire[0] == "str":
                wire_v = wire[1]
            else:
                raise ValueError("errors.def: bad wire code in row %s" % name[1])
            if close[0] != "word" or not re.fullmatch(r"\d+", close[1]):
                raise ValueError("errors.def: bad close code in row %s" % name[1])
            rows.append((name[1], wire_v, dcode[1], int(close[1]), reason[1], msg[1]))
        else:
            k += 1
    return rows


def strip_code(cell):
    cell = cell.strip()
    if len(cell) >= 2 and cell.startswith("`") and cell.endswith("`"):
        return cell[1:-1]
    return cell


def section_of_lines(md_lines):
    """For each line, the number of the section or subsection it is in ("8.3"), or None."""
    out, cur = [], None
    for line in md_lines:
        m = re.match(r"^#{2,3} (\d+(?:\.\d+)*)\.? ", line)
        if m:
            cur = m.group(1)
        out.append(cur)
    return out


def check(md, tsv, errors_def):
    errs = []
    lines = md.splitlines()
    secs = section_of_lines(lines)

    # 1. requirement ids: pairing.md vs requirements.tsv
    defined = {}
    for ln, line in enumerate(lines):
        for m in re.finditer(r"\*\*\[(" + ID_RE + r")\]\*\*", line):
            rid = m.group(1)
            if rid in defined:
                errs.append("pairing.md: requirement %s is defined twice (lines %d and %d)"
                            % (rid, defined[rid][0] + 1, ln + 1))
            else:
                defined[rid] = (ln, secs[ln])
    if not defined:
        errs.append("pairing.md: no **[ID]** requirement found")

    tsv_lines = tsv.splitlines()
    index = {}
    if not tsv_lines or tsv_lines[0] != "id\tlevel\tsection\ttitle":
        errs.append("requirements.tsv: header must be 'id<TAB>level<TAB>section<TAB>title'")
    for no, line in enumerate(tsv_lines[1:], start=2):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) != 4 or not all(x.strip() for x in f):
            errs.append("requirements.tsv:%d: want 4 non-empty tab-separated fields" % no)
            continue
        rid, level, sec, _title = f
        if not re.fullmatch(ID_RE, rid):
            errs.append("requirements.tsv:%d: bad id %r" % (no, rid))
        if level not in LEVELS:
            errs.append("requirements.tsv:%d: level %r is not MUST or SHOULD" % (no, level))
        if rid in index:
            errs.append("requirements.tsv:%d: duplicate id %s" % (no, rid))
        index[rid] = (level, sec)

    for rid in sorted(set(defined) - set(index)):
        errs.append("%s is defined in pairing.md but missing from requirements.tsv" % rid)
    for rid in sorted(set(index) - set(defined)):
        errs.append("%s is in requirements.tsv but not defined as **[%s]** in pairing.md"
                    % (rid, rid))
    for rid in sorted(set(index) & set(defined)):
        if index[rid][1] != defined[rid][1]:
            errs.append("%s: requirements.tsv says section %s, pairing.md defines it in %s"
                        % (rid, index[rid][1], defined[rid][1]))
        ln = defined[rid][0]
        para = []
        for line in lines[ln:]:
            if para and not line.strip():
                break
            para.append(line)
        if index[rid][0] not in " ".join(para):
            errs.append("%s: level %s from requirements.tsv does not appear in its paragraph"
                        % (rid, index[rid][0]))

    # 2. citations
    for ln, line in enumerate(lines):
        for m in re.finditer(r"\[(" + ID_RE + r")\]", line):
            if m.group(1) not in defined:
                errs.append("pairing.md:%d: cites [%s], which is not defined" % (ln + 1, m.group(1)))

    # 3. outcome table vs errors.def
    try:
        rows = parse_errors_def(errors_def)
    except ValueError as e:
        return errs + [str(e)]
    if not rows:
        errs.append("errors.def: no X(...) rows")
    try:
        start = next(i for i, l in enumerate(lines) if re.match(r"^## 7\.? ", l))
        end = next((i for i in range(start + 1, len(lines)) if re.match(r"^## \d", lines[i])),
                   len(lines))
    except StopIteration:
        return errs + ["pairing.md: no '## 7' section"]
    table = {}
    for ln in range(start, end):
        line = lines[ln]
        if not re.match(r"^\|\s*CP_ERR_", line):
            continue
        cells = line.strip()
        if not cells.endswith("|"):
            errs.append("pairing.md:%d: table row does not end with '|'" % (ln + 1))
            continue
        cells = [c for c in cells[1:-1].split("|")]
        if len(cells) != 5:
            errs.append("pairing.md:%d: want 5 cells, got %d" % (ln + 1, len(cells)))
            continue
        name, wire, dcode, close, reason = (strip_code(c) for c in cells)
        if name in table:
            errs.append("pairing.md:%d: row %s appears twice" % (ln + 1, name))
        if not re.fullmatch(r"\d+", close):
            errs.append("pairing.md:%d: close code %r is not a number" % (ln + 1, close))
            continue
        table[name] = (ln + 1, None if wire in ("—", "-", "") else wire, dcode, int(close), reason)

    expect = {r[0]: r for r in rows}
    for name, wire, dcode, close, reason, _msg in rows:
        if name not in table:
            errs.append("errors.def row %s is missing from the §7 table" % name)
            continue
        ln, t_wire, t_dcode, t_close, t_reason = table[name]
        for what, want, got in (("wire code", wire, t_wire), ("details.code", dcode, t_dcode),
                                ("close code", close, t_close), ("reason", reason, t_reason)):
            if want != got:
                errs.append("pairing.md:%d: %s %s is %r in the spec, %r in errors.def"
                            % (ln, name, what, got, want))
    for name in sorted(set(table) - set(expect)):
        errs.append("pairing.md:%d: §7 row %s is not in errors.def" % (table[name][0], name))

    # 4. default messages
    msgs = {}
    for ln in range(start, end):
        m = re.match(r"^- `(CP_ERR_[A-Z0-9_]+)`: (.*)$", lines[ln])
        if m:
            msgs[m.group(1)] = (ln + 1, m.group(2).strip())
    for name, _w, _d, _c, _r, msg in rows:
        if name not in msgs:
            errs.append("§7 message list lacks %s" % name)
        elif msgs[name][1] != msg:
            errs.append("pairing.md:%d: message of %s is %r, errors.def says %r"
                        % (msgs[name][0], name, msgs[name][1], msg))
    for name in sorted(set(msgs) - set(expect)):
        errs.append("pairing.md:%d: message list names %s, not in errors.def"
                    % (msgs[name][0], name))
    return errs


def mutate_first_table_close(md):
    """The spec with the close code of the first §7 row that closes changed to 1234."""
    out, done = [], False
    for line in md.splitlines(keepends=True):
        m = re.match(r"^(\|\s*CP_ERR_[^|]*\|[^|]*\|[^|]*\|\s*)([1-9]\d*)(\s*\|.*)$", line, re.S)
        if m and not done:
            line = m.group(1) + "1234" + m.group(3)
            done = True
        out.append(line)
    return "".join(out) if done else None


def mutate_first_table_reason(md):
    out, done = [], False
    for line in md.splitlines(keepends=True):
        m = re.match(r"^(\|\s*CP_ERR_.*\| `)([^`]+)(` \|\s*)$", line, re.S)
        if m and not done:
            line = m.group(1) + m.group(2) + "x" + m.group(3)
            done = True
        out.append(line)
    return "".join(out) if done else None


def main():
    if len(sys.argv) != 2:
        print("usage: check_spec.py SOURCE_ROOT", file=sys.stderr)
        return 2
    root = sys.argv[1]
    paths = {k: os.path.join(root, p) for k, p in (("md", "spec/pairing.md"),
                                                  ("tsv", "spec/requirements.tsv"),
                                                  ("def", "protocol/errors.def"))}
    texts = {}
    for k, p in paths.items():
        try:
            with open(p, encoding="utf-8") as f:
                texts[k] = f.read()
        except OSError as e:
            print("FAIL: cannot read %s: %s" % (p, e))
            return 1

    errs = check(texts["md"], texts["tsv"], texts["def"])
    if errs:
        for e in errs:
            print("FAIL: " + e)
        print("%d problem(s)" % len(errs))
        return 1

    # The check must be able to fail: each mutation below has to be caught.
    tsv_lines = texts["tsv"].splitlines(keepends=True)
    mutations = [
        ("one close code changed in §7", mutate_first_table_close(texts["md"]), texts["tsv"],
         texts["def"]),
        ("one reason changed in §7", mutate_first_table_reason(texts["md"]), texts["tsv"],
         texts["def"]),
        ("one requirement dropped from requirements.tsv", texts["md"],
         "".join(tsv_lines[:1] + tsv_lines[2:]), texts["def"]),
        ("one row added to errors.def", texts["md"], texts["tsv"],
         texts["def"] + '\nX(CP_ERR_SELFTEST, NULL, "SELFTEST", 4999, "self test", "self test")\n'),
    ]
    for what, md, tsv, edef in mutations:
        if md is None:
            print("FAIL: self-test could not apply mutation: %s" % what)
            return 1
        if not check(md, tsv, edef):
            print("FAIL: self-test: the check did not notice %s" % what)
            return 1

    n_req = len(re.findall(r"\*\*\[" + ID_RE + r"\]\*\*", texts["md"]))
    n_rows = len(parse_errors_def(texts["def"]))
    print("ok: %d requirements indexed, %d outcome rows match errors.def, %d self-test mutations "
          "caught" % (n_req, n_rows, len(mutations)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
