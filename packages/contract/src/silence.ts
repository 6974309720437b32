/** A timeout on the other side's silence that does not count the time this process itself was held up. */

/** A timer tick later than this (ms) says the process could not run; below it is a timer's usual jitter. */
const LATE_MS = 10;
/** Late ticks in a row after which the timer judges anyway (a CPU starved for good still ends the wait). */
const MAX_LATE_TICKS = 20;

/**
 * Calls `onSilence` once `ms` milliseconds pass without restart(), counting only time in which this
 * process could listen. A plain setTimeout counts a blocked event loop or a starved CPU as the other
 * side's silence: Node runs expired timers before it reads sockets, so on waking it fires although the
 * answer sits unread (or an in-process server had no turn to send it). So a tick that comes late by more
 * than 10 ms waits that long again (the time held up; at most 20 times in a row), and a tick on time judges only after the event
 * loop's next I/O phase (setImmediate), in which data already received calls restart() first. This is
 * the ComfyUI stall check's rule (a late tick judges nothing) for one-shot timeouts.
 *
 * Not started by the constructor: call restart() to start it, clear() when the exchange is over.
 */
export class SilenceTimer {
  #timer: NodeJS.Timeout | undefined;
  /** Bumped by restart() and clear(): a tick or a judgement of an older generation does nothing. */
  #generation = 0;
  #due = 0;
  #lateTicks = 0;

  /**
   * @param ms the silence allowed, in milliseconds (> 0)
   * @param onSilence called at most once per restart(), with no argument; what it throws is uncaught
   */
  constructor(
    private readonly ms: number,
    private readonly onSilence: () => void,
  ) {}

  /** (Re)starts the count: a sign of life, or the start of the exchange. */
  restart(): void {
    this.clear();
    this.#lateTicks = 0;
    this.#arm(this.#generation, this.ms);
  }

  /** Stops the timer; onSilence is not called until the next restart(). */
  clear(): void {
    this.#generation++;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(generation: number, ms: number): void {
    this.#due = performance.now() + ms;
    this.#timer = setTimeout(() => this.#tick(generation), ms);
    // Like AbortSignal.timeout's: the wait itself (a socket, a request) keeps the process alive, not its timeout.
    this.#timer.unref();
  }

  #tick(generation: number): void {
    if (generation !== this.#generation) return;
    const late = performance.now() - this.#due;
    if (late > LATE_MS && ++this.#lateTicks <= MAX_LATE_TICKS) return this.#arm(generation, late);
    setImmediate(() => {
      if (generation !== this.#generation) return;
      this.#timer = undefined;
      this.onSilence();
    });
  }
}
