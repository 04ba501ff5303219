// The CLI's HTTP client: @makam/client's, with the API's refusals turned into exit codes.
import { ApiError, MakamClient, UnreachableError } from '@makam/client/http';
import type { ApiErrorBody } from '@makam/client/types';

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
  readonly apiError: ApiErrorBody | null;
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

/** The API's refusals and network failures as the CLI's exit codes. */
export function toCliError(err: unknown): unknown {
  if (err instanceof UnreachableError) return new CliError(EXIT.server, err.message);
  if (!(err instanceof ApiError)) return err;
  const e = err.body;
  const message = e ? `${e.message} (${e.code}${e.param ? `, ${e.param}` : ''})` : `HTTP ${err.status} ${err.statusText}`;
  return new CliError(err.status >= 500 ? EXIT.server : EXIT.usage, message, e, err.status);
}

/** The shared client (@makam/client), its errors turned into CliErrors. */
export class ApiClient extends MakamClient {
  constructor({ api, apiKey }: ClientOptions) {
    let url: URL;
    try {
      url = new URL(api);
    } catch {
      throw new CliError(EXIT.usage, `--api is not a URL: ${api}`);
    }
    super({ base: url.toString(), apiKey: apiKey || undefined });
  }

  override async send(pathname: string, init: RequestInit & { duplex?: 'half' } = {}): Promise<Response> {
    try {
      return await super.send(pathname, init);
    } catch (err) {
      throw toCliError(err);
    }
  }

  override async check(res: Response): Promise<Response> {
    try {
      return await super.check(res);
    } catch (err) {
      throw toCliError(err);
    }
  }
}
