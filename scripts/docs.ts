/**
 * The configuration reference, generated from the schemas: the tables in docs/configuration.md and
 * docs/outputs/<type>.md sit between `<!-- generated:NAME -->` and `<!-- end generated -->` and are
 * written by `npm run docs`; test/unit/docs.test.ts fails when they differ from the schemas.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OutputType } from '../outputs/sdk/contract.ts';
import { globalSchema, instanceSchema } from '../src/config/schema.ts';
import { fields, envName, type Field } from '../src/config/walk.ts';

const cell = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

function shown(v: unknown): string {
  if (v === undefined) return '';
  if (typeof v === 'string') return v === '' ? '`""`' : `\`${v}\``;
  if (Array.isArray(v)) return v.length === 0 ? '`[]`' : `\`${JSON.stringify(v)}\``;
  if (v !== null && typeof v === 'object') return Object.keys(v).length === 0 ? '`{}`' : `\`${JSON.stringify(v)}\``;
  return `\`${String(v)}\``;
}

function defaultOf(f: Field): string {
  if (f.required) return 'required';
  return f.default === undefined ? 'type default' : shown(f.default);
}

function table(rows: Field[], key: (f: Field) => string, env: (f: Field) => string, secrets: readonly string[] = []): string {
  const lines = ['| Key | Env | Type | Default | Description |', '|---|---|---|---|---|'];
  for (const f of rows) {
    const secret = secrets.includes(f.path.split('.')[0]) ? ' Secret: masked by check-config, redacted from every log and error.' : '';
    const fileOnly = f.env === 'none' ? ' Set in the config file only (no environment variable).' : '';
    lines.push(`| \`${key(f)}\` | ${env(f) ? `\`${env(f)}\`` : ''} | ${cell(f.type)} | ${cell(defaultOf(f))} | ${cell(f.description + fileOnly + secret)} |`);
  }
  return lines.join('\n');
}

/** Every generated block, by name. */
export function referenceBlocks(types: readonly OutputType[]): Map<string, string> {
  const blocks = new Map<string, string>();
  const global = fields(globalSchema).filter((f) => f.path !== 'outputs');
  // Keys without an env variable (env: none, the matcher lists) show an empty Env cell.
  blocks.set('global', table(global, (f) => f.path, (f) => (f.env === 'none' ? '' : envName(f.path))));
  const common = fields(instanceSchema);
  blocks.set(
    'instance',
    table(
      common,
      (f) => f.path,
      (f) => (['name', 'type'].includes(f.path) || f.env === 'none' ? '' : `<SECTION>_${envName(f.path)}`),
    ),
  );
  for (const t of types) {
    const fk = t.falcosidekick;
    const own = fields(t.schema);
    const sharedKeys = new Set(fk?.shared ? fields(fk.shared.schema).map((f) => f.path) : []);
    const key = (f: Field) => (fk ? `${sharedKeys.has(f.path) ? `${fk.shared!.prefix}` : fk.prefix}.${f.path}` : f.path);
    const env = (f: Field) => (fk ? envName(key(f)) : '');
    const lines = [
      `Native: \`type: ${t.type}\` under \`outputs:\`, with the keys below${fk ? ` (without the \`${fk.prefix}.\`${fk.shared ? ` or \`${fk.shared.prefix}.\`` : ''} prefix)` : ''}.`,
      fk
        ? `falcosidekick: the \`${fk.prefix}\` section, enabled by \`${fk.prefix}.${fk.enabledBy}\`, makes one instance named \`${t.type}\`.` +
          (sharedKeys.size > 0 ? ` Keys shown as \`${fk.shared!.prefix}.*\` are shared by every ${fk.shared!.prefix.toUpperCase()} output and may also be set per output.` : '')
        : 'No falcosidekick section (falcosidekick has no such output).',
      `Defaults of this type: maxbatch ${t.defaults.maxBatch}${t.defaults.maxBatchLimit ? ` (at most ${t.defaults.maxBatchLimit}: one call per alert)` : ''}, concurrency ${t.defaults.concurrency}, linger ${t.defaults.linger ?? 0} ms, ratelimit ${t.defaults.rateLimit ?? 0}/s, summarizeabove ${t.defaults.summarizeAbove ?? 0}.`,
      '',
      table(own, key, env, t.secrets),
    ];
    blocks.set(`output:${t.type}`, lines.join('\n'));
  }
  return blocks;
}

const BLOCK = /<!-- generated:([\w:-]+) -->\n[\s\S]*?<!-- end generated -->/g;

/** The docs files holding generated blocks: configuration.md and one page per output type. */
export function docFiles(root: string, types: readonly OutputType[]): string[] {
  return [join(root, 'docs', 'configuration.md'), ...types.map((t) => join(root, 'docs', 'outputs', `${t.type}.md`))];
}

/** A doc's text with its generated blocks written anew; throws on a block name it does not know. */
export function regenerate(text: string, blocks: ReadonlyMap<string, string>): string {
  return text.replace(BLOCK, (_m, name: string) => {
    const body = blocks.get(name);
    if (body === undefined) throw new Error(`unknown generated block "${name}"`);
    return `<!-- generated:${name} -->\n${body}\n<!-- end generated -->`;
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { outputTypes } = await import('../outputs/index.ts');
  const root = join(import.meta.dirname, '..');
  const blocks = referenceBlocks(outputTypes);
  for (const file of docFiles(root, outputTypes)) {
    const before = readFileSync(file, 'utf8');
    const after = regenerate(before, blocks);
    if (after !== before) writeFileSync(file, after);
    process.stdout.write(`${after === before ? 'unchanged' : 'written'}: ${file}\n`);
  }
}
