/** Matchers (src/routing/matcher.ts): Alertmanager's syntax and semantics over Falco alerts. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMatcher, matcherFromObject, matchesAll, Matcher, type MatchOp } from '../../src/routing/matcher.ts';
import { RE2JS } from 're2js';
import { MatcherError } from '../../src/errors.ts';
import { exactNumber, parseLossless } from '../../src/event/json.ts';
import type { FalcoEvent } from '../../src/event/falco-event.ts';

function alert(over: Partial<FalcoEvent> = {}): FalcoEvent {
  return {
    uuid: 'u',
    output: '15:15:03.434319636: Notice A shell was spawned in a container (user=root shell=bash)',
    priority: 'Notice',
    rule: 'Terminal shell in container',
    time: '2025-04-02T15:15:03.434319636Z',
    source: 'syscall',
    hostname: 'node-1',
    tags: ['container', 'mitre_execution', 'shell'],
    output_fields: {
      'k8s.ns.name': 'team-a-payments',
      'proc.name': 'bash',
      'proc.aname[2]': 'containerd-shim',
      'evt.time': exactNumber('1743606903434319636'),
      'proc.pid': 4242,
      'fd.rport': 0,
      'evt.rate': 1.5,
      'container.privileged': true,
      'user.loginname': null,
      'k8s.pod.labels': parseLossless('{"app":"web","n":12345678901234567890}'),
      'proc.args': parseLossless('["-c","id"]'),
      'custom field = x': 'spaced',
      'ünïcode.name': 'yes',
    },
    ...over,
  };
}

const holds = (text: string, ev = alert()) => parseMatcher(text).matches(ev);

function check(cases: Array<[string, boolean]>, ev = alert()): void {
  for (const [text, want] of cases) assert.equal(holds(text, ev), want, text);
}

test('every operator on the alert\'s own strings: rule, priority, source, hostname, output', () => {
  check([
    ['rule="Terminal shell in container"', true],
    ['rule!="Terminal shell in container"', false],
    ['rule="Terminal shell"', false],
    ['rule!="Terminal shell"', true],
    ['rule=~"Terminal .* container"', true],
    ['rule!~"Terminal .* container"', false],
    ['priority="Notice"', true],
    ['priority=~"Notice|Warning"', true],
    ['source="syscall"', true],
    ['hostname=~"node-[0-9]+"', true],
    ['hostname!~"node-[0-9]+"', false],
    ['output=~".*shell=bash.*"', true],
  ]);
});

test('every operator on output fields by their Falco names, brackets included', () => {
  check([
    ['k8s.ns.name="team-a-payments"', true],
    ['k8s.ns.name!="team-a-payments"', false],
    ['k8s.ns.name=~"team-a-.*"', true],
    ['k8s.ns.name!~"team-a-.*"', false],
    ['k8s.ns.name=~"team-b-.*"', false],
    ['k8s.ns.name!~"team-b-.*"', true],
    ['proc.aname[2]="containerd-shim"', true],
    ['proc.aname[2]=~"containerd-.*"', true],
  ]);
});

test('regexes are fully anchored, as Alertmanager\'s: a part of the value is not a match', () => {
  check([
    ['rule=~"Shell"', false],
    ['rule=~"shell"', false],
    ['rule=~".*shell.*"', true],
    ['rule!~"shell"', true],
    ['k8s.ns.name=~"team-a"', false],
    ['k8s.ns.name=~"payments"', false],
    // An alternation is anchored as a whole: ^(?:a|ab)$, not ^a|ab$.
    ['proc.name=~"b|bash"', true],
    ['proc.name=~"ba|x"', false],
  ]);
});

test('matching is case-sensitive unless the regex says (?i)', () => {
  check([
    ['rule="terminal shell in container"', false],
    ['priority="notice"', false],
    ['rule=~"terminal.*"', false],
    ['rule=~"(?i)terminal.*"', true],
    ['proc.name="BASH"', false],
  ]);
});

test('RE2 syntax as in Go: classes, Unicode, \\Q…\\E; a dot does not match a newline unless (?s)', () => {
  const ev = alert({ output_fields: { 'proc.cmdline': 'sh -c "curl x | sh"\nid', n: '123', word: 'été', lit: 'a.*b' } });
  check(
    [
      ['n=~"\\d+"', true],
      ['n=~"[[:digit:]]{3}"', true],
      ['word=~"\\pL+"', true],
      ['lit=~"\\Qa.*b\\E"', true],
      ['lit=~"a\\.\\*b"', true],
      ['proc.cmdline=~".*curl.*"', false],
      ['proc.cmdline=~"(?s).*curl.*"', true],
    ],
    ev,
  );
});

test('the literal-prefix shortcut gives RE2\'s own answer (prefixes, literals, case folding, alternations, newlines)', () => {
  const patterns = ['team-a-.*', 'team-a-web', 'team-(a|b)-.*', 'team-a|team-b', 'a-x|b-x', '(?i)team-a-.*', 'team-[ab]', 'te+am', 'team-a-.*x', '', 'é+t.*', '\\.sh', 'x*', '(team)-a'];
  const inputs = ['team-a-web', 'team-a-', 'team-a', 'team-b-api', 'TEAM-a-web', 'team-a-\nweb', 'a-x', 'b-x', 'teeam', 'team-ax', '', 'éét', '.sh', 'xx', 'team-b'];
  for (const p of patterns) {
    const re = RE2JS.compile(p);
    const m = new Matcher('f', '=~', p);
    for (const input of inputs) {
      assert.equal(m.matches(alert({ output_fields: { f: input } })), re.matches(input), `${p} against ${JSON.stringify(input)}`);
    }
  }
});

test('numbers compare by their exact text: int64 stay exact, decimals as stored', () => {
  check([
    ['evt.time="1743606903434319636"', true],
    // The nearest double prints differently: an int64 read as a number would not match this.
    ['evt.time="1743606903434319600"', false],
    ['evt.time!="1743606903434319636"', false],
    ['evt.time=~"1743606903.*"', true],
    ['proc.pid="4242"', true],
    ['proc.pid="4242.0"', false],
    ['proc.pid="04242"', false],
    ['proc.pid!="4242"', false],
    ['proc.pid=~"42.*"', true],
    ['fd.rport="0"', true],
    ['evt.rate="1.5"', true],
    ['evt.rate=~"1\\.5"', true],
  ]);
});

test('booleans read true/false, null reads "", objects and arrays their compact JSON', () => {
  check([
    ['container.privileged="true"', true],
    ['container.privileged!="true"', false],
    ['container.privileged=~"t.*"', true],
    ['container.privileged="True"', false],
    ['user.loginname=""', true],
    ['user.loginname!=""', false],
    ['user.loginname=~".*"', true],
    ['k8s.pod.labels="{\\"app\\":\\"web\\",\\"n\\":12345678901234567890}"', true],
    ['k8s.pod.labels=~".*\\"app\\":\\"web\\".*"', true],
    ['proc.args="[\\"-c\\",\\"id\\"]"', true],
  ]);
});

test('a missing field reads as "" (Alertmanager): = "" holds, != "" does not, and names from Object.prototype are missing too', () => {
  check([
    ['container.image.repository=""', true],
    ['container.image.repository!=""', false],
    ['container.image.repository="nginx"', false],
    ['container.image.repository!="nginx"', true],
    ['container.image.repository=~".*"', true],
    ['container.image.repository=~".+"', false],
    ['container.image.repository!~".+"', true],
    ['constructor=""', true],
    ['toString!=""', false],
    ['__proto__=~".+"', false],
  ]);
  check([['hostname=""', true], ['hostname!=""', false]], alert({ hostname: '' }));
});

test('tags are a list: = and =~ hold when one tag does, != and !~ when none does', () => {
  check([
    ['tags="shell"', true],
    ['tags="container"', true],
    ['tags="network"', false],
    ['tags!="shell"', false],
    ['tags!="network"', true],
    ['tags=~"mitre_.*"', true],
    ['tags=~"mitre"', false],
    ['tags=~"net.*"', false],
    ['tags!~"mitre_.*"', false],
    ['tags!~"net.*"', true],
    // Not the list's text: each tag on its own.
    ['tags="container,mitre_execution,shell"', false],
    ['tags=~"container.*shell"', false],
  ]);
  // No tags reads as one empty tag, as a missing field reads "".
  check(
    [
      ['tags=""', true],
      ['tags!=""', false],
      ['tags="shell"', false],
      ['tags!="shell"', true],
      ['tags=~".*"', true],
      ['tags=~".+"', false],
      ['tags!~".+"', true],
    ],
    alert({ tags: [] }),
  );
});

test('names holding other characters are double-quoted (UTF-8, spaces, =), with \\" and \\\\ escapes', () => {
  check([
    ['"custom field = x"="spaced"', true],
    ['"ünïcode.name"="yes"', true],
    ['"k8s.ns.name"="team-a-payments"', true],
  ]);
  const ev = alert({ output_fields: { 'a"b\\c': 'v' } });
  assert.equal(holds('"a\\"b\\\\c"="v"', ev), true);
});

test('values take Go-style escapes; a backslash before another character stays, so regexes read as written', () => {
  const ev = alert({ output_fields: { q: 'say "hi"', b: 'C:\\temp', nl: 'a\nb', tab: 'a\tb', re: 'x.sh' } });
  check(
    [
      ['q="say \\"hi\\""', true],
      ['b="C:\\\\temp"', true],
      ['nl="a\\nb"', true],
      ['tab="a\\tb"', true],
      ['re=~".*\\.sh"', true],
      ['re=~".*\\\\.sh"', true],
      ['re=~"\\w+\\.sh"', true],
    ],
    ev,
  );
  assert.equal(parseMatcher('re=~".*\\.sh"').value, '.*\\.sh');
  assert.equal(parseMatcher('re=~".*\\\\.sh"').value, '.*\\.sh', 'both spellings give the same regex');
});

test('spaces around the operator and around the matcher are allowed', () => {
  for (const text of ['rule = "Terminal shell in container"', '  rule="Terminal shell in container"  ', 'rule\t=\t"Terminal shell in container"']) {
    const m = parseMatcher(text);
    assert.deepEqual([m.name, m.op, m.value], ['rule', '=', 'Terminal shell in container']);
  }
  assert.equal(parseMatcher('k8s.ns.name =~ "a|b"').op, '=~');
  assert.equal(parseMatcher('tags != "x"').op, '!=');
  assert.equal(parseMatcher('tags !~ "x"').op, '!~');
});

test('parse errors name the column (1-based, in characters) and what is wrong', () => {
  const bad: Array<[string, RegExp, number]> = [
    ['', /^empty matcher/, 1],
    ['   ', /^empty matcher/, 4],
    ['rule', /^unexpected end at column 5: expected an operator/, 5],
    ['rule=', /^unexpected end at column 6: expected a value in double quotes/, 6],
    ['rule=foo', /^unexpected 'f' at column 6: expected a value in double quotes/, 6],
    ["rule='x'", /^unexpected "'" at column 6/, 6],
    ['k8s.ns.name=="x"', /^unexpected '=' at column 13: expected a value in double quotes/, 13],
    ['k8s.ns.name = ="x"', /^unexpected '=' at column 15/, 15],
    ['rule~="x"', /^unexpected '~' at column 5: expected an operator/, 5],
    ['rule<"x"', /^unexpected '<' at column 5/, 5],
    ['ru le="x"', /^unexpected 'l' at column 4: expected an operator/, 4],
    ['=~"x"', /^unexpected '=' at column 1: a matcher starts with a name/, 1],
    ['k8s.ns-name="x"', /^unexpected '-' at column 7: a name holding characters other than .* is written in double quotes/, 7],
    ['é="x"', /^unexpected 'é' at column 1: .*double quotes/, 1],
    ['""="x"', /^empty name at column 1/, 1],
    ['"abc="x"', /^unexpected 'x' at column 7/, 7],
    ['"abc', /^unterminated quoted name starting at column 1$/, 1],
    ['rule="x', /^unterminated quoted value starting at column 6$/, 6],
    ['rule="x\\"', /^unterminated quoted value starting at column 6$/, 6],
    ['rule="x" y', /^unexpected 'y' at column 10: nothing may follow the value/, 10],
    ['rule="x", source="y"', /^unexpected ',' at column 9/, 9],
    ['proc.name=~"(a"', /^invalid regular expression at column 12: missing closing \)$/, 12],
    ['proc.name=~"a**"', /^invalid regular expression at column 12: invalid nested repetition operator \(`\*\*`\)$/, 12],
    ['x=~"(?=a)"', /^invalid regular expression at column 4: invalid or unsupported Perl syntax/, 4],
    ['x !~ "[z-a]"', /^invalid regular expression at column 6: invalid character class range/, 6],
    // Columns count characters, not UTF-16 units: the emoji is one column.
    ['"😀" = foo', /^unexpected 'f' at column 7/, 7],
  ];
  for (const [text, re, column] of bad) {
    assert.throws(
      () => parseMatcher(text),
      (err: unknown) => {
        assert.ok(err instanceof MatcherError, `${text}: ${String(err)}`);
        assert.equal(err.code, 'FR_ERR_MATCHER');
        assert.match(err.message, re, text);
        assert.equal(err.column, column, `${text}: column of ${err.message}`);
        return true;
      },
    );
  }
  // An equality value is not a regex: its text need not compile.
  assert.equal(parseMatcher('proc.name="(a"').value, '(a');
});

test('toString is canonical and parses back to an equal matcher', () => {
  const cases: Array<[string, string]> = [
    ['rule = "Terminal shell in container"', 'rule="Terminal shell in container"'],
    ['"k8s.ns.name" =~ "team-a-.*"', 'k8s.ns.name=~"team-a-.*"'],
    ['proc.aname[2]!="x"', 'proc.aname[2]!="x"'],
    ['"custom field = x" !~ "a\\"b"', '"custom field = x"!~"a\\"b"'],
    ['"ünïcode"="ü"', '"ünïcode"="ü"'],
    ['re=~".*\\.sh"', 're=~".*\\\\.sh"'],
    ['v="line\\nnext\\ttab\\r\\\\"', 'v="line\\nnext\\ttab\\r\\\\"'],
    ['"a\\\\b\\"c"=""', '"a\\\\b\\"c"=""'],
  ];
  for (const [text, canonical] of cases) {
    const m = parseMatcher(text);
    assert.equal(m.toString(), canonical, text);
    const again = parseMatcher(m.toString());
    assert.deepEqual([again.name, again.op, again.value], [m.name, m.op, m.value], text);
    assert.equal(JSON.stringify({ m }), JSON.stringify({ m: canonical }), 'JSON shows the canonical text');
  }
  // Built in code, any name and value round-trip, control characters included.
  // (route-test escapes what a terminal acts on only when it prints; the stored text keeps them.)
  for (const [name, value] of [['a b', 'x\u0001y'], ['x', '"\\\n\t\r'], ['weird"]', 'é'], ['esc', '\u001b[2J\u007f\u009b31m\u202e\u2066']] as const) {
    for (const op of ['=', '!=', '=~', '!~'] as MatchOp[]) {
      const m = new Matcher(name, op, op.includes('~') ? '.*' : value);
      const again = parseMatcher(m.toString());
      assert.deepEqual([again.name, again.op, again.value], [m.name, m.op, m.value]);
    }
  }
});

test('the object form is Alertmanager\'s API: isRegex, and isEqual defaulting to true', () => {
  const m = (o: Parameters<typeof matcherFromObject>[0]) => matcherFromObject(o).toString();
  assert.equal(m({ name: 'rule', value: 'Terminal shell in container' }), 'rule="Terminal shell in container"');
  assert.equal(m({ name: 'rule', value: 'x', isRegex: false, isEqual: true }), 'rule="x"');
  assert.equal(m({ name: 'rule', value: 'x', isEqual: false }), 'rule!="x"');
  assert.equal(m({ name: 'k8s.ns.name', value: 'dev-.*', isRegex: true }), 'k8s.ns.name=~"dev-.*"');
  assert.equal(m({ name: 'k8s.ns.name', value: 'dev-.*', isRegex: true, isEqual: false }), 'k8s.ns.name!~"dev-.*"');
  assert.equal(m({ name: 'a b', value: 'v' }), '"a b"="v"');
  assert.equal(matcherFromObject({ name: 'k8s.ns.name', value: 'team-a-.*', isRegex: true }).matches(alert()), true);
  for (const [o, re] of [
    [{ name: '', value: 'x' }, /"name" must be a non-empty string/],
    [{ name: 'rule' }, /"value" must be a string/],
    [{ name: 'rule', value: 1 }, /"value" must be a string/],
    [{ name: 'rule', value: 'x', isRegex: 'yes' }, /"isRegex" must be true or false/],
    [{ name: 'rule', value: '(x', isRegex: true }, /^invalid regular expression: missing closing \)$/],
  ] as const) {
    assert.throws(
      () => matcherFromObject(o as never),
      (err: unknown) => err instanceof MatcherError && re.test(err.message) && err.column === undefined,
    );
  }
});

test('matchesAll: every matcher must hold; an empty list holds', () => {
  const ev = alert();
  const list = (...t: string[]) => t.map(parseMatcher);
  assert.equal(matchesAll(list('k8s.ns.name=~"team-a-.*"', 'rule="Terminal shell in container"'), ev), true);
  assert.equal(matchesAll(list('k8s.ns.name=~"team-a-.*"', 'rule="Other"'), ev), false);
  assert.equal(matchesAll([], ev), true);
});

// The timeout is only a safety net (no speed is asserted): a backtracking engine would never finish.
test('a regex built to explode a backtracking engine runs in linear time on a 100 KB proc.cmdline, with the right answer', { timeout: 120_000 }, () => {
  // V8's RegExp (Node 20, this machine) on only 30 characters: /^(?:(a+)+$)$/ against 'a'×30 + '!'
  // took 3.6 s, /^(?:(x+x+)+y)$/ against 'x'×30 took 13.7 s, each further character doubling it.
  // RE2JS runs these on 100 KB in a few milliseconds.
  const big = 'a'.repeat(100_000);
  const cases: Array<[string, string, boolean]> = [
    ['proc.cmdline=~"(a+)+$"', `${big}!`, false],
    ['proc.cmdline=~"(a+)+$"', big, true],
    ['proc.cmdline=~"(a|a)*b"', big, false],
    ['proc.cmdline=~"(a|a)*b"', `${big}b`, true],
    ['proc.cmdline=~"(x+x+)+y"', 'x'.repeat(100_000), false],
    ['proc.cmdline!~"(a|aa)+c"', big, true],
    ['proc.cmdline=~".*(.*a){20}.*b"', big, false],
  ];
  for (const [text, cmdline, want] of cases) {
    const m = parseMatcher(text);
    const ev = alert({ output_fields: { 'proc.cmdline': cmdline } });
    // 50 evaluations each.
    for (let i = 0; i < 50; i++) assert.equal(m.matches(ev), want, text);
  }
});
