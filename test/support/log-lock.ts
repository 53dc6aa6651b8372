import postgres from "postgres";

export interface LogLock {
  /** Lets the lock go and closes its session; safe to call more than once. */
  release(): Promise<void>;
}

/**
 * Another session holds the log head's row lock (as an append in flight would), so that every
 * append on `url` waits in the database until release(). Resolves once the lock is held.
 */
export async function holdLogLock(url: string): Promise<LogLock> {
  const locker = postgres(url, { max: 1, onnotice: () => {} });
  let letGo!: () => void;
  const released = new Promise<void>((r) => (letGo = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holding = locker.begin(async (tx) => {
    await tx`select position from eventstore.log for update`;
    locked();
    await released;
  });
  await Promise.race([isLocked, holding]);
  return {
    async release() {
      letGo();
      await holding.catch(() => {});
      await locker.end({ timeout: 1 });
    },
  };
}
