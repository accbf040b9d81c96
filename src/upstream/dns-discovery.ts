import { Resolver } from "node:dns/promises";
import type { Logger } from "../ops/logger.js";

/** Resolves a host name to every address it has (A and AAAA); rejects only when the lookup itself failed. */
export type ResolveAddresses = (host: string) => Promise<string[]>;

/** Error codes meaning "the name has no such records": an authoritative empty answer, not an outage. */
const EMPTY_ANSWER = new Set(["ENODATA", "ENOTFOUND"]);

/** A resolver asking `servers` (`ip` or `ip:port`; empty: the system's) for A and AAAA records. */
export function createDnsResolver(servers: readonly string[], timeoutMs: number): ResolveAddresses {
  const resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  const lookUp = async (query: Promise<string[]>): Promise<string[] | "empty"> => {
    try {
      return await query;
    } catch (error) {
      if (EMPTY_ANSWER.has((error as NodeJS.ErrnoException).code ?? "")) return "empty";
      throw error;
    }
  };
  return async (host) => {
    const [v4, v6] = await Promise.allSettled([lookUp(resolver.resolve4(host)), lookUp(resolver.resolve6(host))]);
    // One family failing is fine (many names have no AAAA); both failing is an outage.
    if (v4.status === "rejected" && v6.status === "rejected") throw v4.reason;
    const addresses: string[] = [];
    for (const answer of [v4, v6]) if (answer.status === "fulfilled" && answer.value !== "empty") addresses.push(...answer.value);
    return addresses.sort();
  };
}

export interface DnsDiscoveryOptions {
  host: string;
  resolve: ResolveAddresses;
  refreshIntervalMs: number;
  /** Called with the full, sorted address list whenever it changes. */
  onChange: (addresses: string[]) => void;
  logger: Logger;
}

/**
 * Follows a (headless Service) DNS name: resolves it periodically and when asked to (after
 * connection failures), and reports every change. A failed lookup keeps the last answer:
 * a DNS outage must not empty a healthy endpoint list.
 */
export class DnsDiscovery {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private last = "";
  private lastResolvedAt = 0;
  private closed = false;

  constructor(private readonly options: DnsDiscoveryOptions) {}

  /** Resolve once now and keep following the name. */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule(this.options.refreshIntervalMs);
  }

  /** Re-resolve soon (rate-limited): an endpoint failed, or none is left. */
  refreshSoon(): void {
    if (this.closed || this.inFlight) return;
    const minGapMs = Math.min(1_000, this.options.refreshIntervalMs);
    const wait = Math.max(0, this.lastResolvedAt + minGapMs - Date.now());
    this.schedule(wait);
  }

  /**
   * Re-resolve now, for a call that found every known endpoint unreachable and waits for the
   * answer; at most four lookups a second, however many calls fail.
   */
  refreshNow(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.inFlight) return this.inFlight;
    if (Date.now() - this.lastResolvedAt < Math.min(250, this.options.refreshIntervalMs)) return Promise.resolve();
    return this.refresh();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      void this.refresh().finally(() => this.schedule(this.options.refreshIntervalMs));
    }, delayMs).unref();
  }

  private refresh(): Promise<void> {
    this.inFlight ??= (async () => {
      try {
        const addresses = await this.options.resolve(this.options.host);
        const key = addresses.join(",");
        if (key !== this.last && !this.closed) {
          this.last = key;
          this.options.logger.info({ host: this.options.host, addresses }, "upstream endpoints changed");
          this.options.onChange(addresses);
        }
      } catch (error) {
        this.options.logger.warn({ host: this.options.host, err: error }, "DNS lookup failed; keeping the last answer");
      } finally {
        this.lastResolvedAt = Date.now();
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }
}
