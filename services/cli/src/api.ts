// The CLI's HTTP client: base URL and API key, the API's error shape turned into exit codes.

/** Exit codes, for scripts. */
export const EXIT = {
  ok: 0,
  /** The job failed or was cancelled. */
  jobFailed: 1,
  /** Bad usage, or the API refused the request (4xx). */
  usage: 2,
  /** The server failed (5xx), could not be reached, or sent something wrong (a checksum mismatch). */
  server: 3,
} as const;

export class CliError extends Error {
  readonly exitCode: number;
  /** The API's error object, when the API sent one. */
  readonly apiError: { code: string; message: string; param: string | null } | null;
  readonly status: number | null;

  constructor(exitCode: number, message: string, apiError: CliError['apiError'] = null, status: number | null = null) {
    super(message);
    this.exitCode = exitCode;
    this.apiError = apiError;
    this.status = status;
  }
}

export interface ClientOptions {
  api: string;
  apiKey?: string;
}

export class ApiClient {
  readonly base: string;
  private readonly apiKey: string | undefined;

  constructor({ api, apiKey }: ClientOptions) {
    let url: URL;
    try {
      url = new URL(api);
    } catch {
      throw new CliError(EXIT.usage, `--api is not a URL: ${api}`);
    }
    this.base = url.toString().replace(/\/$/, '');
    this.apiKey = apiKey || undefined;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}), ...extra };
  }

  /** A raw request; network failures become exit code 3. */
  async request(pathname: string, init: RequestInit & { duplex?: 'half' } = {}): Promise<Response> {
    try {
      return await fetch(`${this.base}${pathname}`, { ...init, headers: this.headers(init.headers as Record<string, string> | undefined) });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      throw new CliError(EXIT.server, `cannot reach the API at ${this.base}: ${e.cause?.code ?? e.cause?.message ?? e.message}`);
    }
  }

  /** Throws a CliError for a non-2xx answer, with the API's message. */
  async check(res: Response): Promise<Response> {
    if (res.ok) return res;
    let apiError: CliError['apiError'] = null;
    try {
      apiError = ((await res.json()) as { error?: CliError['apiError'] }).error ?? null;
    } catch {
      // not the API's error shape
    }
    const message = apiError ? `${apiError.message} (${apiError.code}${apiError.param ? `, ${apiError.param}` : ''})` : `HTTP ${res.status} ${res.statusText}`;
    throw new CliError(res.status >= 500 ? EXIT.server : EXIT.usage, message, apiError, res.status);
  }

  async json<T>(pathname: string, init: RequestInit & { duplex?: 'half' } = {}): Promise<T> {
    const res = await this.check(await this.request(pathname, init));
    return (await res.json()) as T;
  }
}
