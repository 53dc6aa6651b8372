import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { createPolicy, type Logger, type Policy } from "../domain";
import { parseAuthConfig, type AuthConfig, type PublicService } from "./auth-config";
import { createAuthenticator, type Authenticate } from "./authenticator";
import { createJwtVerifier } from "./jwt-verifier";

/** The security configuration in force: reloaded when its files change or on SIGHUP. */
export interface AccessControl {
  authenticate: Authenticate;
  policy(): Policy;
  isPublic(service: PublicService): boolean;
  /** The kinds of bearer token accepted, for the ready line. */
  tokenKinds(): string[];
  /** Reads the files again; a file that no longer parses leaves the last good configuration in force. */
  reload(): void;
  close(): void;
}

/** How often the files are looked at: a change is in force within this time. */
const WATCH_INTERVAL_MS = 1000;

/**
 * Loads the auth file (and the JWKS file it names) now, failing the start on any mistake; then
 * watches them. Files are polled (fs.watchFile) rather than watched for events, because editors
 * and Kubernetes replace a file by renaming another over it, which an event watcher loses.
 */
export function loadAccessControl(file: string, log: Logger): AccessControl {
  let current = load(file);
  let watched: string[] = [];
  const watch = () => {
    for (const f of watched) unwatchFile(f, onChange);
    const jwks = current.config.jwt?.jwks;
    watched = jwks && "file" in jwks ? [file, jwks.file] : [file];
    for (const f of watched) watchFile(f, { interval: WATCH_INTERVAL_MS, persistent: false }, onChange);
  };
  const reload = () => {
    try {
      current = load(file);
      watch();
      log.info("auth configuration reloaded", { file, tokens: current.config.tokens.length, rules: current.config.rules.length });
    } catch (e) {
      log.error("auth configuration not reloaded: the last good one stays in force", { file, cause: (e as Error).message });
    }
  };
  function onChange() {
    reload();
  }
  watch();
  return {
    authenticate: (credentials) => current.authenticate(credentials),
    policy: () => current.policy,
    isPublic: (service) => current.config.publicServices.has(service),
    tokenKinds: () => [...(current.config.tokens.length > 0 ? ["api keys"] : []), ...(current.config.jwt ? ["jwt"] : [])],
    reload,
    close: () => {
      for (const f of watched) unwatchFile(f, onChange);
    },
  };
}

interface Loaded {
  config: AuthConfig;
  policy: Policy;
  authenticate: Authenticate;
}

function load(file: string): Loaded {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`${file}: cannot read the auth file: ${(e as Error).message}`);
  }
  const config = parseAuthConfig(text, file);
  const jwt = config.jwt ? createJwtVerifier(config.jwt) : undefined;
  return { config, policy: createPolicy(config.rules), authenticate: createAuthenticator(config, jwt) };
}
