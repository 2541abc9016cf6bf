import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../../test/helpers/router.ts';

/**
 * Client certificate files (mutualtls) for an HTTP output's set-up to read (global
 * mutualtlsclient.*). Over http:// they are read but not used, so their absence breaks set-up and
 * any content fixes it.
 */
export function clientCertificateFiles() {
  const dir = tempDir();
  const files = { certfile: join(dir, 'client.crt'), keyfile: join(dir, 'client.key'), cacertfile: join(dir, 'ca.crt') };
  const write = () => Object.values(files).forEach((f) => writeFileSync(f, 'placeholder\n'));
  write();
  return { files, break: () => Object.values(files).forEach((f) => rmSync(f, { force: true })), fix: write };
}
