/** The reference tables in docs/ are generated from the config schemas (`npm run docs`); they must not drift. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { outputTypes } from '../../outputs/index.ts';
import { docFiles, referenceBlocks, regenerate } from '../../scripts/docs.ts';
import { RESTART_KEYS } from '../../src/app.ts';

const ROOT = join(import.meta.dirname, '..', '..');

test('every output type has a docs page, and every generated table matches the schemas', () => {
  const blocks = referenceBlocks(outputTypes);
  const used = new Set<string>();
  for (const file of docFiles(ROOT, outputTypes)) {
    assert.ok(existsSync(file), `${file} is missing`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/<!-- generated:([\w:-]+) -->/g)) used.add(m[1]);
    assert.equal(text, regenerate(text, blocks), `${file} differs from the schemas: run \`npm run docs\``);
  }
  assert.deepEqual([...blocks.keys()].filter((b) => !used.has(b)), [], 'every generated table appears in the docs');
});

test('docs/operations.md names every setting a reload cannot change', () => {
  const text = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  const reloading = text.slice(text.indexOf('## Reloading the configuration'), text.indexOf('## Checking a configuration'));
  const sentence = reloading.replace(/\s+/g, ' ').split(/\. /).find((x) => x.includes('need a restart')) ?? '';
  const named = [...sentence.matchAll(/`([a-z]+)(\.\*)?`/g)].map((m) => m[1]);
  assert.deepEqual(named.sort(), [...RESTART_KEYS].sort(), sentence);
});
