/** Validator (fastest-validator) fragments that every service declares its params with. */

/** An id: ours are 22 characters, but ids from older data or other backends may be longer. */
export const ID = { type: "string", min: 1, max: 64 } as const;

/** Optional free text of at most `max` characters, trimmed. */
export const TEXT = (max: number) => ({ type: "string", max, trim: true, optional: true }) as const;
