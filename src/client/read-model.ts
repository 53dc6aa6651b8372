/**
 * What a read-model projection writes to: a table, a cache, files. The projector stacks the
 * changes its handlers make and hands them over in `persist`, with the position they bring the
 * read model to. A read model must apply both atomically: then, after a crash, the projector
 * knows (from `appliedPosition`) which events' changes are already in, and never applies an
 * event twice, even when the projection record lags behind the read model.
 */
export interface ReadModel<Change> {
  /** Creates what the read model needs (e.g. its table). */
  init(): Promise<void>;
  isInitialized(): Promise<boolean>;
  /** Empties it and forgets the applied position: the projection starts again. */
  reset(): Promise<void>;
  /** Removes it. */
  delete(): Promise<void>;
  /**
   * Applies the changes and records `position` as applied, in one atomic step, if the read model
   * is still where `previous` says (undefined: nothing applied yet), and answers where it is now.
   * Answers undefined, applying nothing, when it is not: another runner has moved it (or reset
   * it and rebuilt it, even to the same position: the token differs), and this one must look again.
   */
  persist(changes: Change[], position: bigint, previous: AppliedPosition | undefined): Promise<AppliedPosition | undefined>;
  /** Where the last changes applied brought it; undefined when none are. */
  appliedPosition(): Promise<AppliedPosition | undefined>;
}

/**
 * Where a read model stands: the position of the last changes applied, and a token made anew
 * each time it starts from empty, so that a position reached again after a reset is not
 * mistaken for the one before it.
 */
export interface AppliedPosition {
  position: bigint;
  token: string;
}
