// Turns @bufbuild/protobuf v2 service descriptors into @grpc/grpc-js service definitions and
// typed promise clients, so the generated code is the only description of the wire contract.
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import * as grpc from '@grpc/grpc-js';

/** A grpc-js service definition keyed by each method's local (camelCase) name. */
export function serviceDefinition<S extends GenServiceMethods>(service: GenService<S>): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      requestSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (message: MessageShape<DescMessage>) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
      originalName: method.name,
    };
  }
  return definition;
}

/** Options of one call. Every call has a deadline. */
export interface CallOptions {
  /** Milliseconds until the call fails with DEADLINE_EXCEEDED. */
  timeoutMs: number;
  /** Aborting cancels the call. */
  signal?: AbortSignal;
}

type UnaryMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options: CallOptions,
) => Promise<MessageShape<O>>;
type ServerStreamingMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options: CallOptions,
) => AsyncIterable<MessageShape<O>>;
type ClientStreamingMethod<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageInitShape<I>> | Iterable<MessageInitShape<I>>,
  options: CallOptions,
) => Promise<MessageShape<O>>;

/** A promise-based client with one method per RPC (bidi streaming is not used by makam). */
export type PromiseClient<S extends GenServiceMethods> = {
  [K in keyof S]: S[K] extends { methodKind: 'unary'; input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? UnaryMethod<I, O>
    : S[K] extends { methodKind: 'server_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
      ? ServerStreamingMethod<I, O>
      : S[K] extends { methodKind: 'client_streaming'; input: infer I extends DescMessage; output: infer O extends DescMessage }
        ? ClientStreamingMethod<I, O>
        : never;
} & { close(): void; channel: grpc.Client };

function callOptions(options: CallOptions): grpc.CallOptions {
  return { deadline: Date.now() + options.timeoutMs };
}

function onAbort(signal: AbortSignal | undefined, cancel: () => void): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    cancel();
    return () => {};
  }
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}

/** Creates a typed client for `service` at `address` (host:port). */
export function createPromiseClient<S extends GenServiceMethods>(
  service: GenService<S>,
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  channelOptions: grpc.ChannelOptions = {},
): PromiseClient<S> {
  const definition = serviceDefinition(service);
  const Ctor = grpc.makeGenericClientConstructor(definition, service.name);
  const raw = new Ctor(address, credentials, channelOptions) as unknown as Record<string, Function> & grpc.Client;
  const client: Record<string, unknown> = { close: () => raw.close(), channel: raw };
  for (const method of service.methods) {
    const name = method.localName;
    const fn = raw[name]!.bind(raw);
    if (method.methodKind === 'unary') {
      client[name] = (request: MessageInitShape<DescMessage>, options: CallOptions) =>
        new Promise((resolve, reject) => {
          const call = fn(create(method.input, request), new grpc.Metadata(), callOptions(options), (err: grpc.ServiceError | null, res: unknown) => {
            detach();
            if (err) reject(err);
            else resolve(res);
          });
          const detach = onAbort(options.signal, () => call.cancel());
        });
    } else if (method.methodKind === 'server_streaming') {
      client[name] = (request: MessageInitShape<DescMessage>, options: CallOptions) => ({
        async *[Symbol.asyncIterator]() {
          const call: grpc.ClientReadableStream<unknown> = fn(create(method.input, request), new grpc.Metadata(), callOptions(options));
          const detach = onAbort(options.signal, () => call.cancel());
          try {
            for await (const message of call) yield message;
          } finally {
            detach();
            call.cancel();
          }
        },
      });
    } else if (method.methodKind === 'client_streaming') {
      client[name] = (requests: AsyncIterable<MessageInitShape<DescMessage>>, options: CallOptions) =>
        new Promise((resolve, reject) => {
          const call: grpc.ClientWritableStream<unknown> = fn(new grpc.Metadata(), callOptions(options), (err: grpc.ServiceError | null, res: unknown) => {
            detach();
            if (err) reject(err);
            else resolve(res);
          });
          const detach = onAbort(options.signal, () => call.cancel());
          void (async () => {
            try {
              for await (const request of requests) {
                if (!call.write(create(method.input, request))) await new Promise((r) => call.once('drain', r));
              }
              call.end();
            } catch (err) {
              call.cancel();
              reject(err);
            }
          })();
        });
    }
  }
  return client as PromiseClient<S>;
}

/** True when `err` is a gRPC error with one of `codes`. */
export function isGrpcError(err: unknown, ...codes: grpc.status[]): err is grpc.ServiceError {
  return typeof err === 'object' && err !== null && 'code' in err && codes.includes((err as grpc.ServiceError).code);
}
