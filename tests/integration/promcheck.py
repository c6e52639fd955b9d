#!/usr/bin/env python3
"""promcheck.py - a strict reader of the Prometheus text format 0.0.4, for
the metrics tests (t5020). Debian's promtool comes with the whole
Prometheus server, so the tests carry this instead (and run promtool too
when it is installed).

  promcheck.py FILE                   check; print problems, exit 1 if any
  promcheck.py FILE get NAME [L=V..]  print the sample's value (exit 1: none)
  promcheck.py FILE type NAME         print the family's TYPE
  promcheck.py FILE names             print every family name

Strict on purpose, more than Prometheus itself: every sample's family has
a TYPE line before it and HELP at most once, a family's lines are
together, names and label names are valid, label values use only the
three escapes, no sample repeats, counters end in _total and are not
negative, and each histogram's buckets are cumulative, ascending in le,
end in +Inf and agree with _count, with a _sum beside them.
"""
import math
import re
import sys

NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*')
LNAME = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*')
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


def parse_value(s):
    if s in ('NaN', '+Inf', '-Inf', 'Inf'):
        return float(s.replace('Inf', 'inf').replace('NaN', 'nan'))
    if not re.fullmatch(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?', s):
        raise ValueError('bad number %r' % s)
    return float(s)


def parse_labels(s, pos, errs, lineno):
    """s[pos] == '{'; returns (dict, pos after '}')."""
    labels = {}
    pos += 1
    while True:
        if pos < len(s) and s[pos] == '}':
            return labels, pos + 1
        m = LNAME.match(s, pos)
        if not m:
            raise ValueError('bad label name at column %d' % pos)
        name = m.group(0)
        if name.startswith('__'):
            raise ValueError('reserved label name %r' % name)
        pos = m.end()
        if s[pos:pos + 2] != '="':
            raise ValueError('expected =" after label %r' % name)
        pos += 2
        val = []
        while True:
            if pos >= len(s):
                raise ValueError('unterminated label value')
            c = s[pos]
            if c == '\\':
                nxt = s[pos + 1:pos + 2]
                if nxt == 'n':
                    val.append('\n')
                elif nxt in ('\\', '"'):
                    val.append(nxt)
                else:
                    raise ValueError('bad escape \\%s in label value' % nxt)
                pos += 2
            elif c == '"':
                pos += 1
                break
            else:
                val.append(c)
                pos += 1
        if name in labels:
            raise ValueError('label %r twice' % name)
        labels[name] = ''.join(val)
        if pos < len(s) and s[pos] == ',':
            pos += 1
        elif pos < len(s) and s[pos] == '}':
            continue
        else:
            raise ValueError('expected , or } after a label')


def family_of(name, types):
    for suf in ('_bucket', '_sum', '_count'):
        if name.endswith(suf) and types.get(name[:-len(suf)]) in (
                'histogram', 'summary'):
            return name[:-len(suf)]
    return name


def parse(text):
    errs = []
    types, helps, samples = {}, {}, {}
    order = []          # families in the order their lines came
    last_family = None
    sampled = set()     # families that have samples so far
    if text and not text.endswith('\n'):
        errs.append('the text does not end in a newline')
    for lineno, line in enumerate(text.split('\n')[:-1], 1):
        where = 'line %d' % lineno
        if line == '':
            continue
        if line.startswith('#'):
            parts = line.split(' ', 3)
            if len(parts) >= 3 and parts[1] in ('HELP', 'TYPE'):
                name = parts[2]
                if not NAME.fullmatch(name):
                    errs.append('%s: bad metric name %r' % (where, name))
                    continue
                if parts[1] == 'HELP':
                    if name in helps:
                        errs.append('%s: second HELP for %s' % (where, name))
                    h = parts[3] if len(parts) > 3 else ''
                    if re.search(r'\\[^n\\]|\\$', h):
                        errs.append('%s: bad escape in HELP' % where)
                    helps[name] = h
                else:
                    t = parts[3] if len(parts) > 3 else ''
                    if t not in TYPES:
                        errs.append('%s: bad type %r' % (where, t))
                    if name in types:
                        errs.append('%s: second TYPE for %s' % (where, name))
                    if name in sampled:
                        errs.append('%s: TYPE of %s after its samples' %
                                    (where, name))
                    types[name] = t
                if name != last_family:
                    if name in order:
                        errs.append('%s: %s is split' % (where, name))
                    order.append(name)
                    last_family = name
            continue
        try:
            m = NAME.match(line)
            if not m:
                raise ValueError('bad metric name')
            name = m.group(0)
            pos = m.end()
            labels = {}
            if pos < len(line) and line[pos] == '{':
                labels, pos = parse_labels(line, pos, errs, lineno)
            if line[pos:pos + 1] != ' ':
                raise ValueError('expected a space before the value')
            rest = line[pos + 1:].split(' ')
            if len(rest) not in (1, 2):
                raise ValueError('trailing text')
            value = parse_value(rest[0])
            if len(rest) == 2 and not re.fullmatch(r'-?\d+', rest[1]):
                raise ValueError('bad timestamp')
        except ValueError as e:
            errs.append('%s: %s: %r' % (where, e, line))
            continue
        fam = family_of(name, types)
        if fam not in types:
            errs.append('%s: %s has no TYPE line before it' % (where, name))
        if fam != last_family:
            if fam in order:
                errs.append('%s: the lines of %s are split' % (where, fam))
            order.append(fam)
            last_family = fam
        sampled.add(fam)
        key = (name, tuple(sorted(labels.items())))
        if key in samples:
            errs.append('%s: sample repeated: %s' % (where, line))
        samples[key] = value
        t = types.get(fam)
        if t == 'counter':
            if not name.endswith('_total'):
                errs.append('%s: counter %s does not end in _total' %
                            (where, name))
            if value < 0 or math.isnan(value):
                errs.append('%s: counter %s is %r' % (where, name, value))
        if t == 'histogram' and name == fam:
            errs.append('%s: histogram sample without a suffix' % where)
    errs += check_histograms(types, samples)
    return errs, types, samples


def check_histograms(types, samples):
    errs = []
    for fam, t in types.items():
        if t != 'histogram':
            continue
        series = {}
        for (name, labels), v in samples.items():
            if name != fam + '_bucket':
                continue
            d = dict(labels)
            if 'le' not in d:
                errs.append('%s_bucket without le' % fam)
                continue
            le = parse_value(d.pop('le'))
            series.setdefault(tuple(sorted(d.items())), []).append((le, v))
        for key, buckets in series.items():
            les = [le for le, _ in buckets]
            if les != sorted(les) or len(set(les)) != len(les):
                errs.append('%s%s: le not ascending' % (fam, dict(key)))
            if not les or les[-1] != math.inf:
                errs.append('%s%s: no +Inf bucket' % (fam, dict(key)))
            counts = [v for _, v in sorted(buckets)]
            if any(a > b for a, b in zip(counts, counts[1:])):
                errs.append('%s%s: buckets not cumulative' % (fam, dict(key)))
            cnt = samples.get((fam + '_count', key))
            if cnt is None or (counts and cnt != counts[-1]):
                errs.append('%s%s: _count %r, +Inf bucket %r' %
                            (fam, dict(key), cnt, counts[-1:]))
            if (fam + '_sum', key) not in samples:
                errs.append('%s%s: no _sum' % (fam, dict(key)))
    return errs


def main():
    text = open(sys.argv[1], encoding='utf-8').read()
    errs, types, samples = parse(text)
    cmd = sys.argv[2] if len(sys.argv) > 2 else 'check'
    if cmd == 'check':
        for e in errs:
            print(e)
        print('%d families, %d samples, %d problems' %
              (len(types), len(samples), len(errs)))
        return 1 if errs else 0
    if cmd == 'names':
        for n in types:
            print(n)
        return 0
    if cmd == 'type':
        t = types.get(sys.argv[3])
        print(t or '')
        return 0 if t else 1
    if cmd == 'get':
        want = dict(a.split('=', 1) for a in sys.argv[4:])
        for (name, labels), v in samples.items():
            if name == sys.argv[3] and dict(labels) == want:
                print(int(v) if math.isfinite(v) and v == int(v) else v)
                return 0
        return 1
    print('unknown command %r' % cmd, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main())
