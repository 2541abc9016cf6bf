/**
 * The one surface an output imports: the contract, the error type and its classification, the
 * alert as stored, the template runtime, config field builders, the HTTP target, size helpers.
 * AWS outputs add ./aws/index.ts; tests add ./testkit.
 */
export type { Output, OutputType, OutputDeps, OutputLogger, SendContext, OutputDefaults, FalcosidekickSection } from './contract.ts';
export { OutputError, classifyStatus, type FailureReason, type OutputErrorInfo } from '../../src/errors.ts';
export { StoredEvent } from '../../src/event/stored-event.ts';
export { serializeEvent, eventTimeMs, type FalcoEvent } from '../../src/event/falco-event.ts';
export { stringifyLossless, isLosslessNumber } from '../../src/event/json.ts';
export { priorityLevel, priorityName } from '../../src/event/priority.ts';
export { GoTemplate, payloadData, goTimeString } from '../../src/event/template.ts';
export { fitEventJson, truncateText, cutUtf8, MARKER } from '../../src/event/truncate.ts';
export { bool, int, httpUrl, optionalHttpUrl, stringMap, stringList, duration, byteSize, goTemplate } from '../../src/config/fields.ts';
export { summaryLine, lastMinutes, highestPriority, span, type SummaryGroup, type SummaryReason } from '../../src/pipeline/summary.ts';
export { HttpTarget, parseRetryAfter, type ClientTlsFiles, type HttpAnswer, type HttpRequest } from './http.ts';
