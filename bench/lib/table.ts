/** Plain-text tables for the terminal. */

/** A number with fixed decimals and thousands separators; "—" for null/NaN. */
export function fmt(value: number | null | undefined, decimals: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

/**
 * Columns padded to their widest cell; `rightAlign` lists numeric columns. With `groupBy`,
 * a repeated value in that column is blanked and a rule separates the groups.
 */
export function formatTable(header: string[], rows: string[][], options: { rightAlign?: number[]; groupBy?: number } = {}): string {
  const right = new Set(options.rightAlign ?? []);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "─".repeat(w)).join("  ");
  const out = [line(header), rule];
  let previous: string | undefined;
  for (const row of rows) {
    if (options.groupBy !== undefined) {
      const key = row[options.groupBy];
      if (previous !== undefined && key !== previous) out.push("");
      const shown = [...row];
      if (key === previous) shown[options.groupBy] = "";
      previous = key;
      out.push(line(shown));
    } else {
      out.push(line(row));
    }
  }
  return out.join("\n");
}
