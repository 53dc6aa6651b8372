/** The PostgreSQL the tests use: DATABASE_URL, else the local server (set by global setup). */
export function adminUrl(): string {
  const url = process.env.TEST_ADMIN_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!url) throw new Error("no test database: run the tests through jest (global setup finds one) or set DATABASE_URL");
  return url;
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
