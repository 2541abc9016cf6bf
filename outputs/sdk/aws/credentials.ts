/**
 * What every AWS output shares: falcosidekick's `aws.*` settings (region, static keys, an
 * optional role to assume, the start-up identity check), an `endpoint` per output, and the client
 * options built from them.
 *
 * - Empty keys: the SDK's default chain (AWS_ACCESS_KEY_ID…, shared profile, IRSA web identity,
 *   ECS/EC2 metadata). The SDK also honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.
 * - `rolearn`: STS AssumeRole (session `falco-router-<uuid>`, optional `externalid`), made with the
 *   keys above or the default chain; the SDK refreshes it before it expires.
 * - `checkidentity` (default true): STS GetCallerIdentity in the output's set-up; a failure names
 *   the setting, and the pipeline keeps the alerts and runs the set-up again with backoff.
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { STSClient, AssumeRoleCommand, GetCallerIdentityCommand, type STSClientConfig } from '@aws-sdk/client-sts';
import { bool, optionalHttpUrl } from '../../../src/config/fields.ts';
import type { FalcosidekickSection, OutputLogger } from '../contract.ts';
import { awsErrorCode } from './errors.ts';
import { OutputError } from '../../../src/errors.ts';

/** falcosidekick's shared `aws.*` keys (env AWS_REGION, AWS_ACCESSKEYID, …, AWS_CHECKIDENTITY), plus aws.stsendpoint. */
const sharedShape = {
  region: z.string().default('').describe("AWS region; empty means the SDK's (AWS_REGION, AWS_DEFAULT_REGION, profile)."),
  accesskeyid: z.string().default('').describe("Static access key id; empty means the SDK's default credential chain (IRSA, instance profile, …)."),
  secretaccesskey: z.string().default('').describe('Static secret access key, with accesskeyid.'),
  rolearn: z.string().default('').describe('A role to assume with STS, using the keys above or the default chain.'),
  externalid: z.string().default('').describe("ExternalId for AssumeRole (a third-party account's condition)."),
  checkidentity: bool.default(true).describe('STS GetCallerIdentity before the first send; while it fails, the alerts wait and it is tried again.'),
  // Ours (falcosidekick has no such key): one STS endpoint for every AWS output.
  stsendpoint: optionalHttpUrl.describe("STS endpoint for AssumeRole and the identity check; empty means the SDK's."),
};

/** Settings every AWS output accepts; spread into the output's own z.object. */
export const awsSettingsShape = {
  ...sharedShape,
  endpoint: optionalHttpUrl.describe("Service endpoint (a VPC endpoint, LocalStack, a test fake); empty means the SDK's."),
};

const settingsObject = z.object(awsSettingsShape);
export type AwsSettings = z.output<typeof settingsObject>;

/** The shared section, for each AWS output's FalcosidekickSection. */
export const awsShared: NonNullable<FalcosidekickSection['shared']> = { prefix: 'aws', schema: z.object(sharedShape) };

/** Settings masked wherever config is shown. */
export const AWS_SECRETS = ['accesskeyid', 'secretaccesskey', 'externalid'] as const;

type Credentials = NonNullable<STSClientConfig['credentials']>;

/** Options every SDK client of an output is built with. */
export interface AwsClientOptions {
  region: string;
  credentials?: Credentials;
  endpoint?: string;
  /**
   * 1: the delivery worker owns retries (backoff, Retry-After, attempts, dead-letter, metrics);
   * SDK retries inside an attempt would multiply them and hide throttling from the logs.
   */
  maxAttempts: number;
}

export interface AwsSetup {
  client: AwsClientOptions;
  /** The identity checked in set-up, when checkidentity is on. */
  identity?: { arn: string; account: string };
  /** Closes the STS client kept for refreshing assumed-role credentials. */
  close(): void;
}

const IDENTITY_TIMEOUT_MS = 10_000;
const ASSUME_FAILED = Symbol('assumeRoleFailed');
const REFRESH_BEFORE_MS = 10 * 60_000;

/** Resolves region and credentials for one output and runs the identity check. Throws Error naming the setting. */
export async function setupAws(name: string, cfg: AwsSettings, logger: OutputLogger, signal?: AbortSignal): Promise<AwsSetup> {
  // The set-up's signal bounds the STS calls of the set-up, not the role's later renewals.
  let setupSignal = signal;
  const limit = () => (setupSignal ? AbortSignal.any([setupSignal, AbortSignal.timeout(IDENTITY_TIMEOUT_MS)]) : AbortSignal.timeout(IDENTITY_TIMEOUT_MS));
  if ((cfg.accesskeyid === '') !== (cfg.secretaccesskey === '')) {
    const missing = cfg.accesskeyid === '' ? 'aws.accesskeyid' : 'aws.secretaccesskey';
    const other = cfg.accesskeyid === '' ? 'aws.secretaccesskey' : 'aws.accesskeyid';
    throw new Error(`${missing}: is empty while ${other} is set; set both, or neither to use the SDK's default credential chain`);
  }
  const region = cfg.region || (await sdkRegion());
  if (!region) {
    throw new Error(`aws.region: no AWS region for output "${name}"; set aws.region (env AWS_REGION) or the output's region setting`);
  }
  if (cfg.externalid !== '' && cfg.rolearn === '') {
    throw new Error('aws.externalid: is set but aws.rolearn is empty; the external id only applies when a role is assumed');
  }

  const base: Credentials | undefined = cfg.accesskeyid !== '' ? { accessKeyId: cfg.accesskeyid, secretAccessKey: cfg.secretaccesskey } : undefined;
  const stsEndpoint = cfg.stsendpoint || undefined;
  const stsClients: STSClient[] = [];
  let credentials: Credentials | undefined = base;

  if (cfg.rolearn !== '') {
    // One session name per output instance, so CloudTrail shows which router made the calls.
    const sessionName = `falco-router-${randomUUID()}`;
    const sts = new STSClient({ region, credentials: base, endpoint: stsEndpoint, maxAttempts: 3 });
    stsClients.push(sts);
    const assume = async () => {
      let out;
      try {
        out = await sts.send(
          new AssumeRoleCommand({ RoleArn: cfg.rolearn, RoleSessionName: sessionName, ExternalId: cfg.externalid || undefined, DurationSeconds: 3600 }),
          { abortSignal: limit() },
        );
      } catch (err) {
        // Keep the error's name (it decides retry or not) but say it was the role, not the service.
        const e = err as Error & { [ASSUME_FAILED]?: boolean };
        e.message = `AssumeRole ${cfg.rolearn} failed: ${e.message}`;
        e[ASSUME_FAILED] = true;
        throw e;
      }
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`AssumeRole ${cfg.rolearn} returned no credentials`);
      logger.debug({ role: cfg.rolearn, session: sessionName, expires: c.Expiration?.toISOString() }, 'assumed AWS role');
      return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration };
    };
    // Shared by the output's clients (and the identity check): one AssumeRole per session, renewed
    // REFRESH_BEFORE_MS before expiry. The SDK asks again 5 minutes before expiry, so this is earlier.
    let cached: Awaited<ReturnType<typeof assume>> | undefined;
    let pending: Promise<Awaited<ReturnType<typeof assume>>> | undefined;
    credentials = async () => {
      if (cached && (!cached.expiration || cached.expiration.getTime() - Date.now() > REFRESH_BEFORE_MS)) return cached;
      pending ??= assume().finally(() => {
        pending = undefined;
      });
      cached = await pending;
      return cached;
    };
  }

  const setup: AwsSetup = {
    client: { region, credentials, endpoint: cfg.endpoint || undefined, maxAttempts: 1 },
    close: () => stsClients.forEach((c) => c.destroy()),
  };

  if (cfg.checkidentity) {
    const sts = new STSClient({ region, credentials, endpoint: stsEndpoint, maxAttempts: 2 });
    try {
      const id = await sts.send(new GetCallerIdentityCommand({}), { abortSignal: limit() });
      setup.identity = { arn: id.Arn ?? '', account: id.Account ?? '' };
      logger.info({ arn: id.Arn, account: id.Account }, `AWS identity of output ${name}: ${id.Arn}`);
    } catch (err) {
      setup.close();
      const e = err as Error & { [ASSUME_FAILED]?: boolean };
      const code = awsErrorCode(err);
      const detail = e.message && e.message !== code ? `${code}: ${e.message}` : code;
      if (e[ASSUME_FAILED]) throw new Error(`aws.rolearn: ${detail} (checked before the first send because aws.checkidentity is true)`);
      throw new Error(`aws.checkidentity: identity check failed: ${detail} (fix the credentials, or set aws.checkidentity: false to skip the check)`);
    } finally {
      sts.destroy();
    }
  }
  setupSignal = undefined;
  return setup;
}

/** The region the SDK would find by itself (env, shared config), or '' when it finds none. */
async function sdkRegion(): Promise<string> {
  const probe = new STSClient({});
  try {
    return await probe.config.region();
  } catch {
    return '';
  } finally {
    probe.destroy();
  }
}

/**
 * An AWS output's SDK client, built by its set-up with the credentials that set-up resolved. A
 * set-up the pipeline has given up on (its timeout, a stop) does not replace the client of the one
 * after it; a send before set-up or after close fails as retryable rather than with a TypeError.
 */
export class AwsClient<C extends { destroy(): void }> {
  #current?: { setup: AwsSetup; client: C };

  constructor(
    private readonly what: string,
    private readonly make: (options: AwsClientOptions) => C,
  ) {}

  async setup(name: string, cfg: AwsSettings, logger: OutputLogger, signal: AbortSignal): Promise<void> {
    const setup = await setupAws(name, cfg, logger, signal);
    if (signal.aborted) {
      setup.close();
      throw new Error('set-up was cancelled');
    }
    const previous = this.#current;
    this.#current = { setup, client: this.make(setup.client) };
    previous?.client.destroy();
    previous?.setup.close();
  }

  get client(): C {
    if (!this.#current) throw new OutputError(`${this.what}: the output is not set up, or already closed`, { reason: 'other', retryable: true });
    return this.#current.client;
  }

  close(): void {
    this.#current?.client.destroy();
    this.#current?.setup.close();
    this.#current = undefined;
  }
}
