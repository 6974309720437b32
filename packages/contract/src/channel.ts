/**
 * A small unbounded channel: producers push, one consumer pulls in order (`next()` or `for await`).
 * Backends use it so results from sockets, polls and requests reach the caller as soon as each exists;
 * the selector uses it between the producer (backend) and the scoring consumer.
 */
export class Channel<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private waiters: { resolve: (v: IteratorResult<T>) => void; reject: (e: unknown) => void }[] = [];
  private closed = false;
  private error: unknown = undefined;

  /** Items pushed and not yet taken. */
  get size(): number {
    return this.items.length;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Adds an item; ignored after close(). */
  push(item: T): void {
    if (this.closed) return;
    const w = this.waiters.shift();
    if (w) w.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  /** Ends the channel; with an error, the next `next()` after the buffered items rejects with it. */
  close(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.error = error;
    for (const w of this.waiters.splice(0)) {
      if (error === undefined) w.resolve({ value: undefined, done: true });
      else w.reject(error);
    }
  }

  /** The next item; waits while the channel is empty and open. */
  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.closed) return this.error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.error);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Up to `max` items at once: waits for the first, then takes whatever else is already buffered. */
  async take(max: number): Promise<T[]> {
    const first = await this.next();
    if (first.done) return [];
    return [first.value, ...this.items.splice(0, Math.max(0, max - 1))];
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return { next: () => this.next() };
  }
}
