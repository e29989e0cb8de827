/**
 * The queue layer's one error type. A consumer decides retry versus dead letter from the
 * `retriable` flag, never from the message text (the kafkajs pattern).
 */
export class ConsumerError extends Error {
  override name = "ConsumerError";
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: { retriable: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable;
  }

  /** Unknown failures (a thrown TypeError, a network error) are treated as passing: retry them. */
  static from(error: unknown): ConsumerError {
    if (error instanceof ConsumerError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new ConsumerError("consumer_failed", message, { retriable: true, cause: error });
  }
}
