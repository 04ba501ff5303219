// Resource classes and how a job is placed on one: the smallest class that fits its estimate.
import type { MemoryEstimate } from '@makam/shared/job-store';
import type { Family } from '../contracts/hyperparameters.gen.ts';
import { estimateMemory, type EstimateInput } from './memory-estimate.ts';

export interface ResourceClass {
  name: string;
  device: 'cpu' | 'cuda';
  /** Memory of ONE device: DDP keeps a whole replica of the model on each. */
  memory_bytes: number;
  /** Devices one worker of the class trains one job on at once (`a100x8=cuda:80GiB:8`); default 1. */
  devices?: number;
}

const UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

/** Parses `cpu=cpu:16GiB,gpu-4g=cuda:4GiB,a100x8=cuda:80GiB:8,...` (`:N` devices per worker, default 1;
 * a cpu class's N devices are N gloo processes); a bare name (`cpu`) takes the defaults below. */
export function parseResourceClasses(spec: string): ResourceClass[] {
  const defaults: Record<string, Omit<ResourceClass, 'name'>> = {
    cpu: { device: 'cpu', memory_bytes: 16 * UNITS.GiB!, devices: 1 },
    'gpu-4g': { device: 'cuda', memory_bytes: 4 * UNITS.GiB!, devices: 1 },
    'gpu-32g': { device: 'cuda', memory_bytes: 32 * UNITS.GiB!, devices: 1 },
  };
  return spec.split(',').map((entry) => {
    const [name, rest] = entry.split('=') as [string, string | undefined];
    if (!rest) {
      const d = defaults[name];
      if (!d) throw new Error(`resource class '${name}' needs a device and memory: ${name}=cuda:24GiB`);
      return { name, ...d };
    }
    const m = /^(cpu|cuda):(\d+(?:\.\d+)?)(B|KiB|MiB|GiB|TiB)(?::([1-9]\d{0,3}))?$/.exec(rest);
    if (!m) throw new Error(`resource class '${entry}' must look like name=cuda:24GiB, name=cpu:16GiB or name=cuda:80GiB:8 (8 devices)`);
    return { name, device: m[1] as 'cpu' | 'cuda', memory_bytes: Math.floor(Number(m[2]) * UNITS[m[3]!]!), devices: m[4] ? Number(m[4]) : 1 };
  });
}

export interface Placement {
  resource_class: string;
  estimate: MemoryEstimate;
}

const gib = (n: number) => `${(n / 1024 ** 3).toFixed(1)} GiB`;

/** Why a job fits nowhere, with what would make it fit; `param` is the request field at fault when it is not the usual one. */
export class PlacementError extends Error {
  readonly param?: string;
  constructor(message: string, param?: string) {
    super(message);
    this.param = param;
  }
}

function suggestions(input: Omit<EstimateInput, 'cuda'>, largest: ResourceClass): string[] {
  const hp = input.hyperparameters;
  const fits = (changes: Record<string, unknown>) => estimateMemory({ ...input, hyperparameters: { ...hp, ...changes }, cuda: largest.device === 'cuda' }).total_bytes <= largest.memory_bytes;
  const out: string[] = [];
  if (input.family === 'decoder' && hp.load_in_4bit !== true && fits({ load_in_4bit: true })) out.push('set load_in_4bit (QLoRA)');
  if (hp.gradient_checkpointing !== true && input.family !== 'scratch' && fits({ gradient_checkpointing: true })) out.push('enable gradient_checkpointing');
  for (let b = Math.floor(Number(hp.batch_size) / 2); b >= 1; b = Math.floor(b / 2)) {
    if (fits({ batch_size: b })) {
      out.push(`lower batch_size to ${b} (raise gradient_accumulation_steps to keep the effective batch)`);
      break;
    }
  }
  if ((hp.precision ?? 'auto') === 'fp32' && fits({ precision: 'bf16' })) out.push('train in bf16');
  return out;
}

/**
 * Places a job: on `requested` if it fits there, else (none requested) on the smallest class
 * that fits, GPU classes before CPU ones for the neural families; TF-IDF prefers CPU classes.
 * Only classes offering `devices` devices take the job; the estimate is per device (DDP replicates
 * the model, and batch_size is per device), so it is checked against one device's memory.
 */
export function place(input: Omit<EstimateInput, 'cuda'>, allClasses: ResourceClass[], requested?: string, devices = 1): Placement {
  const estimateOn = (c: ResourceClass) => estimateMemory({ ...input, cuda: c.device === 'cuda' });
  const classes = allClasses.filter((c) => (c.devices ?? 1) >= devices);
  const offers = (cs: ResourceClass[]) => cs.map((x) => `${x.name} (${x.devices ?? 1})`).join(', ');
  if (classes.length === 0) throw new PlacementError(`the job asks for ${devices} devices and no resource class offers that many: ${offers(allClasses)}; lower devices`, 'devices');
  if (requested) {
    const c = classes.find((x) => x.name === requested);
    const short = allClasses.find((x) => x.name === requested);
    if (!c && short) throw new PlacementError(`the job asks for ${devices} devices and resource_class ${requested} offers ${short.devices ?? 1}; lower devices, or use ${offers(classes)}`, 'devices');
    if (!c) throw new PlacementError(`unknown resource_class '${requested}'; configured classes: ${allClasses.map((x) => x.name).join(', ')}`);
    const estimate = estimateOn(c);
    if (estimate.total_bytes > c.memory_bytes) {
      const other = classes.filter((x) => x !== c && estimateOn(x).total_bytes <= x.memory_bytes).map((x) => x.name);
      throw new PlacementError(
        `the job needs about ${gib(estimate.total_bytes)} (${estimate.basis}) but ${c.name} has ${gib(c.memory_bytes)}${other.length ? `; it fits ${other.join(', ')}` : ''}${suggestFor(input, c)}`,
      );
    }
    return { resource_class: c.name, estimate };
  }
  const preferred = (c: ResourceClass) => (input.family === 'tfidf' ? c.device === 'cpu' : c.device === 'cuda');
  const ordered = [...classes].sort((x, y) => Number(preferred(y)) - Number(preferred(x)) || x.memory_bytes - y.memory_bytes);
  for (const c of ordered) {
    const estimate = estimateOn(c);
    if (estimate.total_bytes <= c.memory_bytes) return { resource_class: c.name, estimate };
  }
  const largest = ordered.filter(preferred).at(-1) ?? ordered.at(-1)!;
  const estimate = estimateOn(largest);
  throw new PlacementError(`the job needs about ${gib(estimate.total_bytes)} (${estimate.basis}); the largest class, ${largest.name}, has ${gib(largest.memory_bytes)}${suggestFor(input, largest)}`);
}

function suggestFor(input: Omit<EstimateInput, 'cuda'>, c: ResourceClass): string {
  const s = suggestions(input, c);
  return s.length ? `; to fit ${c.name}: ${s.join(', or ')}` : '';
}


export function resourceClasses(config: { MAKAM_RESOURCE_CLASSES: string }): ResourceClass[] {
  return parseResourceClasses(config.MAKAM_RESOURCE_CLASSES);
}
