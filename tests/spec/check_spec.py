#!/usr/bin/env python3
"""check_spec.py: checks that spec/pairing.md agrees with spec/requirements.tsv, with the
outcome table protocol/errors.def, and with the conformance cases that quote it.

Usage: check_spec.py SOURCE_ROOT

Checks:
  1. every **[ID]** paragraph in pairing.md appears once, and exactly those ids are in
     requirements.tsv (header, four columns, level MUST or SHOULD, section where the id is defined);
  2. every [ID] cited anywhere in pairing.md is defined;
  3. every row of errors.def is in the §7 table with the same wire code, details.code, close code
     and reason, and the table has no other row;
  4. the §7 message list gives each row's errors.def message;
  5. every case under conformance/cases and conformance/client-cases cites a requirement of requirements.tsv, its `level` is
     that requirement's level, and its `sentence` is a verbatim quote of pairing.md (white space
     runs count as one space, so a quote may span the spec's line breaks) that carries that level
     word or comes from the requirement's own paragraph: a report then shows the reader the
     spec's own words, never a paraphrase.
Then it proves it can fail: it re-runs the checks on copies with one close code changed, one
requirement dropped from the index, one reason changed, one row added, one case's level changed
and one word of one case's sentence changed, and expects an error each time. Exit status 0 when all is well, 1 otherwise. Standard library only.
"""
import glob
import json
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


def squash(text):
    """Text with every run of white space made one space, for quotes that span line breaks."""
    return re.sub(r"\s+", " ", text).strip()


def requirement_paragraphs(md):
    """{id: the squashed text of its **[ID]** paragraph: up to the next blank line, and on
    through a list that follows it ("`hello-ok` MUST carry:" and its items)}."""
    out, lines = {}, md.splitlines()
    for ln, line in enumerate(lines):
        m = re.search(r"\*\*\[(" + ID_RE + r")\]\*\*", line)
        if not m or m.group(1) in out:
            continue
        para = []
        for i in range(ln, len(lines)):
            if para and not lines[i].strip():
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                if not re.match(r"^(- |\d+\. )", nxt):
                    break
            para.append(lines[i])
        out[m.group(1)] = squash(" ".join(para))
    return out


def read_index(tsv):
    """requirements.tsv as {id: level}; malformed lines are left to check()."""
    out = {}
    for line in tsv.splitlines()[1:]:
        f = line.split("\t")
        if len(f) == 4:
            out[f[0]] = f[1]
    return out


def check_cases(md, tsv, cases):
    """Each case (path, parsed JSON) against the index and the spec's own words."""
    errs = []
    index = read_index(tsv)
    spec = squash(md)
    paras = requirement_paragraphs(md)
    for path, c in cases:
        if not isinstance(c, dict):
            errs.append("%s: not a JSON object" % path)
            continue
        rid, level, sentence = c.get("requirement"), c.get("level"), c.get("sentence")
        if rid not in index:
            errs.append("%s: requirement %r is not in requirements.tsv" % (path, rid))
            continue
        if level != index[rid]:
            errs.append("%s: level %r, but requirements.tsv says %s is %s"
                        % (path, level, rid, index[rid]))
        if not isinstance(sentence, str) or not sentence.strip():
            errs.append("%s: no sentence" % path)
            continue
        quote = squash(sentence)
        if quote not in spec:
            errs.append("%s: sentence is not a verbatim quote of spec/pairing.md: %r"
                        % (path, sentence[:100]))
        elif index[rid] not in sentence and quote not in paras.get(rid, ""):
            errs.append("%s: the quote neither carries the word %s nor comes from the paragraph "
                        "of %s" % (path, index[rid], rid))
    return errs


def load_cases(root):
    """Every conformance case, of the gateway mode (cases/) and of the client mode
    (client-cases/), as (path relative to root, parsed JSON or None)."""
    out = []
    for p in sorted(glob.glob(os.path.join(root, "conformance", "cases", "*", "*.json")) +
                    glob.glob(os.path.join(root, "conformance", "client-cases", "*", "*.json"))):
        rel = os.path.relpath(p, root)
        try:
            with open(p, encoding="utf-8") as f:
                out.append((rel, json.load(f)))
        except (OSError, ValueError) as e:
            out.append((rel, "unreadable: %s" % e))
    return out


def mutate_case_level(cases):
    """The cases with the first case's level flipped between MUST and SHOULD."""
    if not cases or not isinstance(cases[0][1], dict):
        return None
    c = dict(cases[0][1])
    c["level"] = "SHOULD" if c.get("level") == "MUST" else "MUST"
    return [(cases[0][0], c)] + cases[1:]


def mutate_case_sentence(cases):
    """The cases with one word of the first case's sentence replaced."""
    if not cases or not isinstance(cases[0][1], dict):
        return None
    c = dict(cases[0][1])
    words = str(c.get("sentence", "")).split(" ")
    if len(words) < 2:
        return None
    words[len(words) // 2] = "paraphrased"
    c["sentence"] = " ".join(words)
    return [(cases[0][0], c)] + cases[1:]


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

    cases = load_cases(root)
    if not cases:
        print("FAIL: no conformance cases under %s" % os.path.join(root, "conformance", "cases"))
        return 1
    errs = check(texts["md"], texts["tsv"], texts["def"]) + check_cases(texts["md"], texts["tsv"],
                                                                          cases)
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
    for what, mutated in (("one case's level changed", mutate_case_level(cases)),
                          ("one word of one case's sentence changed",
                           mutate_case_sentence(cases))):
        if mutated is None:
            print("FAIL: self-test could not apply mutation: %s" % what)
            return 1
        if not check_cases(texts["md"], texts["tsv"], mutated):
            print("FAIL: self-test: the check did not notice %s" % what)
            return 1
        mutations.append((what,))

    n_req = len(re.findall(r"\*\*\[" + ID_RE + r"\]\*\*", texts["md"]))
    n_rows = len(parse_errors_def(texts["def"]))
    print("ok: %d requirements indexed, %d outcome rows match errors.def, %d cases quote the spec "
          "at their requirement's level, %d self-test mutations caught"
          % (n_req, n_rows, len(cases), len(mutations)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
