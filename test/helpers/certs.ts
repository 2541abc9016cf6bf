/**
 * Test certificates made with the system openssl: a CA, a server certificate for 127.0.0.1
 * (subjectAltName IP:127.0.0.1), a client certificate from the same CA, and a client certificate
 * from another CA (which the router must refuse).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './router.ts';

const OPENSSL = '/usr/bin/openssl';

export interface TestCerts {
  dir: string;
  /** Absolute path of a file in dir: ca.crt, server.crt, server.key, client.crt, client.key, stranger.crt, … */
  path(file: string): string;
  pem(file: string): Buffer;
}

export function makeCerts(): TestCerts {
  const dir = tempDir();
  const ssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  // P-256 keys: quick to generate, accepted by every TLS stack.
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
  for (const ca of ['ca', 'other-ca']) {
    ssl('req', '-x509', ...key, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=router test ${ca}`);
  }
  const leaf = (name: string, ca: string, ext: string) => {
    ssl('req', ...key, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext);
  };
  leaf('server', 'ca', 'server.ext');
  leaf('client', 'ca', 'client.ext');
  leaf('stranger', 'other-ca', 'client.ext');
  return { dir, path: (f) => join(dir, f), pem: (f) => readFileSync(join(dir, f)) };
}
