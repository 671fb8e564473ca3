#!/usr/bin/env python3
"""The metric names that PromQL expressions use, for monitoring_rules.

usage: promql_names.py rules FILE       names in the rules file's expr:s
       promql_names.py dashboard FILE   names in a Grafana dashboard's
                                        queries (expr, template queries)
       promql_names.py series FILE...   names of promtool test input series
       promql_names.py as-rules FILE    the dashboard's queries as a rules
                                        file (recording rules), so that
                                        promtool check rules parses them

Prints one name per line, sorted. Exits 1 when a file holds no expression
or an expression yields no name: a parse that found nothing must not pass
as a check that found nothing missing. Standard library only.
"""
import json
import re
import sys

# Words that are not metric names when not followed by "(".
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring",
            "group_left", "group_right", "offset", "bool", "inf", "nan"}
STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
GRAFANA_VAR = re.compile(r'\$\{[^}]*\}|\$\w+')
LABEL_LIST = re.compile(
    r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)')
TOKEN = re.compile(r'\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-zA-Z]*'
                   r'|[a-zA-Z_:][a-zA-Z0-9_:]*')


def names(expr):
    """Metric names of one PromQL expression (Grafana variables allowed)."""
    if "__name__" in expr:
        raise ValueError("a __name__ matcher is not understood: " + expr)
    e = STRING.sub(" ", expr)           # label values, template strings
    e = GRAFANA_VAR.sub(" ", e)          # $instance, $__rate_interval
    e = re.sub(r'\{[^{}]*\}', " ", e)   # label matchers
    e = re.sub(r'\[[^\]]*\]', " ", e)   # ranges and subqueries
    e = re.sub(r'\boffset\s+-?[0-9a-z]+', " ", e)
    e = re.sub(r'@\s*[\w.()]+', " ", e)
    e = LABEL_LIST.sub(" ", e)           # by (...), on (...), ...
    out = set()
    for m in TOKEN.finditer(e):
        w = m.group(0)
        if w[0].isdigit() or w in KEYWORDS:
            continue
        if re.match(r'\s*\(', e[m.end():]):
            continue                    # a function or an aggregation
        out.add(w)
    return out


def rules_exprs(path):
    """expr: values of a rules file: one line, or a block after 'expr: |'."""
    exprs, lines = [], open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r'^(\s*)(?:- )?expr:\s*(.*)$', lines[i])
        i += 1
        if not m:
            continue
        indent, rest = len(m.group(1)), m.group(2).strip()
        if rest in ("|", "|-", "|+", ">", ">-", "|2"):
            if rest.startswith(">"):
                raise ValueError(f"{path}: folded expr (>) not understood")
            block = []
            while i < len(lines) and (lines[i].strip() == "" or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            rest = "\n".join(block).strip()
        elif rest[:1] in "'\"":
            rest = rest[1:-1]
        exprs.append(rest)
    n_alerts = sum(1 for l in lines if re.match(r'^\s*- (alert|record):', l))
    if len(exprs) != n_alerts:
        raise ValueError(f"{path}: {n_alerts} rules but {len(exprs)} expr:")
    return exprs


def dashboard_exprs(path):
    d = json.load(open(path, encoding="utf-8"))
    exprs = []

    def walk(o):
        if isinstance(o, dict):
            if isinstance(o.get("expr"), str):
                exprs.append(o["expr"])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        if not isinstance(q, str) or not q:
            continue
        m = re.match(r'^\s*label_values\(\s*(.*),\s*\w+\s*\)\s*$', q)
        exprs.append(m.group(1) if m else q)
    return exprs


def series_names(paths):
    out = set()
    for p in paths:
        for m in re.finditer(r"series:\s*'([a-zA-Z_:][a-zA-Z0-9_:]*)",
                             open(p, encoding="utf-8").read()):
            out.add(m.group(1))
    return out


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    mode, files = argv[1], argv[2:]
    if mode == "series":
        found = series_names(files)
        if not found:
            sys.exit("no input series in " + " ".join(files))
        print("\n".join(sorted(found)))
        return
    exprs = rules_exprs(files[0]) if mode == "rules" else dashboard_exprs(files[0])
    if not exprs:
        sys.exit(f"{files[0]}: no expression found")
    if mode == "as-rules":
        print("groups:\n  - name: dashboard\n    rules:")
        for i, e in enumerate(exprs):
            e = e.replace("$__rate_interval", "5m")
            e = GRAFANA_VAR.sub(".*", e)
            print(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e)}")
        return
    found = set()
    for e in exprs:
        n = names(e)
        if not n:
            sys.exit(f"{files[0]}: no metric name in: {e}")
        found |= n
    print("\n".join(sorted(found)))


if __name__ == "__main__":
    try:
        main(sys.argv)
    except ValueError as e:
        sys.exit(str(e))
