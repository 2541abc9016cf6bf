/** The registry: every output type the router knows. A new output is one folder and one line here. */
import type { OutputType } from './sdk/contract.ts';
import { file } from './file/index.ts';
import { webhook } from './webhook/index.ts';
import { slack } from './slack/index.ts';
import { awsCloudWatchLogs } from './awscloudwatchlogs/index.ts';
import { awsSns } from './awssns/index.ts';

export const outputTypes: readonly OutputType[] = [file, webhook, slack, awsCloudWatchLogs, awsSns] as readonly OutputType<any>[];

/** With no output configured, the router runs this one (the embedded default). */
export const defaultOutput = { name: 'file', type: 'file', path: 'falco-events.ndjson' };
