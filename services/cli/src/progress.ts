// Progress display on stderr: a bar redrawn in place on a terminal; elsewhere (logs, CI, pipes) a
// line now and then, so output stays readable.

export function bar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${'█'.repeat(full)}${'░'.repeat(width - full)}]`;
}

export class ProgressLine {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private lastLine = '';
  private lastPlainAt = 0;
  private readonly plainEveryMs: number;

  constructor(stream: NodeJS.WriteStream = process.stderr, plainEveryMs = 10_000) {
    this.stream = stream;
    this.tty = Boolean(stream.isTTY);
    this.plainEveryMs = plainEveryMs;
  }

  /** Shows `line`; off a terminal only when `important` or every few seconds. */
  update(line: string, important = false): void {
    if (this.tty) {
      const width = this.stream.columns ?? 120;
      this.stream.write(`\r${line.slice(0, width - 1)}\x1b[K`);
      this.lastLine = line;
      return;
    }
    const now = Date.now();
    if (important || now - this.lastPlainAt >= this.plainEveryMs) {
      if (line !== this.lastLine) this.stream.write(`${line}\n`);
      this.lastLine = line;
      this.lastPlainAt = now;
    }
  }

  /** Prints a message above the bar. */
  log(message: string): void {
    if (this.tty && this.lastLine) this.stream.write('\r\x1b[K');
    this.stream.write(`${message}\n`);
    if (this.tty && this.lastLine) this.stream.write(this.lastLine.slice(0, (this.stream.columns ?? 120) - 1));
  }

  done(): void {
    if (this.tty && this.lastLine) this.stream.write('\n');
    this.lastLine = '';
  }
}
