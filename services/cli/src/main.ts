#!/usr/bin/env node
// makam: the command line for makam's API. Exit codes: 0 ok, 1 the job failed, was cancelled or (a
// tune job's trial) was pruned, 2 bad usage or a request the API refused (4xx), 3 a server or
// network failure.
import { Command, CommanderError, Option } from 'commander';
import { CliError, EXIT } from './api.ts';
import { datasetsGet, datasetsUpload, jobsCancel, jobsDownload, jobsGet, jobsList, jobsSubmit, jobsTrials, jobsWatch, type Globals } from './commands.ts';

const program = new Command('makam')
  .description("makam's command line: upload datasets, submit fine-tuning and tune jobs, watch them, download the models")
  .addHelpText('after', '\nExit codes: 0 ok; 1 the job failed, was cancelled, or (a trial of a tune job) was pruned; 2 bad usage or a 4xx; 3 a server or network failure.')
  .version('0.1.0')
  .addOption(new Option('--api <url>', 'the API').env('MAKAM_API_URL').default('http://127.0.0.1:8080'))
  .addOption(new Option('--api-key <key>', 'an API key, sent as Authorization: Bearer').env('MAKAM_API_KEY'))
  .option('--json', 'machine-readable output on stdout (NDJSON events for jobs watch)')
  .showHelpAfterError()
  .exitOverride();

type Action = (g: Globals, ...args: any[]) => Promise<number>;
/** Runs a command with the global options and records its exit code. */
const run =
  (action: Action) =>
  async (...args: unknown[]) => {
    const cmd = args.at(-1) as Command;
    process.exitCode = await action(cmd.optsWithGlobals() as Globals, ...args.slice(0, -1));
  };

const datasets = program.command('datasets').description('training data (JSON lines or CSV with text,label)');
datasets
  .command('upload <file>')
  .description('upload a dataset (.jsonl or .csv); prints its id')
  .option('--name <name>', 'a name to remember it by')
  .addOption(new Option('--format <format>', 'jsonl or csv (default: from the file name)').choices(['jsonl', 'csv']))
  .action(run((g, file: string, opts) => datasetsUpload(g, file, opts)));
datasets.command('get <id>').description('show a dataset').action(run((g, id: string) => datasetsGet(g, id)));

const jobs = program.command('jobs').description('fine-tuning and tune jobs (and the trials of tune jobs)');
jobs
  .command('submit [file]')
  .description('submit a job from a JSON or YAML request file (a finetune, tune or ensemble job, e.g. examples/jobs/tune-tiny-bert.json) and/or flags (flags win); prints its id')
  .option('-f, --file <file>', 'the request file (the same as the [file] argument)')
  .option('--dataset <id>', "the training dataset (replaces the file's, e.g. its <DATASET_ID> placeholder)")
  .option('--validation-dataset <id>', 'a validation dataset (else a split is carved)')
  .option('--unlabeled-dataset <id>', 'a text-only dataset for the masked-LM phase (with --set mlm_epochs=N)')
  .option('--test-dataset <id>', 'a test dataset for the final evaluation')
  .option('--family <family>', 'encoder, decoder, scratch or tfidf')
  .option('--model <name>', 'a Hugging Face id or a path on the worker')
  .option('--epochs <n>', 'hyperparameters.epochs')
  .option('--learning-rate <x>', 'hyperparameters.learning_rate')
  .option('--batch-size <n>', 'hyperparameters.batch_size')
  .option('--set <name=value...>', 'any hyperparameter (value as JSON when it parses, e.g. --set warmup_ratio=0.06 --set loss=focal)')
  .option('--trials <n>', 'tune jobs: search.trials')
  .option('--parallelism <n>', 'tune jobs: search.parallelism (trials at a time)')
  .option('--resource-class <class>', 'the class to run on (default: the smallest that fits)')
  .option('--idempotency-key <key>', 'retrying with the same key never submits twice')
  .option('--watch', 'then watch it to the end (exit 1 if it fails)')
  .action(
    run((g, file: string | undefined, opts) => {
      if (file && opts.file && file !== opts.file) throw new CliError(EXIT.usage, `two request files: ${file} and --file ${opts.file}`);
      return jobsSubmit(g, { ...opts, file: opts.file ?? file });
    }),
  );
jobs
  .command('list')
  .description('jobs, newest first')
  .option('--limit <n>', 'how many', '20')
  .option('--all', 'every page')
  .option('--kind <kind>', "only finetune, tune or trial jobs (a tune job's trials are trial jobs)")
  .action(run((g, opts) => jobsList(g, opts)));
jobs
  .command('get <id>')
  .description("show a job (JSON on stdout; a one-line summary on stderr: a tune job's study progress, else epoch progress)")
  .action(run((g, id: string) => jobsGet(g, id)));
jobs
  .command('watch <id>')
  .description("follow a job live: epoch, step, ETA and the latest metrics (a tune job: trials complete/pruned/failed/running and the best so far); exit 0 if it succeeds, 1 if it fails, is cancelled or (a trial) is pruned")
  .action(run((g, id: string) => jobsWatch(g, id)));
jobs
  .command('trials <id>')
  .description("a tune job's trials: number, state, objective value, epochs, parameters, job id (--json: the API's list)")
  .action(run((g, id: string) => jobsTrials(g, id)));
jobs.command('cancel <id>').description('cancel a queued or running job').action(run((g, id: string) => jobsCancel(g, id)));
jobs
  .command('download <id>')
  .description("download the job's model (.tar.gz), verifying its sha256")
  .option('-o, --output <file>', 'where to write it (default: <id>-model.tar.gz)')
  .option('-x, --extract <dir>', 'also unpack it there (for from_pretrained)')
  .action(run((g, id: string, opts) => jobsDownload(g, id, opts)));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version are not errors; everything else commander refuses is bad usage.
    process.exitCode = ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(err.code) ? EXIT.ok : EXIT.usage;
  } else if (err instanceof CliError) {
    if (program.opts().json) process.stderr.write(`${JSON.stringify({ error: err.apiError ?? { code: 'cli_error', message: err.message, param: null }, status: err.status, exit_code: err.exitCode })}\n`);
    else process.stderr.write(`makam: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`makam: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT.server;
  }
}
