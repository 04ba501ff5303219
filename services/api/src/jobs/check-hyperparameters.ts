// Checks between hyperparameters that a JSON schema cannot express, each refusal naming the field.
import type { Family } from '../contracts/hyperparameters.gen.ts';
import { ApiError } from '../errors.ts';

const refuse = (param: string, message: string): never => {
  throw new ApiError(400, 'invalid_request', message, `hyperparameters.${param}`);
};

export function checkHyperparameters(family: Family, hp: Record<string, unknown>): void {
  const n = (k: string) => Number(hp[k]);
  if (n('validation_fraction') + n('test_fraction') > 0.6) {
    refuse('test_fraction', `validation_fraction + test_fraction is ${n('validation_fraction') + n('test_fraction')}; keep it at most 0.6 so training keeps most of the data`);
  }
  if (family === 'scratch' && n('d_model') % n('heads') !== 0) {
    refuse('heads', `heads (${n('heads')}) must divide d_model (${n('d_model')}); try heads ${[2, 4, 8, 16].filter((h) => n('d_model') % h === 0).join(' or ')}`);
  }
  if (family === 'tfidf' && n('char_ngram_min') > n('char_ngram_max')) {
    refuse('char_ngram_min', `char_ngram_min (${n('char_ngram_min')}) must not exceed char_ngram_max (${n('char_ngram_max')})`);
  }
  if (hp.loss !== 'focal' && hp.focal_alpha) refuse('focal_alpha', "focal_alpha weights the focal loss; set loss to 'focal' or drop focal_alpha");
  if (family === 'decoder' && hp.load_in_4bit === true && hp.export === 'merged') {
    refuse('export', "a 4-bit base cannot be merged with its adapter; use export 'adapter' or load_in_4bit false");
  }
}
