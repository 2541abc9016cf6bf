/**
 * A local STS (Query protocol, XML replies) for GetCallerIdentity and AssumeRole. It records the
 * access key each call was signed with, hands out temporary credentials (ASIA…, with a session
 * token and an expiry) and can be told to refuse the caller, as AWS does for bad keys.
 */
import { randomUUID } from 'node:crypto';
import { startFakeServer, queryError, queryResult, xmlEscape } from './aws-fake.ts';

const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/';
export const ACCOUNT = '123456789012';

export interface StsCall {
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
  sessionToken?: string;
  error?: string;
}

export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

export interface StsFake {
  url: string;
  calls: StsCall[];
  issued: IssuedCredentials[];
  /** Refuse every call from now on with this error (403 unless said otherwise). */
  /** Refuses every call; `echo` appends the request's Authorization header to the message, as some proxies do. */
  refuse(code: string, message: string, status?: number, echo?: boolean): void;
  accept(): void;
  /** Lifetime of the credentials AssumeRole hands out (default one hour). */
  setCredentialLifetime(ms: number): void;
  close(): Promise<void>;
}

export async function startStsFake(): Promise<StsFake> {
  const calls: StsCall[] = [];
  const issued: IssuedCredentials[] = [];
  let refusal: { code: string; message: string; status: number; echo: boolean } | undefined;
  let lifetime = 3_600_000;

  const server = await startFakeServer((req, res) => {
    const params = Object.fromEntries(new URLSearchParams(req.body));
    const call: StsCall = { action: params.Action ?? '', params, accessKeyId: req.accessKeyId, sessionToken: req.sessionToken };
    calls.push(call);
    if (refusal) {
      call.error = refusal.code;
      const echoed = refusal.echo ? ` (request: ${String(req.headers.authorization ?? '')})` : '';
      return queryError(res, refusal.status, refusal.code, refusal.message + echoed, XMLNS);
    }
    if (call.action === 'GetCallerIdentity') {
      const assumed = issued.find((c) => c.accessKeyId === req.accessKeyId);
      const arn = assumed ? `arn:aws:sts::${ACCOUNT}:assumed-role/falco-router/session` : `arn:aws:iam::${ACCOUNT}:user/${req.accessKeyId}`;
      return queryResult(res, 'GetCallerIdentity', `<Arn>${xmlEscape(arn)}</Arn><UserId>AIDAEXAMPLE</UserId><Account>${ACCOUNT}</Account>`, XMLNS);
    }
    if (call.action === 'AssumeRole') {
      if (!params.RoleArn || !params.RoleSessionName) {
        call.error = 'ValidationError';
        return queryError(res, 400, 'ValidationError', 'RoleArn and RoleSessionName are required', XMLNS);
      }
      const cred: IssuedCredentials = {
        accessKeyId: `ASIA${randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase()}`,
        secretAccessKey: randomUUID(),
        sessionToken: `token-${randomUUID()}`,
        expiration: new Date(Date.now() + lifetime),
      };
      issued.push(cred);
      return queryResult(
        res,
        'AssumeRole',
        `<Credentials><AccessKeyId>${cred.accessKeyId}</AccessKeyId><SecretAccessKey>${cred.secretAccessKey}</SecretAccessKey>` +
          `<SessionToken>${cred.sessionToken}</SessionToken><Expiration>${cred.expiration.toISOString()}</Expiration></Credentials>` +
          `<AssumedRoleUser><Arn>${xmlEscape(params.RoleArn)}/${xmlEscape(params.RoleSessionName)}</Arn><AssumedRoleId>AROAEXAMPLE:${xmlEscape(params.RoleSessionName)}</AssumedRoleId></AssumedRoleUser>`,
        XMLNS,
      );
    }
    call.error = 'InvalidAction';
    return queryError(res, 400, 'InvalidAction', `action ${call.action} is not faked`, XMLNS);
  });

  return {
    url: server.url,
    calls,
    issued,
    refuse: (code, message, status = 403, echo = false) => {
      refusal = { code, message, status, echo };
    },
    accept: () => {
      refusal = undefined;
    },
    setCredentialLifetime: (ms) => {
      lifetime = ms;
    },
    close: () => server.close(),
  };
}
