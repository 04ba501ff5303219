// Checks of `model` that a JSON schema cannot express, each refusal naming the field and the fix:
// a config the estimate can count key by key, and a name that is a hub id or a path under a model root.
import path from 'node:path';
import { ModelConfigError, checkModelConfig } from '../placement/model-shapes.ts';
import { ApiError } from '../errors.ts';

// huggingface_hub's repo id rules: [org/]name, letters, digits, '-', '_', '.', no '--' or '..', at most 96 characters.
const HUB_SEGMENT = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const HUB_ID = new RegExp(`^(?:${HUB_SEGMENT}/)?${HUB_SEGMENT}$`);

/** The operator's model roots (MAKAM_MODEL_ROOTS: absolute directories, colon-separated), normalised. */
export function parseModelRoots(spec: string): string[] {
  return spec
    .split(':')
    .filter((r) => r !== '')
    .map((r) => {
      if (!path.posix.isAbsolute(r) || r.split('/').includes('..')) throw new Error(`MAKAM_MODEL_ROOTS: '${r}' must be an absolute directory without '..'`);
      return path.posix.normalize(r).replace(/(.)\/$/, '$1');
    });
}

export function isHubId(name: string): boolean {
  return name.length <= 96 && HUB_ID.test(name) && !name.includes('--') && !name.includes('..');
}

/** A path under one of `roots` after normalisation, never with a '.' or '..' segment; else null. */
export function confinedPath(name: string, roots: readonly string[]): string | null {
  // Lone surrogates could not be stored or sent as UTF-8; control characters and backslashes have no place in a model folder's path.
  if (!name.startsWith('/') || !name.isWellFormed() || /[\u0000-\u001f\u007f-\u009f\\]/.test(name)) return null;
  const segments = name.split('/').filter((s) => s !== '');
  if (segments.some((s) => s === '.' || s === '..')) return null;
  const normal = `/${segments.join('/')}`;
  return roots.some((root) => normal.startsWith(root === '/' ? '/' : `${root}/`) && normal !== root) ? normal : null;
}

export function checkModel(model: { name?: string; config?: Record<string, unknown> }, roots: readonly string[]): void {
  if (model.config) {
    try {
      checkModelConfig(model.config);
    } catch (err) {
      if (err instanceof ModelConfigError) throw new ApiError(400, 'invalid_model_config', err.message, err.param);
      throw err;
    }
  }
  const name = model.name;
  if (name === undefined || isHubId(name) || confinedPath(name, roots) !== null) return;
  const where = roots.length
    ? `an absolute path under a model root (${roots.join(', ')}), without '.' or '..' segments`
    : 'no local path: this service has no model roots (MAKAM_MODEL_ROOTS)';
  throw new ApiError(400, 'invalid_model_name', `model.name must be a Hugging Face id such as 'org/name' (letters, digits, '-', '_', '.') or ${where}`, 'model.name');
}
