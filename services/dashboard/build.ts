// Builds the dashboard into dist/ (not tracked: scripts/env.sh and the services image build it):
// esbuild bundles web/main.ts into app.js; index.html and style.css are copied.
//   node build.ts           writes dist/
//   node build.ts --check   fails when dist/ is not what the sources build to
import { readFile, mkdir, writeFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');

async function outputs(): Promise<Map<string, string>> {
  const result = await build({
    entryPoints: [path.join(here, 'web/main.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    legalComments: 'none',
    write: false,
    outfile: path.join(dist, 'app.js'),
    logLevel: 'warning',
  });
  const files = new Map<string, string>();
  for (const f of result.outputFiles) files.set(path.basename(f.path), f.text);
  for (const name of ['index.html', 'style.css']) files.set(name, await readFile(path.join(here, 'web', name), 'utf8'));
  return files;
}

const files = await outputs();
if (process.argv.includes('--check')) {
  const stale: string[] = [];
  const present = await readdir(dist).catch(() => [] as string[]);
  for (const [name, text] of files) {
    const have = await readFile(path.join(dist, name), 'utf8').catch(() => null);
    if (have !== text) stale.push(name);
  }
  for (const name of present) if (!files.has(name)) stale.push(name);
  if (stale.length) {
    console.error(`services/dashboard/dist is stale (${stale.join(', ')}): run npm run build -w @makam/dashboard`);
    process.exit(1);
  }
  console.log('dashboard dist is fresh');
} else {
  await mkdir(dist, { recursive: true });
  for (const [name, text] of files) await writeFile(path.join(dist, name), text);
  console.log(`dashboard built: ${[...files].map(([n, t]) => `${n} ${t.length} B`).join(', ')}`);
}
