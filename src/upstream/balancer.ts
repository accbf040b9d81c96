import type { Endpoint } from "./endpoint.js";

/** Picks the endpoint for the next call among those available. */
export interface Balancer {
  /** Undefined when `candidates` is empty. */
  pick(candidates: readonly Endpoint[]): Endpoint | undefined;
}

/** Each endpoint in turn: with a stable list, every endpoint gets exactly its share. */
export class RoundRobinBalancer implements Balancer {
  private next = 0;

  pick(candidates: readonly Endpoint[]): Endpoint | undefined {
    if (candidates.length === 0) return undefined;
    if (this.next >= candidates.length) this.next = 0;
    return candidates[this.next++];
  }
}

/**
 * Least request by the power of two choices: of two endpoints drawn at random, the one with
 * fewer calls in flight. Nearly as good as scanning all, without herding every gateway onto the
 * same momentarily idle pod.
 */
export class LeastRequestBalancer implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  pick(candidates: readonly Endpoint[]): Endpoint | undefined {
    const n = candidates.length;
    if (n <= 1) return candidates[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = candidates[i];
    const b = candidates[j];
    return b.inFlight < a.inFlight ? b : a;
  }
}

/** The balancer a route's `loadBalancing` setting names. */
export function createBalancer(policy: "round_robin" | "least_request"): Balancer {
  return policy === "least_request" ? new LeastRequestBalancer() : new RoundRobinBalancer();
}
