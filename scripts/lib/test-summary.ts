/**
 * Prints the plain closing line CI reads ("N passed, N failed, N skipped") from vitest's JSON
 * report, and names every skipped test loudly: a skip proves nothing.
 */
import { existsSync, readFileSync } from "node:fs";

const file = process.argv[2] ?? "test-results/vitest.json";
if (!existsSync(file)) {
  console.error(`no test report at ${file}: the test run did not finish`);
  process.exit(1);
}
interface Report {
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
  testResults: { name: string; assertionResults: { fullName: string; status: string }[] }[];
}
const report = JSON.parse(readFileSync(file, "utf8")) as Report;
const skipped = report.testResults.flatMap((f) =>
  f.assertionResults
    .filter((a) => a.status === "skipped" || a.status === "pending" || a.status === "todo")
    .map((a) => `${f.name}: ${a.fullName}`),
);
for (const name of skipped) console.log(`SKIPPED: ${name}`);
const passed = report.numPassedTests;
const failed = report.numFailedTests;
console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped.length} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
