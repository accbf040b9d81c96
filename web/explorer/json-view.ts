/** Pretty-printed JSON with token colours, built from text nodes (never innerHTML). */
import { h } from "../shared/dom.js";

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
/** Messages this short (a typical stream item) read best on one line. */
const ONE_LINE_MAX = 72;

export function jsonView(value: unknown, attributes: Record<string, string> = {}): HTMLPreElement {
  const compact = JSON.stringify(value) ?? "undefined";
  const oneLine = compact.length <= ONE_LINE_MAX;
  const text = oneLine ? compact : JSON.stringify(value, null, 2);
  // Between tokens there is only punctuation and indentation; on one line, give it some air.
  const between = (part: string) => (oneLine ? part.replace(/,/g, ", ") : part);
  const pre = h("pre", { class: "json", ...attributes });
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    const index = match.index ?? 0;
    if (index > last) pre.append(between(text.slice(last, index)));
    const [whole, string, colon, keyword, number] = match;
    if (string !== undefined) {
      pre.append(h("span", { class: colon ? "j-key" : "j-str" }, string));
      if (colon) pre.append(oneLine ? ": " : colon);
    } else if (keyword !== undefined) {
      pre.append(h("span", { class: keyword === "null" ? "j-null" : "j-bool" }, keyword));
    } else if (number !== undefined) {
      pre.append(h("span", { class: "j-num" }, number));
    }
    last = index + whole.length;
  }
  if (last < text.length) pre.append(between(text.slice(last)));
  return pre;
}
