/** Plain-text and Markdown tables for benchmark output. */

export interface Column {
  header: string;
  /** Numbers read best right-aligned. */
  align?: "left" | "right";
}

/** A fixed-width text table for the terminal. */
export function textTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? "").length)));
  const cell = (text: string, i: number) => {
    const width = widths[i] ?? 0;
    return columns[i]?.align === "right" ? text.padStart(width) : text.padEnd(width);
  };
  const line = (cells: readonly string[]) =>
    columns
      .map((_, i) => cell(cells[i] ?? "", i))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** The same table as GitHub Markdown, to paste into docs/benchmarks.md. */
export function markdownTable(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const escapePipes = (text: string) => text.replaceAll("|", "\\|");
  const line = (cells: readonly string[]) => `| ${cells.map(escapePipes).join(" | ")} |`;
  return [
    line(columns.map((c) => c.header)),
    `|${columns.map((c) => (c.align === "right" ? "---:" : ":---")).join("|")}|`,
    ...rows.map((r) => line(columns.map((_, i) => r[i] ?? ""))),
  ].join("\n");
}
