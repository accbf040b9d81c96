import { createRequire } from "node:module";
import type { Redis } from "ioredis";
import type { Logger } from "../ops/logger.js";

// ioredis (about 20 MB of resident memory) is loaded only by a gateway that shares its buckets in Redis.
const requireOptional = createRequire(import.meta.url);

/** A token bucket per client identity; `take` answers 0 (allowed) or the milliseconds until a token is free. */
export interface RateLimiter {
  take(key: string): number | Promise<number>;
  close(): Promise<void>;
}

/** Buckets beyond this many are swept of full (idle) ones, so random identities cannot grow memory without bound. */
const MAX_BUCKETS = 100_000;

/** One process's buckets, in memory. */
export class MemoryRateLimiter implements RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; atMs: number }>();
  private readonly perMs: number;

  constructor(
    requestsPerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.perMs = requestsPerSecond / 1000;
  }

  take(key: string): number {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_BUCKETS) this.sweep(now);
      bucket = { tokens: this.burst, atMs: now };
      this.buckets.set(key, bucket);
    } else {
      bucket.tokens = Math.min(this.burst, bucket.tokens + (now - bucket.atMs) * this.perMs);
      bucket.atMs = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - bucket.tokens) / this.perMs);
  }

  private sweep(now: number): void {
    for (const [key, bucket] of this.buckets) {
      if (bucket.tokens + (now - bucket.atMs) * this.perMs >= this.burst) this.buckets.delete(key);
    }
    // Everyone is active: forget the oldest half rather than refuse to track new clients.
    if (this.buckets.size >= MAX_BUCKETS) {
      let drop = this.buckets.size / 2;
      for (const key of this.buckets.keys()) {
        if (drop-- <= 0) break;
        this.buckets.delete(key);
      }
    }
  }

  async close(): Promise<void> {}
}

/**
 * The token bucket as one atomic script: refill by elapsed time, take a token or say how long
 * to wait. Redis's clock is the only clock, so replicas with skewed clocks still agree.
 */
const TAKE_TOKEN_LUA = `
local perMs = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * perMs)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / perMs) end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / perMs) + 1000)
return wait
`;

type RedisWithTake = Redis & { takeToken(key: string, perMs: string, burst: string): Promise<number> };

/** Buckets shared by every replica, in Redis. When Redis is unreachable, calls are let through (and a warning logged). */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: RedisWithTake;
  private readonly perMs: string;
  private readonly burst: string;
  private lastWarningAt = 0;

  constructor(
    url: string,
    requestsPerSecond: number,
    burst: number,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    const { Redis: RedisClient } = requireOptional("ioredis") as typeof import("ioredis");
    this.redis = new RedisClient(url, {
      // A slow or absent Redis must not stall calls: fail fast and let the call through.
      maxRetriesPerRequest: 1,
      commandTimeout: 250,
      // Calls arriving while (re)connecting wait for the connection, at most commandTimeout, then pass.
      enableOfflineQueue: true,
      lazyConnect: false,
    }) as RedisWithTake;
    this.redis.on("error", (err: Error) => this.warn(err));
    this.redis.defineCommand("takeToken", { numberOfKeys: 1, lua: TAKE_TOKEN_LUA });
    this.perMs = String(requestsPerSecond / 1000);
    this.burst = String(burst);
  }

  async take(key: string): Promise<number> {
    try {
      return Number(await this.redis.takeToken(this.prefix + key, this.perMs, this.burst));
    } catch (error) {
      this.warn(error as Error);
      return 0;
    }
  }

  private warn(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarningAt < 10_000) return;
    this.lastWarningAt = now;
    this.logger.warn({ err: { message: err.message } }, "rate limiter: redis unavailable, calls are not limited");
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
