import { ConfigError, loadConfig } from "./config/load-config.js";
import { createGateway } from "./gateway.js";
import { exposedGc, startGcPacer } from "./ops/gc-pacer.js";
import { createLogger, type Logger } from "./ops/logger.js";
import { collectingWithImmediateAlive } from "./ops/shape-specimens.js";

/** The node flag the own HTTP/2 server wants (README, "Lean HTTP/2 connections"). */
const NO_PRETENURING_FLAG = "--no-allocation-site-pretenuring";

/** Entry point: load config → build the gateway → listen → shut down gracefully on SIGTERM/SIGINT. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`connect-gateway: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.log.level);
  startConfiguredGcPacing(config.gcPacing.stepMb, logger);
  if (config.fastPath.enabled && config.fastPath.leanHttp2 && !process.execArgv.includes(NO_PRETENURING_FLAG)) {
    logger.warn(
      { flag: NO_PRETENURING_FLAG },
      "node runs without the flag that the own HTTP/2 server (fastPath.leanHttp2, on by default) wants: V8 may allocate per-call objects in the old generation, with more full collections (npm start and the image pass it; README, \"Lean HTTP/2 connections\")",
    );
  }
  const gateway = createGateway(config, logger);
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting at once");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, "shutdown requested");
    gateway.shutdown().then(
      () => logger.flush(() => process.exit(0)),
      (error: unknown) => {
        logger.error({ err: error }, "shutdown failed");
        logger.flush(() => process.exit(1));
      },
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  await gateway.listen();
}

main().catch((error: unknown) => {
  process.stderr.write(`connect-gateway: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

/** Pace full collections for the whole process (src/ops/gc-pacer.ts), or say why not. */
function startConfiguredGcPacing(stepMb: number, logger: Logger): void {
  if (stepMb === 0) return;
  const collect = exposedGc();
  if (!collect) {
    logger.warn({ stepMb }, "gc pacing is configured but node runs without --expose-gc: full collections are left to V8 (npm start and the Dockerfile pass the flag)");
    return;
  }
  startGcPacer({ stepBytes: stepMb * 1024 * 1024, collect: collectingWithImmediateAlive(collect) });
}
