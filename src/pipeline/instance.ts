/**
 * Builds an output instance from its validated config: the adapter with its deps (a logger that
 * already carries the instance's name and keeps its secrets out, a counter, TLS files), the
 * redactor made from the settings its type declares secret, and its delivery worker.
 */
import type { Logger } from 'pino';
import type { Output, OutputDeps, OutputLogger, OutputType } from '../../outputs/sdk/contract.ts';
import type { ClientTlsFiles } from '../../outputs/sdk/http.ts';
import type { OutputInstance } from '../config/load.ts';
import type { QueueDriver } from '../queue/types.ts';
import { GoTemplate, SAMPLE_EVENT, payloadData } from '../event/template.ts';
import { DeliveryWorker, type DeliveryObserver } from './worker.ts';
import { Redactor } from './redact.ts';

export interface InstanceContext {
  types: readonly OutputType[];
  queue: QueueDriver;
  logger: Logger;
  observer: DeliveryObserver & { outputEvent(output: string, type: string, stat: string, n: number): void };
  debug: boolean;
  tls: ClientTlsFiles;
}

export function createInstance(inst: OutputInstance, c: InstanceContext): DeliveryWorker {
  const type = c.types.find((t) => t.type === inst.type)!;
  const redactor = new Redactor(type.secrets.map((k) => inst.settings[k]));
  const logger = c.logger.child({ output: inst.name, type: inst.type });
  const deps: OutputDeps = {
    name: inst.name,
    logger: redactingLogger(logger, redactor),
    debug: c.debug,
    tls: c.tls,
    concurrency: inst.delivery.concurrency,
    count: (stat, n = 1) => n > 0 && c.observer.outputEvent(inst.name, inst.type, stat, n),
  };
  let output: Output;
  try {
    output = type.create(inst.settings, deps);
  } catch (err) {
    // create() does no I/O, so this is a bug or a setting its schema let through: keep the
    // instance (its alerts are stored) and show the reason where set-up failures show.
    const error = err as Error;
    output = {
      setup: () => Promise.reject(error),
      send: () => Promise.reject(error),
    };
  }
  void checkTemplates(inst, deps.logger);
  return new DeliveryWorker({ instance: inst, output, queue: c.queue, logger: c.logger, observer: c.observer, redactor });
}

/** Tries each template setting on a sample alert, so a typo such as `{{ .rule }}` shows at start, not at the first alert. */
async function checkTemplates(inst: OutputInstance, logger: OutputLogger): Promise<void> {
  for (const [key, v] of Object.entries(inst.settings)) {
    if (!(v instanceof GoTemplate)) continue;
    await v.render(payloadData(SAMPLE_EVENT)).catch((err: Error) =>
      logger.warn({ setting: key, err: err.message }, `${inst.origin}.${key} fails on a sample alert (${err.message}); alerts are sent without it until it is fixed`),
    );
  }
}

function redactingLogger(logger: Logger, redactor: Redactor): OutputLogger {
  const at =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (obj: Record<string, unknown>, msg: string): void => {
      if (!logger.isLevelEnabled(level)) return;
      if (redactor.empty) logger[level](obj, msg);
      else logger[level](redactor.value(obj) as Record<string, unknown>, redactor.text(msg));
    };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
