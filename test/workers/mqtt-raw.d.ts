/** Vite's `?raw` imports (the text of a file), as test/workers/mqtt-docs.test.ts reads docs/mqtt.md. */
declare module "*?raw" {
  const text: string;
  export default text;
}
