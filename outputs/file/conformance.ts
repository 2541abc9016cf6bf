import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Conformance } from '../sdk/testkit/conformance.ts';
import { tempDir } from '../../test/helpers/router.ts';
import { markerOf } from '../../test/fixtures/events.ts';

export const conformance: Conformance = {
  supports: [],
  unsupportedBecause: 'a local file has no remote side to fail, refuse, throttle or hang (its own failures are in file.test.ts)',
  async start() {
    const path = join(tempDir(), 'events.ndjson');
    const lines = () => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);
    return {
      settings: { path },
      secrets: [],
      delivered: () => lines().map(markerOf),
      calls: () => lines().length,
      next: () => {
        throw new Error('the file output has no remote side to script');
      },
      close: async () => {},
    };
  },
};
