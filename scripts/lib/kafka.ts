/**
 * A throwaway single-node Apache Kafka in KRaft mode (broker and controller in one JVM, no
 * ZooKeeper) on free ports in a temporary folder, from the jars scripts/install-kafka.sh put in
 * ~/.cache/edgemesh/kafka/libs. For the agent's Kafka tests and benchmark.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./local-edge.ts";
import { listening } from "./ports.ts";

export const KAFKA_LIBS = join(process.env.EDGEMESH_CACHE ?? join(homedir(), ".cache/edgemesh"), "kafka/libs");
export const NO_KAFKA = `no Kafka jars in ${KAFKA_LIBS}: run \`bash scripts/install-kafka.sh\` (needs Java 17 and Maven; .ci/run does it)`;

export interface Kafka {
  brokers: string[];
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

export function kafkaAvailable(): boolean {
  return existsSync(KAFKA_LIBS) && spawnSync("java", ["-version"], { stdio: "ignore" }).error === undefined;
}

export async function startKafka(): Promise<Kafka> {
  if (!kafkaAvailable()) throw new Error(NO_KAFKA);
  const [port, controllerPort] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), "edgemesh-kafka-"));
  const properties = join(dir, "server.properties");
  writeFileSync(
    properties,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
      "controller.listener.names=CONTROLLER",
      "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
      "inter.broker.listener.name=PLAINTEXT",
      `log.dirs=${join(dir, "data")}`,
      "num.partitions=1",
      "offsets.topic.replication.factor=1",
      "offsets.topic.num.partitions=1",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "group.initial.rebalance.delay.ms=0",
      "auto.create.topics.enable=true",
    ].join("\n"),
  );
  const log4j = join(dir, "log4j.properties");
  writeFileSync(
    log4j,
    "log4j.rootLogger=WARN, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
  );
  const classpath = `${KAFKA_LIBS}/*`;
  const jvm = ["-Xms128m", "-Xmx512m", `-Dlog4j.configuration=file:${log4j}`, "-cp", classpath];
  // A cluster id is 16 random bytes in URL-safe base64 without padding (what `random-uuid` prints).
  const clusterId = randomBytes(16).toString("base64url");
  const format = spawnSync("java", [...jvm, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", properties], { encoding: "utf8" });
  if (format.status !== 0) throw new Error(`kafka storage format failed: ${format.stdout}${format.stderr}`);

  let output = "";
  const child: ChildProcess = spawn("java", [...jvm, "kafka.Kafka", properties], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout?.on("data", (d) => {
    output += String(d);
  });
  child.stderr?.on("data", (d) => {
    output += String(d);
  });
  const deadline = Date.now() + 90_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`kafka exited with ${child.exitCode}: ${output}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`kafka did not listen on ${port}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    brokers: [`127.0.0.1:${port}`],
    dir,
    log: () => output,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
