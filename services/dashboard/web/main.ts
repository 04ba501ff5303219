// makam's dashboard: the jobs list (jobs-list.ts) and a job page (job/page.ts, one module per
// panel) with live curves (server-sent events), the final metrics, the confusion matrix, per-class
// scores, hyperparameters and the model card. Plain DOM, no framework; routes are URL hashes
// (#/ and #/jobs/<id>) so the API serves static files only.
import { getKey, setKey } from './api.ts';
import { jobPage } from './job/page.ts';
import { jobsPage } from './jobs-list.ts';

// ------------------------------------------------------------------ header: the API key

function setupKeyForm(): void {
  const input = document.getElementById('api-key') as HTMLInputElement;
  const form = document.getElementById('key-form') as HTMLFormElement;
  input.value = getKey();
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setKey(input.value.trim());
    route();
  });
}

// ------------------------------------------------------------------ router

const root = document.getElementById('app')!;
let current: AbortController | null = null;

function route(): void {
  current?.abort();
  current = new AbortController();
  const m = /^#\/jobs\/(job_[0-9a-z]+)/.exec(location.hash);
  if (m) void jobPage(root, m[1]!, current.signal);
  else void jobsPage(root, current.signal);
}

setupKeyForm();
window.addEventListener('hashchange', route);
route();
