// Who may call a route is the route's own declaration, `config: { access }`, read on the route
// the router matched, never on the raw URL (percent-encoding, dot segments or case make a raw URL
// say something else than the path the router resolves). A route that declares nothing belongs
// to a tenant: forgetting to declare fails closed.
import type { FastifyInstance, RouteOptions } from 'fastify';

export const ACCESS = ['public', 'tenant', 'admin'] as const;
/** public: anyone; tenant: a tenant's API key (the default); admin: the operator's admin key. */
export type Access = (typeof ACCESS)[number];

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Who may call the route; 'tenant' when left out. */
    access?: Access;
  }
}

/** The access a route's config declares; 'tenant' when it declares none. */
export function accessOf(config: { access?: unknown } | undefined): Access {
  const access = config?.access;
  return (ACCESS as readonly unknown[]).includes(access) ? (access as Access) : 'tenant';
}

export interface RouteEntry {
  method: string;
  /** The route's pattern as the router holds it (/v1/jobs/:id). */
  url: string;
  access: Access;
  /** Route constraints besides method and path (the event stream's `sse`), if any. */
  constraints?: Record<string, unknown>;
  /** The request schemas the route validates with (JSON Schema), if it has any. */
  schema?: { body?: unknown; querystring?: unknown; params?: unknown; headers?: unknown };
}

const tables = new WeakMap<object, Array<{ method: string; url: string; opts: RouteOptions }>>();

/** Records every route registered after this call; called on the root instance before any route. */
export function trackRoutes(app: FastifyInstance): void {
  const rows: Array<{ method: string; url: string; opts: RouteOptions }> = [];
  tables.set(app, rows);
  app.addHook('onRoute', (opts) => {
    const declared = (opts.config as { access?: unknown } | undefined)?.access;
    if (declared !== undefined && !(ACCESS as readonly unknown[]).includes(declared)) {
      throw new Error(`route ${String(opts.method)} ${opts.url}: config.access must be one of ${ACCESS.join(', ')}`);
    }
    // The options object is kept, not its access: hooks of inner scopes (declareAccess) run after this one.
    for (const method of [opts.method].flat()) rows.push({ method, url: opts.url, opts });
  });
}

/** Every route of the app with the access it resolved to, for audits and generated tests. */
export function routeTable(app: FastifyInstance): RouteEntry[] {
  const rows = tables.get(app);
  if (!rows) throw new Error('routeTable: the app was not built with trackRoutes');
  return rows.map(({ method, url, opts }) => ({
    method,
    url,
    access: accessOf(opts.config as { access?: unknown } | undefined),
    ...(opts.constraints && Object.keys(opts.constraints).length ? { constraints: opts.constraints } : {}),
    ...requestSchemas(opts.schema as Record<string, unknown> | undefined),
  }));
}

function requestSchemas(schema: Record<string, unknown> | undefined): Pick<RouteEntry, 'schema'> {
  if (!schema) return {};
  const parts = Object.fromEntries((['body', 'querystring', 'params', 'headers'] as const).filter((k) => schema[k] !== undefined).map((k) => [k, schema[k]]));
  return Object.keys(parts).length ? { schema: parts } : {};
}

/** Gives `access` to every route registered in `scope` from now on (routes of third-party plugins). */
export function declareAccess(scope: FastifyInstance, access: Access): void {
  scope.addHook('onRoute', (opts) => {
    opts.config = { ...(opts.config ?? {}), access };
  });
}
