// Progress of a migration on standard error: on a terminal a bar redrawn in
// place (rows copied of the total, percent, rows per second); without one a
// line every few seconds; with --quiet nothing.
export type ProgressMode = "tty" | "lines" | "quiet";

interface Out {
  write(text: string): unknown;
}

export class Progress {
  private table = "";
  private total = 0;
  private done = 0;
  private from = 0;
  private began = 0;
  private shown = 0;
  private open = false;

  constructor(
    readonly mode: ProgressMode,
    private readonly out: Out = process.stderr,
    /** Between two lines without a terminal, and between two redraws on one (ms). */
    private readonly every = mode === "tty" ? 100 : 5000,
    private readonly now: () => number = Date.now,
  ) {}

  /** A table's copy begins, `done` rows of `total` already there. */
  begin(table: string, done: number, total: number): void {
    this.table = table;
    this.done = done;
    this.from = done;
    this.total = total;
    this.began = this.now();
    this.shown = this.began;
    this.open = true;
    if (this.mode === "tty") this.draw();
  }

  update(done: number): void {
    this.done = done;
    const t = this.now();
    if (t - this.shown < this.every) return;
    this.shown = t;
    if (this.mode === "tty") this.draw();
    else if (this.mode === "lines") this.out.write(`${this.line()}\n`);
  }

  /** The table is done (or failed): the bar's last state stays on its line. */
  end(): void {
    if (!this.open) return;
    this.open = false;
    if (this.mode === "tty") {
      this.draw();
      this.out.write("\n");
    }
  }

  /** A line of its own (what comes next, or a signal received: then below the bar, which goes on). */
  note(text: string): void {
    if (this.mode === "quiet") return;
    this.out.write(`${this.mode === "tty" && this.open ? "\n" : ""}${text}\n`);
  }

  /** Rows per second of this run (rows already there before it do not count). */
  rate(): number {
    const s = (this.now() - this.began) / 1000;
    return s <= 0 ? 0 : Math.round((this.done - this.from) / s);
  }

  private percent(): number {
    return this.total === 0 ? 100 : Math.floor((this.done / this.total) * 100);
  }

  line(): string {
    return `${this.table}: ${this.done}/${this.total} rows (${this.percent()}%), ${this.rate()} rows/s`;
  }

  private draw(): void {
    const width = 30;
    const fill = this.total === 0 ? width : Math.min(width, Math.round((this.done / this.total) * width));
    const bar = `[${"#".repeat(fill)}${" ".repeat(width - fill)}]`;
    this.out.write(`\r\x1b[K${this.table.padEnd(15)} ${bar} ${this.done}/${this.total} ${this.percent()}% ${this.rate()} rows/s`);
  }
}
