// Webhook receivers must be on the public internet: a tenant must not make the API POST to
// Redis, a cloud metadata endpoint or anything else on the private network (SSRF). The check is
// made when a webhook is registered (a clear 400) and again at every connection (the name may
// resolve elsewhere by then), by a connector that refuses to dial a non-public address.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { promisify } from 'node:util';
import ipaddr from 'ipaddr.js';
import { Agent, type Dispatcher } from 'undici';

const lookupAll = promisify((host: string, cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => dnsLookup(host, { all: true }, cb));

/** Unicast addresses only: no loopback, private, link-local, carrier NAT, multicast or reserved range. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  return ipaddr.process(address).range() === 'unicast';
}

/** Why `url` may not receive webhooks, or null when it may. */
export async function refusedWebhookUrl(url: URL): Promise<string | null> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = ipaddr.isValid(host) ? [host] : (await lookupAll(host)).map((a) => a.address);
  } catch (err) {
    return `its host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  const inside = addresses.filter((a) => !isPublicAddress(a));
  return inside.length ? `its host ${host} is on a private or reserved network (${inside.join(', ')}); webhooks go to public addresses only` : null;
}

/** An undici dispatcher that connects to public addresses only. */
export function publicOnlyAgent(): Dispatcher {
  return new Agent({
    connect: {
      lookup: (hostname, options, callback) => {
        dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
          if (err) return callback(err, '', 0);
          const allowed = (addresses as LookupAddress[]).filter((a) => isPublicAddress(a.address));
          if (allowed.length === 0) {
            const refused = Object.assign(new Error(`${hostname} resolves to no public address`), { code: 'EADDRNOTALLOWED' });
            return callback(refused, '', 0);
          }
          if ((options as { all?: boolean }).all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
          callback(null, allowed[0]!.address, allowed[0]!.family);
        });
      },
    },
  });
}
