// Status codes as msgtrans-go's runtime.Code numbers them (docs/wire.md),
// and the error type calls fail with.

export const Code = {
  OK: 0,
  Canceled: 1,
  Unknown: 2,
  InvalidArgument: 3,
  DeadlineExceeded: 4,
  NotFound: 5,
  AlreadyExists: 6,
  PermissionDenied: 7,
  ResourceExhausted: 8,
  FailedPrecondition: 9,
  Aborted: 10,
  OutOfRange: 11,
  Unimplemented: 12,
  Internal: 13,
  Unavailable: 14,
  DataLoss: 15,
  Unauthenticated: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const names: Record<number, string> = {
  0: "ok",
  1: "canceled",
  2: "unknown",
  3: "invalid_argument",
  4: "deadline_exceeded",
  5: "not_found",
  6: "already_exists",
  7: "permission_denied",
  8: "resource_exhausted",
  9: "failed_precondition",
  10: "aborted",
  11: "out_of_range",
  12: "unimplemented",
  13: "internal",
  14: "unavailable",
  15: "data_loss",
  16: "unauthenticated",
};

/** The snake_case name of a code, as msgtrans-go prints it; "code(N)" for one it does not know. */
export function codeName(code: number): string {
  return names[code] ?? `code(${code})`;
}

/**
 * MsgtransError is how calls fail: a status code and a message, whether the
 * peer answered with them or this side decided (a deadline, a lost
 * connection). A handler may throw one to answer with its code.
 */
export class MsgtransError extends Error {
  readonly code: number;
  readonly rawMessage: string;
  constructor(code: number, message: string) {
    super(`${codeName(code)}: ${message}`);
    this.name = "MsgtransError";
    this.code = code;
    this.rawMessage = message;
  }
}

/** The code of err: its own for a MsgtransError, Unknown for anything else. */
export function codeOf(err: unknown): number {
  return err instanceof MsgtransError ? err.code : Code.Unknown;
}
