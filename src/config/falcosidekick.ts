/**
 * falcosidekick's vocabulary that this router does not act on: its output sections (with the
 * keys that enable each, falcosidekick-compat.md §7) and its global features beyond ours. A file or
 * environment that would enable one of them gets a warning naming it, so a team switching over
 * sees which alerts would stop; the section itself is ignored, so the file still loads. The
 * sections this router supports are declared by the output types (FalcosidekickSection).
 */
/** `section:key+key`: the section and the keys whose non-empty value enables it. */
const SECTIONS =
  'rocketchat:webhookurl mattermost:webhookurl teams:webhookurl webex:webhookurl ' +
  'discord:webhookurl googlechat:webhookurl cliq:webhookurl telegram:token+chatid datadog:apikey ' +
  'datadoglogs:apikey influxdb:hostport statsd:forwarder dogstatsd:forwarder prometheus:extralabels ' +
  'wavefront:endpointhost spyderbat:orguid timescaledb:host dynatrace:apitoken ' +
  'otlp.metrics:endpoint otlp.logs:endpoint otlp.traces:endpoint alertmanager:hostport ' +
  'opsgenie:apikey pagerduty:routingkey grafanaoncall:webhookurl elasticsearch:hostport ' +
  'loki:hostport grafana:hostport syslog:host zincsearch:hostport openobserve:hostport ' +
  'sumologic:receiverurl quickwit:hostport logstash:address splunk:host ' +
  'aws.s3:bucket aws.lambda:functionname aws.sqs:url aws.kinesis:streamname ' +
  'aws.securitylake:bucket gcp.storage:bucket gcp.cloudrun:endpoint gcp.cloudfunctions:name ' +
  'gcp.pubsub:topic gcp.chronicle:instanceid yandex.s3:bucket yandex.datastreams:streamname ' +
  'fission:function cloudevents:address kubeless:function openfaas:functionname ' +
  'tekton:eventlistener nats:hostport stan:hostport kafka:hostport kafkarest:address rabbitmq:url ' +
  'azure.eventhub:name mqtt:broker gotify:hostport smtp:hostport redis:address ' +
  'nodered:address webui:url policyreport:enabled talon:address n8n:address';

export const FALCOSIDEKICK_SECTIONS: ReadonlyArray<readonly [section: string, enabledBy: readonly string[]]> = SECTIONS.split(' ').map((entry) => {
  const [section, keys] = entry.split(':');
  return [section, keys.split('+')] as const;
});
