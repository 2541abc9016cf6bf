/** The registry: every output type the router knows. A new output is one file and one line here. */
import type { OutputType } from './types.ts';
import { file } from './file.ts';
import { webhook } from './webhook.ts';
import { slack } from './slack.ts';
import { awsCloudWatchLogs } from './aws-cloudwatch-logs.ts';
import { awsSns } from './aws-sns.ts';

export const outputTypes: readonly OutputType<any>[] = [file, webhook, slack, awsCloudWatchLogs, awsSns];
