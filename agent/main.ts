#!/usr/bin/env node
/**
 * edgemesh-agent: run | status | check-config (docs/agent.md).
 *   edgemesh-agent run --config agent.yaml
 *   edgemesh-agent status --config agent.yaml   (or --url http://127.0.0.1:9464)
 *   edgemesh-agent check-config --config agent.yaml
 */
import { parseArgs } from "node:util";
import { startAgent } from "./agent.ts";
import { ConfigError, loadConfig, readToken } from "./config.ts";
import { formatStatus, type StatusReport } from "./health.ts";

const USAGE = `usage: edgemesh-agent <run|status|check-config> [--config agent.yaml] [--url http://host:port] [--json]`;

async function main(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string", short: "c", default: process.env.EDGEMESH_AGENT_CONFIG ?? "agent.yaml" },
      url: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const command = positionals[0];
  if (values.help || !command) {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case "check-config": {
      const config = loadConfig(values.config);
      readToken(config);
      console.log(
        `${values.config}: ok (${config.mqtt.rules.length} rules, ${config.adapters ? config.adapters.enabled.length + config.adapters.files.length : 0} adapters, outbox ${config.outbox.path}, edge ${config.edge.url})`,
      );
      return 0;
    }
    case "status": {
      const url = values.url ?? `http://${loadConfig(values.config).health.listen}`;
      let report: StatusReport;
      try {
        const response = await fetch(`${url}/status`, { signal: AbortSignal.timeout(5000) });
        report = (await response.json()) as StatusReport;
      } catch (error) {
        console.error(`no agent answers at ${url}: ${(error as Error).cause ?? (error as Error).message}`);
        return 1;
      }
      console.log(values.json ? JSON.stringify(report, null, 2) : formatStatus(report));
      return report.mqtt.connected && report.edge.reachable !== false ? 0 : 1;
    }
    case "run": {
      const agent = await startAgent(loadConfig(values.config));
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
      await agent.stop();
      return 0;
    }
    default:
      console.error(USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    if (error instanceof ConfigError) console.error(`configuration error:\n${error.message}`);
    else console.error(error);
    process.exit(error instanceof ConfigError ? 78 : 1);
  },
);
