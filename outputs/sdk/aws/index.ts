/** What every AWS output shares: falcosidekick's `aws.*` settings, credentials, and error classification. */
export { awsSettingsShape, awsShared, setupAws, AwsClient, AWS_SECRETS, type AwsSettings, type AwsSetup } from './credentials.ts';
export { classifyAwsError, awsErrorCode, isThrottlingCode } from './errors.ts';
