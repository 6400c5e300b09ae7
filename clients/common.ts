/** What the TypeScript checks share: their arguments, the period they read, and type assertions. */

/** True when T and U are the same type; `any` is the same as nothing else (so a loose figure fails). */
export type Exactly<T, U> =
  (<G>() => G extends T ? 1 : 2) extends <G>() => G extends U ? 1 : 2 ? true : false;

export const PERIOD = "2023-Q3";

export function args(script: string): { baseUrl: string; key: string } {
  const [baseUrl, key] = process.argv.slice(2);
  if (!baseUrl || !key) {
    throw new Error(`usage: ${script} BASE_URL API_KEY`);
  }
  return { baseUrl, key };
}

export function expect(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(what);
  }
}

/** The body of a successful answer; a problem (or no body) stops the check, naming the call. */
export function ok<T>(answer: { data?: T; error?: unknown; response: Response }, what: string): T {
  if (answer.error !== undefined || answer.data === undefined) {
    throw new Error(`${what}: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
  return answer.data;
}
