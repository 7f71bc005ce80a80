import { AppError, ErrorCode } from "../src/errors.js";
import { parsePointer } from "../src/json/pointer.js";

/** Checks of argument values that the schema's types cannot express, shared by the resolvers. */

/** `value`, or VALIDATION_FAILED naming `path` when it is outside min..max (inclusive). */
export function inRange(value: number, min: number, max: number, path: string): number {
  if (value < min || value > max) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `${path} must be between ${min} and ${max}`, { path });
  }
  return value;
}

/** The segments of JSON Pointer `path`, or VALIDATION_FAILED naming it when it is not one. */
export function segmentsOf(path: string): string[] {
  const segments = parsePointer(path);
  if (segments === null) {
    throw new AppError(ErrorCode.VALIDATION_FAILED, `${JSON.stringify(path)} is not a JSON Pointer (RFC 6901)`, { path });
  }
  return segments;
}
