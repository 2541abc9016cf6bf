/**
 * Go text/template, as falcosidekick users write it (`templatedfields`, Slack `messageformat`),
 * through @mdfriday/text-template, a TypeScript port of Go's package.
 */
import { New } from '@mdfriday/text-template';

export interface CompiledTemplate {
  readonly source: string;
  render(data: unknown): Promise<string>;
}

/** Parses a template; throws with the parser's message when it is not valid. */
export function compileTemplate(name: string, source: string): CompiledTemplate {
  const [tmpl, err] = New(name).Parse(source);
  if (err || !tmpl) throw new Error(`not a valid Go template: ${String(err?.message ?? err)}`);
  return {
    source,
    async render(data: unknown): Promise<string> {
      const [out, execErr] = await tmpl.Execute(data);
      if (execErr) throw new Error(String(execErr?.message ?? execErr));
      return out;
    },
  };
}
