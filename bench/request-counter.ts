/**
 * Counts the SDK requests a client makes, by "Service:Command", with a middleware on the client itself: the
 * figures are what the code really sends, not what we think it sends.
 */
export class RequestCounter {
  readonly counts = new Map<string, number>();

  attach(client: { middlewareStack: { add: (...args: never[]) => void } }, service: string): void {
    const add = client.middlewareStack.add as unknown as (
      middleware: (
        next: (args: unknown) => Promise<unknown>,
        context: { commandName?: string },
      ) => (args: unknown) => Promise<unknown>,
      options: { step: 'initialize'; name: string },
    ) => void;
    add(
      (next, context) => (args) => {
        const key = `${service}:${context.commandName?.replace(/Command$/, '') ?? 'unknown'}`;
        this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: `fleetfold-count-${service}` },
    );
  }

  reset(): void {
    this.counts.clear();
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}
