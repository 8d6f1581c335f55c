/** Reads a Server-Sent Events response into parsed events, for tests. */
export interface SseEvent {
  event: string;
  data: any;
}

export class SseReader {
  private buffer = '';
  private events: SseEvent[] = [];
  private waiters: Array<() => void> = [];
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private decoder = new TextDecoder();
  closed = false;

  constructor(res: Response) {
    this.reader = res.body!.getReader();
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) break;
        this.buffer += this.decoder.decode(value, { stream: true });
        let idx: number;
        while ((idx = this.buffer.indexOf('\n\n')) >= 0) {
          const block = this.buffer.slice(0, idx);
          this.buffer = this.buffer.slice(idx + 2);
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) event = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).trim());
          }
          if (data.length === 0) continue; // comment / keep-alive
          this.events.push({ event, data: JSON.parse(data.join('\n')) });
          for (const w of this.waiters.splice(0)) w();
        }
      }
    } catch {
      // cancelled
    } finally {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    }
  }

  /** Waits for the next event named `name` (consuming earlier events of other names). */
  async next(name: string, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex((e) => e.event === name);
      if (i >= 0) return this.events.splice(0, i + 1).at(-1)!;
      if (this.closed) throw new Error(`stream closed before "${name}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${name}" event within ${timeoutMs} ms; saw ${this.events.map((e) => e.event).join(', ')}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, left);
      });
    }
  }

  async close(): Promise<void> {
    await this.reader.cancel().catch(() => {});
  }
}
