let cachedSecond = -1;
let cachedValue = "";

/** The current time as an HTTP Date header value, formatted at most once per second. */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedValue = new Date(now).toUTCString();
  }
  return cachedValue;
}
